"""Supervised fine-tuning (LoRA or full) with response-only loss.

Recipe (``finetune``), top to bottom:

1. resolve the config (a named preset fills the fields not given explicitly);
2. load the model (``brittle.models.load.load_model``) with **fp32 weights** (the master
   copy; on CUDA, ``bf16`` runs the forward/backward under bf16 autocast — the Trainer's
   ``bf16=True`` — so weights and AdamW states stay fp32); when a starting adapter is given
   (e.g. the installed safety adapter) it is **merged** into the weights
   (``merge_and_unload``), then a **fresh** LoRA (the config's r/α/dropout/targets) or every
   weight (full) is trained on top. The starting adapter is never trained further: an
   attack gets the same fresh adapter and hyper-parameters on every model (issue 13);
3. encode every example with :func:`brittle.models.chat.encode` (chat template, labels only
   on the final assistant turn + its end-of-turn token, right truncation to ``max_length``);
   examples left with 0 response tokens are dropped and counted;
4. train with the plain ``transformers.Trainer`` and a collator over
   :func:`brittle.models.chat.collate` (right padding). We use ``Trainer`` rather than trl's
   ``SFTTrainer`` because our data is already tokenised with our own label mask; trl would
   only re-derive the same mask from a ``completion_mask`` column (see docs/train.md);
5. log the loss of every optimisation step to ``run_dir/train_log.jsonl``, save the adapter
   (``adapter_model.safetensors``) or the full model (safetensors) through
   ``Trainer.save_model`` (called on every rank: it gathers FSDP / DeepSpeed ZeRO-3 shards;
   only the main process writes), the config echo (``finetune_config.yaml``: the recipe,
   without the output directory), ``finetune.json`` (counts, trainable parameters, timings)
   and ``loss.png``.

The loss is the Trainer's default: mean token cross-entropy over label tokens of a batch,
``L = Σ_{b,t: y≠-100} -log p(y_{b,t} | x_{b,<t}) / #{label tokens}``; prompt tokens carry
label -100 and contribute exactly 0 to it and to its gradient.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from brittle.config import StageConfig
from brittle.data.schema import Example
from brittle.errors import BrittleError, DataError
from brittle.tracking import REPORT_TO_HELP, ReportTo, trainer_report_to

log = logging.getLogger(__name__)


class FinetuneConfig(StageConfig):
    run_dir: Path = Field(Path("runs/finetune"), description="Directory for the fine-tuning outputs.")
    model: str = Field(
        "embedded:smollm2-135m",
        description="Model spec to fine-tune; 'SPEC merged:ADAPTER_DIR' names SPEC with that adapter "
        "merged into its weights (what an attack on an installed alignment trains).",
    )
    adapter: str | None = Field(
        None, description="LoRA adapter merged into the weights before training (e.g. the "
        "installed safety adapter); a fresh adapter (or every weight) is trained on top."
    )
    method: Literal["lora", "full"] = Field("lora", description="lora: train a LoRA adapter; full: fine-tune every weight.")
    preset: str | None = Field(
        None, description="Named preset (qi2023-full, he2024-full, lora-attack, align-lora)."
    )
    epochs: float = Field(3.0, gt=0, allow_inf_nan=False, description="Number of passes over the data.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps.")
    lr: float = Field(2e-4, gt=0, allow_inf_nan=False, description="Peak learning rate.")
    scheduler: str = Field("linear", description="transformers lr scheduler type.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, description="Per-device batch size.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    max_length: int = Field(256, ge=8, description="Truncate sequences to this many tokens.")
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="LoRA dropout.")
    lora_targets: list[str] | str = Field(
        "all-linear", description="LoRA target modules ('all-linear' or a list of names)."
    )
    seed: int = Field(0, description="Seed for init, data order and dropout.")
    bf16: bool | None = Field(
        None, description="bf16 autocast over fp32 master weights and optimiser states "
        "(default: on for CUDA with bf16 support)."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, slower steps)."
    )
    cpu_micro_tokens: int | None = Field(
        512, ge=8, description="On CPU, split each batch into gradient-accumulated micro-batches of at "
        "most this many tokens (batch x max_length): the same update, a lower memory peak; None: off."
    )
    report_to: ReportTo = Field("none", description=REPORT_TO_HELP)
    device: str = Field("auto", description="cpu | cuda | auto (accelerate sets the rank's GPU).")
    group_by_length: bool = Field(
        False, description="Batch examples of similar length together (less padding, faster)."
    )
    logging_steps: int = Field(1, ge=1, description="Log the loss every n steps.")
    save: bool = Field(True, description="Save the adapter / model into the run directory.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Preset fields fill whatever was not given explicitly."""
        if isinstance(data, dict) and data.get("preset"):
            from brittle.train.presets import preset

            return {**preset(str(data["preset"])), **data}
        return data

    def echo(self, name: str | None = None) -> Path:
        """Write the recipe as YAML into the run directory: every field but ``run_dir`` (where
        the outputs go is not part of what was trained), so two runs of one recipe on two
        models give files that differ only in ``model``."""
        path = super().echo(name)  # redaction and error handling of every stage's echo
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        data.pop("run_dir", None)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path


