"""Supervised fine-tuning (LoRA or full) with response-only loss.

Recipe (``finetune``), top to bottom:

1. resolve the config (a named preset fills the fields not given explicitly);
2. load the model (``brittle.models.load.load_model``) and, when a starting adapter is
   given, either **continue** training that adapter (``PeftModel.from_pretrained(...,
   is_trainable=True)``; default: the result is one self-contained adapter, "aligned + attack"
   = base + this adapter) or **merge** it into the base weights and train a fresh LoRA on
   top (``start="merge"``: the new adapter is then only valid on base+merged start adapter);
   full fine-tuning always merges a starting adapter first;
3. encode every example with :func:`brittle.models.chat.encode` (chat template, labels only
   on the final assistant turn + its end-of-turn token, right truncation to ``max_length``);
   examples left with 0 response tokens are dropped and counted;
4. train with the plain ``transformers.Trainer`` and a collator over
   :func:`brittle.models.chat.collate` (right padding). We use ``Trainer`` rather than trl's
   ``SFTTrainer`` because our data is already tokenised with our own label mask; trl would
   only re-derive the same mask from a ``completion_mask`` column (see docs/train.md);
5. log the loss of every optimisation step to ``run_dir/train_log.jsonl``, save the adapter
   (``adapter_model.safetensors``) or the full model (safetensors), the config echo,
   ``finetune.json`` (counts, timings) and ``loss.png``.

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

from pydantic import Field, model_validator

from brittle.config import StageConfig
from brittle.data.schema import Example
from brittle.errors import BrittleError, DataError

log = logging.getLogger(__name__)


class FinetuneConfig(StageConfig):
    run_dir: Path = Field(Path("runs/finetune"), description="Directory for the fine-tuning outputs.")
    model: str = Field("embedded:smollm2-135m", description="Model spec to fine-tune.")
    adapter: str | None = Field(
        None, description="Starting LoRA adapter directory (e.g. the installed safety adapter)."
    )
    start: Literal["continue", "merge"] = Field(
        "continue",
        description="With --adapter and LoRA: 'continue' trains that adapter further (one "
        "self-contained adapter); 'merge' merges it into the base and trains a fresh LoRA.",
    )
    method: Literal["lora", "full"] = Field("lora", description="LoRA adapter or full fine-tuning.")
    preset: str | None = Field(
        None, description="Named preset (qi2023-full, he2024-full, lora-attack, align-lora)."
    )
    epochs: float = Field(3.0, description="Number of passes over the data.")
    max_steps: int | None = Field(None, description="Stop after this many optimiser steps.")
    lr: float = Field(2e-4, description="Peak learning rate.")
    scheduler: str = Field("linear", description="transformers lr scheduler type.")
    warmup_steps: int = Field(0, description="Linear warm-up steps.")
    weight_decay: float = Field(0.0, description="AdamW weight decay.")
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
    bf16: bool | None = Field(None, description="bf16 mixed precision (default: on for CUDA).")
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
        if ex.response is None:
            raise DataError(f"example {i} ({ex.id}): no final assistant message to train on")
        enc = encode(tokenizer, ex.messages, max_length=max_length)
        if enc.n_response_tokens == 0:
            dropped.append(ex.id)
        else:
            encoded.append(enc)
    if dropped:
        log.warning("dropped %d/%d examples with 0 response tokens after truncation to %s",
                    len(dropped), len(examples), max_length)
    return encoded, dropped


def _device(cfg: FinetuneConfig) -> str:
    """The rank's GPU under ``accelerate launch`` / torchrun, else ``cfg.device``."""
    from brittle.models.load import resolve_device

    device = resolve_device(cfg.device)
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def prepare_model(cfg: FinetuneConfig, model: Any) -> Any:
    """Wrap ``model`` for training according to ``cfg.method`` / ``cfg.adapter`` / ``cfg.start``.

    LoRA layers are injected in place: a model passed in is modified."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if cfg.adapter and isinstance(model, PeftModel):
        raise BrittleError("pass a plain model with --adapter, not one already wrapped by PEFT")
    if cfg.adapter:
        _check_adapter_dir(Path(cfg.adapter))  # safetensors only, like load.apply_adapter
    if cfg.method == "lora" and cfg.adapter and cfg.start == "continue":
        model = PeftModel.from_pretrained(model, str(cfg.adapter), is_trainable=True)
        log.info("continuing to train adapter %s (its own r/alpha/targets apply)", cfg.adapter)
    else:
        if cfg.adapter:
            model = PeftModel.from_pretrained(model, str(cfg.adapter)).merge_and_unload()
            log.info("merged starting adapter %s into the base weights", cfg.adapter)
        if cfg.method == "lora":
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
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    t0 = time.perf_counter()
    set_seed(cfg.seed)
    device = _device(cfg)
    if model is None:
        from brittle.models.load import load_model

        model, tokenizer = load_model(cfg.model, device=device)
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
    model.train()

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "train_log.jsonl"
    log_path.unlink(missing_ok=True)  # a re-run starts a fresh log
    bf16 = cfg.bf16 if cfg.bf16 is not None else (
        device.startswith("cuda") and torch.cuda.is_bf16_supported()
    )
    args = TrainingArguments(
        output_dir=str(run_dir / "trainer"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bool(bf16),
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
        "seconds": round(seconds, 2),
        "device": device,
        "bf16": bool(bf16),
    }
    path = None
    if cfg.save and main:
        path = _save(cfg, model, tokenizer, run_dir)
        stats["path"] = str(path)
    if main:
        cfg.echo("finetune_config")
        from brittle.store import write_json

        write_json(run_dir / "finetune.json", stats)
        if losses:
            from brittle.train.plots import plot_loss

            plot_loss(log_path, run_dir / "loss.png", title=f"{cfg.model} ({cfg.method})")
    shutil.rmtree(run_dir / "trainer", ignore_errors=True)
    log.info("fine-tuned %d examples, %d steps, loss %s -> %s in %.1fs",
             len(encoded), stats["steps"], stats["first_loss"], stats["final_loss"], seconds)
    return FinetuneResult(path, model, tokenizer, stats)


def _save(cfg: FinetuneConfig, model: Any, tokenizer: Any, run_dir: Path) -> Path:
    """Save atomically (tmp dir + rename) so a crash never leaves a half-written adapter."""
    target = run_dir / ("adapter" if cfg.method == "lora" else "model")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
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