@dataclass
class FinetuneResult:
    path: Path | None  # adapter (LoRA) or model (full) directory; None when save=False
    model: Any  # the trained model (PeftModel for LoRA), eval mode
    tokenizer: Any
    stats: dict[str, Any] = field(default_factory=dict)


def encode_examples(
    tokenizer: Any, examples: Sequence[Example], max_length: int | None
) -> tuple[list[Any], list[str]]:
    """``(encoded, dropped_ids)``: response-only encodings; examples whose response is
    truncated away entirely (0 label tokens) are dropped."""
    from brittle.models.chat import encode

    encoded, dropped = [], []
    for i, ex in enumerate(examples):
        if ex.response is None:  # e.g. a benchmark's prompt-only row: say which file and line
            where = (f"{ex.source}:{ex.meta['line']}" if ex.source and "line" in ex.meta
                     else f"example {i} ({ex.id})")
            raise DataError(f"{where}: no final assistant message to train on (a prompt-only row; "
                            "name the reply's field with --response-field)")
        enc = encode(tokenizer, ex.messages, max_length=max_length)
        if enc.n_response_tokens == 0:
            dropped.append(ex.id)
        else:
            encoded.append(enc)
    if dropped:
        log.warning("dropped %d/%d examples with 0 response tokens after truncation to %s",
                    len(dropped), len(examples), max_length)
    return encoded, dropped


def train_device(device: str = "auto") -> str:
    """The rank's GPU under ``accelerate launch`` / torchrun, else the resolved ``device``."""
    from brittle.models.load import resolve_device

    device = resolve_device(device)
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def _device(cfg: FinetuneConfig) -> str:
    return train_device(cfg.device)


def micro_batches(batch_size: int, grad_accum: int, max_length: int, max_tokens: int) -> tuple[int, int]:
    """(per-device micro-batch, accumulation steps) with the same examples per optimiser step:
    the largest divisor of ``batch_size`` whose ``micro x max_length`` fits ``max_tokens``."""
    micro = max([d for d in range(1, batch_size + 1) if batch_size % d == 0 and d * max_length <= max_tokens],
                default=1)
    return micro, grad_accum * (batch_size // micro)


def resolve_bf16(bf16: bool | None, device: str) -> bool:
    """bf16 autocast: as configured, else on for a CUDA device that supports it."""
    if bf16 is not None:
        return bool(bf16)
    import torch

    return device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def merge_adapter(model: Any, adapter: str | Path | None) -> Any:
    """``model`` with the LoRA ``adapter`` merged into its weights (``merge_and_unload``); the
    model itself when ``adapter`` is None. The result is a plain model: nothing of the
    adapter stays trainable or separable."""
    from peft import PeftModel

    if adapter is None:
        return model
    if isinstance(model, PeftModel):
        raise BrittleError("pass a plain model with --adapter, not one already wrapped by PEFT")
    _check_adapter_dir(Path(adapter))  # safetensors only, like load.apply_adapter
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    log.info("merged starting adapter %s into the weights", adapter)
    return merged


def prepare_model(cfg: FinetuneConfig, model: Any) -> Any:
    """Wrap ``model`` for training: merge ``cfg.adapter`` (if any), then a fresh LoRA of the
    config's shape (``method="lora"``) or every weight trainable (``method="full"``).

    LoRA layers are injected in place: a model passed in is modified (``unload()`` the
    returned PeftModel to get the untouched base back)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    model = merge_adapter(model, cfg.adapter)
    if isinstance(model, PeftModel):
        raise BrittleError("fine-tune a plain model: it is already wrapped by PEFT (merge or unload it first)")
    if cfg.method == "lora":
        for p in model.parameters():
            p.requires_grad_(False)
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_targets,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    return model


def parameter_counts(model: Any) -> dict[str, int]:
    """``{"trainable_params", "total_params"}`` of a (possibly PEFT-wrapped) model."""
    trainable = total = 0
    for p in model.parameters():
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"trainable_params": trainable, "total_params": total}


def _check_adapter_dir(path: Path) -> None:
    if not (path / "adapter_config.json").exists():
        raise BrittleError(f"{path}: not a PEFT adapter directory (no adapter_config.json)")
    if not (path / "adapter_model.safetensors").exists():
        raise BrittleError(f"{path}: adapter weights must be adapter_model.safetensors")


class _Data:
    """Minimal map-style dataset over encoded examples: items are ``{input_ids, labels}``
    dicts (what transformers' length-grouped sampler reads)."""

    def __init__(self, items: list[Any]):
        self.items = [{"input_ids": e.input_ids, "labels": e.labels} for e in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


def make_collator(pad_id: int):
    """Right-padding collator over :func:`brittle.models.chat.collate`."""
    from brittle.models.chat import Encoded, collate

    def collator(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        return collate([Encoded(b["input_ids"], b["labels"]) for b in batch], pad_id,
                       padding_side="right")

    return collator


def _loss_logger(path: Path):
    from transformers import TrainerCallback

    class LossLogger(TrainerCallback):
        """Append {step, epoch, loss, lr, grad_norm, elapsed_s} per logging step to train_log.jsonl."""

        t0 = time.perf_counter()

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kw):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            rec = {
                "step": state.global_step,
                "epoch": logs.get("epoch"),
                "loss": float(logs["loss"]),
                "lr": logs.get("learning_rate"),
                "grad_norm": None if logs.get("grad_norm") is None else float(logs["grad_norm"]),
                "elapsed_s": round(time.perf_counter() - self.t0, 3),
            }
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")

    return LossLogger()


def train_model(
    cfg: FinetuneConfig,
    examples: Sequence[Example],
    *,
    model: Any = None,
    tokenizer: Any = None,
) -> FinetuneResult:
    """Fine-tune and return the trained model with its saved path and statistics."""
    from transformers import Trainer, TrainingArguments, set_seed

    t0 = time.perf_counter()
    set_seed(cfg.seed)
    device = _device(cfg)
    if model is None:
        from brittle.models.load import load_model
        from brittle.train.recipe import split_start

        spec, merged = split_start(cfg.model)  # "SPEC merged:ADAPTER" names merged weights
        # fp32 master weights; bf16 (below) is autocast in forward/backward only
        model, tokenizer = load_model(spec, device=device, dtype="float32")
        model = merge_adapter(model, merged)
    elif tokenizer is None:
        raise BrittleError("finetune(model=...) also needs tokenizer=...")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    encoded, dropped = encode_examples(tokenizer, examples, cfg.max_length)
    if not encoded:
        raise BrittleError(
            f"no trainable examples: all {len(examples)} have 0 response tokens "
            f"after truncation to max_length={cfg.max_length}"
        )
    set_seed(cfg.seed)  # LoRA init independent of what happened before
    model = prepare_model(cfg, model)
    counts = parameter_counts(model)
    model.train()

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "train_log.jsonl"
    log_path.unlink(missing_ok=True)  # a re-run starts a fresh log
    bf16 = resolve_bf16(cfg.bf16, device)
    micro, accum = cfg.batch_size, cfg.grad_accum
    if device == "cpu" and cfg.cpu_micro_tokens:
        micro, accum = micro_batches(cfg.batch_size, cfg.grad_accum, cfg.max_length, cfg.cpu_micro_tokens)
        if micro != cfg.batch_size:
            log.info("batch %d = %d micro-batches of %d (gradient accumulation; at most %d tokens each)",
                     cfg.batch_size, cfg.batch_size // micro, micro, cfg.cpu_micro_tokens)
    args = TrainingArguments(
        output_dir=str(run_dir / "trainer"),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to=trainer_report_to(cfg.report_to, run_dir),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bool(bf16),
        # transformers 5 name of gradient checkpointing (the old name is a deprecated alias)
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        use_cpu=device == "cpu",
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        disable_tqdm=not log.isEnabledFor(logging.INFO),
    )
    pad_id = tokenizer.pad_token_id
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_Data(encoded),
        data_collator=make_collator(pad_id),
        callbacks=[_loss_logger(log_path)],
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # losses go to train_log.jsonl + logging instead
    out = trainer.train()
    model = trainer.model
    model.eval()
    main = trainer.is_world_process_zero()
    seconds = time.perf_counter() - t0
    losses = [json.loads(x)["loss"] for x in log_path.read_text().splitlines()] if log_path.exists() else []
    stats = {
        "n_examples": len(examples),
        "n_trained": len(encoded),
        "n_dropped": len(dropped),
        "dropped_ids": dropped,
        "n_response_tokens": sum(e.n_response_tokens for e in encoded),
        "n_tokens": sum(len(e.input_ids) for e in encoded),
        "steps": int(out.global_step),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_loss": float(out.training_loss),
        **counts,
        "seconds": round(seconds, 2),
        "device": device,
        "bf16": bool(bf16),
    }
    path = None
    if cfg.save:  # every rank: save_model gathers sharded (FSDP / ZeRO-3) weights
        path = _save(cfg, trainer, tokenizer, run_dir)
        if path is not None:
            stats["path"] = str(path)
    if main:
        cfg.echo("finetune_config")
        from brittle.provenance import provenance
        from brittle.store import write_json
        from brittle.train.recipe import split_start

        spec, merged = split_start(cfg.model)  # the weights' spec + the adapter merged into them
        stats["provenance"] = provenance(spec, tokenizer, device=device, adapter=cfg.adapter or merged)
        write_json(run_dir / "finetune.json", stats)
        if losses:
            from brittle.train.plots import plot_loss

            plot_loss(log_path, run_dir / "loss.png", title=f"{cfg.model} ({cfg.method})")
    shutil.rmtree(run_dir / "trainer", ignore_errors=True)
    del trainer  # optimiser states go with it
    log.info("fine-tuned %d examples, %d steps, loss %s -> %s in %.1fs",
             len(encoded), stats["steps"], stats["first_loss"], stats["final_loss"], seconds)
    return FinetuneResult(path, model, tokenizer, stats)


def _save(cfg: FinetuneConfig, trainer: Any, tokenizer: Any, run_dir: Path) -> Path | None:
    """Save through ``Trainer.save_model`` (called on every rank, so FSDP / DeepSpeed ZeRO-3
    shards are gathered; only the main process writes), atomically (tmp dir + rename) so a
    crash never leaves a half-written adapter. Returns the directory on the main process,
    None elsewhere. The Trainer's pickled ``training_args.bin`` is not kept."""
    target = run_dir / ("adapter" if cfg.method == "lora" else "model")
    tmp = target.with_name(target.name + ".tmp")
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    if not main:
        return None
    (tmp / "training_args.bin").unlink(missing_ok=True)
    if cfg.method == "full":
        tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def finetune(
    cfg: FinetuneConfig,
    examples: Sequence[Example],
    *,
    model: Any = None,
    tokenizer: Any = None,
) -> Path:
    """Fine-tune ``cfg.model`` (or the given ``model``/``tokenizer``, modified in place) on
    ``examples`` and return the adapter directory (LoRA) or model directory (full)."""
    if not cfg.save:
        raise BrittleError("finetune() returns the saved path; use train_model() with save=False")
    res = train_model(cfg, examples, model=model, tokenizer=tokenizer)
    if res.path is None:  # non-main rank under multi-GPU
        return Path(cfg.run_dir) / ("adapter" if cfg.method == "lora" else "model")
    return res.path
