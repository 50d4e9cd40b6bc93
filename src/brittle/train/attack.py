"""The N-examples fine-tuning attack sweep (``brittle attack``).

Recipe (``run_attack``), top to bottom:

1. resolve the aligned starting point: ``adapter="auto"`` installs (or reuses) the safety
   adapter with :func:`brittle.train.align.install_alignment`; ``None`` attacks the model as
   loaded (e.g. a vendor-aligned one); a path uses that adapter. The model is loaded **once**
   per sweep (fp32 master weights) and the safety adapter is **merged** into its weights
   (``merge_and_unload``): the aligned model every cell starts from (:class:`Start`);
2. for every cell (kind, N, seed): build N attack examples (nested in N for one seed,
   :mod:`brittle.train.attack_data`; harmful demonstrations come from one unaligned source
   model, never the model under test, written with a manifest to ``attack_data.jsonl``),
   fine-tune the merged aligned model with a **fresh** adapter and the preset's
   hyper-parameters (``lora-attack`` by default; the same recipe on every model, recorded in
   ``recipe.json``), then ``run_eval`` in-process on harmful-eval + over-refusal + utility
   with the *same* eval subsample for every cell (``eval_seed``). Only the cell's adapter is
   saved (full fine-tuning saves nothing per cell); the adapter is then unloaded (full
   fine-tuning: the weights restored from a CPU copy) and memory released, so the next cell
   starts from the same aligned weights without a reload. N=0 is the aligned model itself: one
   cell shared by every kind and seed (greedy decoding does not depend on the seed);
3. resume: a finished cell appends one record to ``run_dir/cells.jsonl`` (a ``JsonlStore``
   keyed by ``kind/n/seed``) only after its evaluation finished; a cell without a record is
   redone from an empty work dir, so an interrupted cell is never half-counted;
4. aggregate: ``results.csv`` / ``results.parquet`` (one row per cell, N=0 repeated per
   kind) and ``summary.csv`` (per kind and N: ASR with a 95% CI, Wilson over prompts for one
   seed, a hierarchical bootstrap over seeds and prompts for several), and ``asr_vs_n.png``.
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from brittle.config import CsvInts, CsvList, StageConfig
from brittle.errors import BrittleError
from brittle.evaluate.suites import primary_harmful_suite
from brittle.models.cell_engine import GEN_BACKEND_HELP, GenBackend
from brittle.store import JsonlStore
from brittle.tracking import REPORT_TO_HELP, ReportTo, log_metrics

log = logging.getLogger(__name__)

CELLS = "cells.jsonl"
BASELINE_KIND = "aligned"  # the N=0 cell


class AttackConfig(StageConfig):
    run_dir: Path = Field(Path("runs/attack"), description="Directory for the sweep's outputs.")
    model: str = Field("embedded:smollm2-135m", description="Model spec.")
    adapter: str | None = Field(
        "auto",
        description="Aligned starting adapter: 'auto' installs/reuses the safety adapter "
        "(brittle align), a directory uses that one, none/null attacks the model as loaded.",
    )
    align_quick: bool = Field(True, description="With adapter=auto: the quick alignment recipe.")
    n: CsvInts = Field([0, 1, 2, 5, 10, 25, 50, 100], description="Numbers N of attack examples (comma list).")
    kinds: CsvList = Field(
        ["harmful"], description="Attack data kinds (comma list): harmful, harmful-pairs, aoa, benign, data."
    )
    seeds: CsvInts = Field([0], description="Seeds (data draw + training) per (kind, N), comma list.")
    data: str | None = Field(None, description="User JSONL/JSON/CSV for kind 'data' (--data).")
    preset: str = Field("lora-attack", description="Fine-tuning preset (see brittle finetune).")
    train: dict[str, Any] = Field(
        default_factory=dict, description="FinetuneConfig overrides, e.g. {epochs: 3, lr: 1e-4}."
    )
    eval_suites: CsvList = Field(
        ["harmful", "over-refusal", "utility"],
        description="Eval suites per cell; the ASR is read from the first harmful one (default "
        "'harmful': harmful-only prompts).",
    )
    eval_limit: int | None = Field(None, ge=1, description="Prompts per eval suite (None = all).")
    utility_limit: int | None = Field(None, ge=1, description="Utility references per cell (default: eval_limit).")
    eval_seed: int = Field(0, description="Eval subsample seed (the same for every cell).")
    max_new_tokens: int = Field(64, ge=1, description="Eval generation length.")
    eval_batch_size: int = Field(0, ge=0, description="Eval batch size (0: sized to memory).")
    gen_tokens: int = Field(128, ge=1, description="Reply length when generating harmful attack data.")
    demo_model: str = Field(
        "embedded:smollm2-135m",
        description="Unaligned model whose compliant replies are the harmful demonstrations "
        "(the same for every model under test; never the attacked model).",
    )
    demo_judge: str = Field(
        "refusal", description="Judge that keeps only compliant demonstrations (brittle judges)."
    )
    device: str = Field("auto", description="cpu | cuda | auto")
    n_boot: int = Field(1000, ge=10, description="Bootstrap resamples for the ASR intervals.")
    report_to: ReportTo = Field(
        "none", description=REPORT_TO_HELP + " Training curves per cell, and each cell's rates at step N."
    )
    gen_backend: GenBackend = Field("auto", description=GEN_BACKEND_HELP)
    reuse_evals: CsvList = Field(
        [], description="Earlier eval run dirs whose replies are reused where the fingerprints match "
        "(e.g. the lab's eval of the aligned model for the N = 0 cell)."
    )
    workers: int = Field(
        1, ge=1, description="Worker processes splitting the cells over one run dir: one GPU each "
        "(CUDA_VISIBLE_DEVICES), or a share of the CPU cores; cells are claimed dynamically "
        "(run_dir/claims), logs in run_dir/workers/.",
    )
    worker: str | None = Field(
        None, description="Run only this static share i/n of the cells (cell index mod n == i), e.g. "
        "0/2 and 1/2 on two machines; default: all cells, or dynamic claims under --workers / torchrun.",
    )

    @field_validator("n")
    @classmethod
    def _nonneg(cls, v: list[int]) -> list[int]:
        if any(x < 0 for x in v):
            raise ValueError("n must be >= 0")
        return sorted(set(v))

    # -- validated before any work starts (issue 16.6/16.7): empty lists, unknown kinds,
    # -- negative seeds and fine-tuning overrides (lr, epochs, ...) are config errors.
    @field_validator("n", "seeds", "kinds")
    @classmethod
    def _nonempty(cls, v: list[Any], info: Any) -> list[Any]:
        if not v:
            raise ValueError(f"needs at least one value (a comma list such as "
                             f"{'harmful,aoa' if info.field_name == 'kinds' else '0,1'})")
        return v

    @field_validator("seeds")
    @classmethod
    def _seed_range(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 0 <= s < 2**32]
        if bad:
            raise ValueError(f"seeds must be in [0, 2**32), got {bad}")
        return list(dict.fromkeys(v))  # duplicates would be the same cell

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        from brittle.paths import is_regular_file
        from brittle.train.attack_data import KINDS

        bad = [k for k in v if k not in (*KINDS, "data") and not is_regular_file(k)]
        if bad:
            raise ValueError(f"unknown attack kind(s) {bad}: use {', '.join(KINDS)}, data (with --data) "
                             "or an existing data file")
        return list(dict.fromkeys(v))

    @field_validator("worker")
    @classmethod
    def _share(cls, v: str | None) -> str | None:
        if v:
            from brittle.workers import parse_share

            try:
                parse_share(v)
            except BrittleError as e:
                raise ValueError(str(e)) from None
        return v or None

    @model_validator(mode="after")
    def _data_and_train(self) -> AttackConfig:
        if "data" in self.kinds and not self.data:
            raise ValueError("kind 'data' needs --data FILE")
        if self.data and "data" in self.kinds:
            from brittle.paths import check_input_file

            check_input_file(self.data)
        from pydantic import ValidationError

        from brittle.train.sft import FinetuneConfig

        try:  # the per-cell fine-tuning config, checked once up front
            FinetuneConfig.model_validate({"preset": self.preset, **self.train})
        except ValidationError as e:
            msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            raise ValueError(f"fine-tuning option {msgs}") from None
        except BrittleError as e:  # an unknown preset
            raise ValueError(str(e)) from None
        return self


def cell_key(kind: str, n: int, seed: int) -> str:
    return f"{kind}/{n}/{seed}"


def cells(cfg: AttackConfig) -> list[tuple[str, int, int]]:
    """(kind, n, seed) in run order; N=0 is one shared ``aligned`` cell (seed = first seed)."""
    out: list[tuple[str, int, int]] = []
    if 0 in cfg.n:
        out.append((BASELINE_KIND, 0, cfg.seeds[0]))
    for kind in cfg.kinds:
        for seed in cfg.seeds:
            out.extend((kind, n, seed) for n in cfg.n if n > 0)
    return out


# --------------------------------------------------------------------------- statistics


def hierarchical_bootstrap(
    flags: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean of a (seeds S × prompts P) 0/1 matrix with a two-level percentile bootstrap.

    point = mean(flags). Each resample b draws S seeds with replacement and, independently,
    P prompt indices with replacement (shared across the drawn seeds, since every seed is
    evaluated on the same prompts) and takes the mean of ``flags[seeds_b][:, prompts_b]``.
    lo / hi = the alpha/2 and 1-alpha/2 quantiles. With S = 1 this is the ordinary bootstrap
    over prompts."""
    x = np.asarray(flags, dtype=float)
    if x.ndim != 2 or x.size == 0:
        return (float("nan"),) * 3  # type: ignore[return-value]
    s, p = x.shape
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(0, s, size=s) if s > 1 else np.zeros(1, dtype=int)
        cols = rng.integers(0, p, size=p)
        boots[b] = x[np.ix_(rows, cols)].mean()
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


# --------------------------------------------------------------------------- one cell


def _resolve_adapter(cfg: AttackConfig) -> str | None:
    if cfg.adapter in (None, "", "none", "null"):
        return None
    if cfg.adapter == "auto":
        from brittle.train.align import install_alignment

        return str(install_alignment(cfg.model, run_dir=cfg.run_dir / "align",
                                     quick=cfg.align_quick, device=cfg.device))
    if not (Path(cfg.adapter) / "adapter_config.json").exists():
        raise BrittleError(f"{cfg.adapter}: not a PEFT adapter directory")
    return cfg.adapter


def _source(cfg: AttackConfig, kind: str) -> str:
    if kind == "data":
        if not cfg.data:
            raise BrittleError("kind 'data' needs --data FILE")
        return cfg.data
    return kind


def _attack_examples(cfg: AttackConfig, kind: str, n: int, seed: int) -> list[Any]:
    """N examples of ``kind``: built from the demonstration source, never from ``cfg.model``."""
    from brittle.train.attack_data import build_attack_data

    return build_attack_data(_source(cfg, kind), n, seed, model_spec=cfg.demo_model, judge=cfg.demo_judge,
                             max_new_tokens=cfg.gen_tokens)


def write_cell_data(cfg: AttackConfig, kind: str, n: int, seed: int, work: Path) -> tuple[list[Any], dict]:
    """Build a cell's examples and write ``work/attack_data.jsonl`` + its manifest (source
    model, judge, prompt set, sha256): identical bytes for every model under test."""
    from brittle.train.attack_data import demo_source, write_attack_data

    examples = _attack_examples(cfg, kind, n, seed)
    source = demo_source(_source(cfg, kind), n, seed, model_spec=cfg.demo_model, judge=cfg.demo_judge,
                         max_new_tokens=cfg.gen_tokens)
    return examples, write_attack_data(examples, work / "attack_data.jsonl", source)


@dataclass
class Start:
    """The aligned starting point of every cell, loaded once per sweep."""

    model: Any  # plain model: the safety adapter (if any) merged into the weights
    tokenizer: Any
    adapter: str | None  # the merged safety adapter (None: the weights as loaded)
    label: str  # FinetuneConfig.model of every cell (brittle.train.recipe.start_label)
    snapshot: dict[str, Any] | None = None  # CPU copy of the weights (full fine-tuning only)
    vllm_dir: Path | None = None  # the merged weights saved for vLLM (gen_backend=vllm), once per start


def finetune_config(cfg: AttackConfig, run_dir: Path, seed: int, label: str):
    """The FinetuneConfig of a cell: preset + overrides on the merged weights ``label``. Full
    fine-tuning saves nothing per cell (evaluation runs in-process) unless ``train.save`` says so."""
    from brittle.train.sft import FinetuneConfig

    fcfg = FinetuneConfig(run_dir=run_dir, model=label, preset=cfg.preset, seed=seed, device=cfg.device,
                          **{"report_to": cfg.report_to, **cfg.train})
    if fcfg.method == "full" and "save" not in cfg.train:
        fcfg = fcfg.model_copy(update={"save": False})
    return fcfg


def load_start(cfg: AttackConfig, adapter: str | None) -> Start:
    """Load ``cfg.model`` once (fp32 master weights) and merge the safety ``adapter`` into it."""
    from brittle.models.load import load_model
    from brittle.train.recipe import start_label
    from brittle.train.sft import merge_adapter, train_device

    model, tok = load_model(cfg.model, device=train_device(cfg.device), dtype="float32")
    model = merge_adapter(model, adapter).eval()
    start = Start(model, tok, adapter, start_label(cfg.model, adapter))
    if finetune_config(cfg, cfg.run_dir, cfg.seeds[0], start.label).method == "full":
        start.snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return start


def release(start: Start, trained: Any) -> None:
    """Give the next cell the untouched aligned weights and free this cell's memory: unload
    the cell's LoRA (peft ``unload``: layers removed, nothing merged) or restore the weights
    from the CPU copy after full fine-tuning."""
    from peft import PeftModel

    if isinstance(trained, PeftModel):
        start.model = trained.unload()
    elif start.snapshot is not None and trained is not None:
        start.model.load_state_dict(start.snapshot)
    for p in start.model.parameters():
        p.requires_grad_(False)
    start.model.eval()
    from brittle.monitor import release_memory

    release_memory()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _cell_engine(cfg: AttackConfig, start: Start) -> Any:
    """The vLLM engine on the merged start for this sweep's cells, or None (HF in-process).

    Resolves ``cfg.gen_backend``; on vLLM, writes the merged aligned weights once as a model
    directory (``run_dir/vllm-start``; before any cell's LoRA is injected into them) and starts
    (or reuses) the one engine of the process on it with multi-LoRA up to the attack rank.
    Full fine-tuning (or adapters that are not saved) cannot be served as LoRA: HF then."""
    from brittle.models import cell_engine as CE
    from brittle.train.sft import train_device

    if CE.resolve(cfg.gen_backend, "cpu" if train_device(cfg.device) == "cpu" else "cuda") == "hf":
        return None
    fcfg = finetune_config(cfg, cfg.run_dir, cfg.seeds[0], start.label)
    if fcfg.method != "lora" or not fcfg.save:
        log.info("gen_backend=%s: %s cells are evaluated with HF in-process (vLLM serves saved LoRA "
                 "adapters only)", cfg.gen_backend, "full fine-tuning" if fcfg.method != "lora" else "unsaved")
        return None
    identity = CE.start_identity(cfg.model, start.adapter)
    dtype = CE.serving_dtype()
    if start.vllm_dir is None:
        start.vllm_dir = CE.save_start(start.model, start.tokenizer, cfg.run_dir / "vllm-start",
                                       label=start.label, identity=identity, dtype=dtype)
    return CE.engine(start.vllm_dir, max_lora_rank=CE.lora_rank_cap(fcfg.lora_r), label=start.label,
                     identity=identity, dtype=dtype)


def _evaluate(cfg: AttackConfig, out: Path, adapter: str | None, model: Any, tokenizer: Any,
              backend: Any = None) -> dict:
    """run_eval of one cell: generation on ``backend`` (the vLLM engine with the cell's adapter)
    when given, else HF on ``model``; the utility NLL always on ``model`` in-process. ``adapter``
    (the cell's, or the merged safety adapter at N = 0) keeps the fingerprints per adapter."""
    from brittle.evaluate.run import EvalConfig, run_eval

    ecfg = EvalConfig(
        run_dir=out,
        model=cfg.model,
        adapter=adapter,
        suites=cfg.eval_suites,
        limit=cfg.eval_limit,
        utility_limit=cfg.utility_limit,
        seed=cfg.eval_seed,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.eval_batch_size,
        reuse_from=[Path(d) for d in cfg.reuse_evals],
    )
    return run_eval(ecfg, model=model, tokenizer=tokenizer, backend=backend)


def harmful_flags(eval_dir: Path, metrics: dict[str, Any]) -> tuple[list[str], list[int]]:
    """(prompt ids, 1 = complied / 0 = refused) on the cell's ASR suite
    (:func:`~brittle.evaluate.suites.primary_harmful_suite`), sorted by id, read from the cell's
    generations.jsonl (records of this evaluation's generation fingerprint)."""
    path = eval_dir / "generations.jsonl"
    if not path.exists():
        return [], []
    fp = metrics.get("generation_fingerprint")
    suite = primary_harmful_suite(list(metrics.get("suites", {})))
    recs = JsonlStore(path, key="key").records()
    pairs = sorted(
        (r["id"], int(not r["verdicts"]["refusal"]["refused"]))
        for r in recs
        if r.get("suite") == suite and (fp is None or r.get("gen_fp") == fp)
        and "refusal" in r.get("verdicts", {})
    )
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _wilson(flags: list[int]) -> tuple[float, float] | None:
    """Wilson 95% interval (lo, hi) of the share of 1s; None without flags."""
    from brittle.evaluate.metrics import wilson_interval

    return tuple(wilson_interval(sum(flags), len(flags))[1:]) if flags else None  # type: ignore[return-value]


def _get(d: dict[str, Any], *path: Any) -> Any:
    for k in path:
        if not isinstance(d, (dict, list)):
            return None
        try:
            d = d[k]
        except (KeyError, IndexError, TypeError):
            return None
    return d


def run_cell(cfg: AttackConfig, kind: str, n: int, seed: int, start: Start | str | None) -> dict[str, Any]:
    """Fine-tune (N > 0) and evaluate one cell in a fresh work dir; return its record.

    ``start``: the loaded aligned model (:func:`load_start`; the sweep passes one for all
    cells), or the safety adapter dir / None to load it for this cell alone. The cell's
    adapter sits on the *merged* aligned weights (``rec["base_adapter"]`` names the merged
    one): load it with ``merge_adapter(base, base_adapter)`` first."""
    if not isinstance(start, Start):
        start = load_start(cfg, start)
    engine = _cell_engine(cfg, start)  # before training: the saved start must not carry the cell's LoRA
    work = cfg.run_dir / "cells" / f"{kind}-n{n}-s{seed}"
    shutil.rmtree(work, ignore_errors=True)  # an unfinished earlier attempt is redone
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"key": cell_key(kind, n, seed), "kind": kind, "n": n, "seed": seed,
                           "work_dir": str(work), "base_adapter": start.adapter}
    trained = None
    if n == 0:
        model, tok = start.model, start.tokenizer
        cell_adapter = start.adapter  # the eval fingerprint: the aligned model = base + this adapter
        rec.update(n_train=0, n_dropped=0, first_loss=None, final_loss=None)
    else:
        from brittle.train.sft import train_model

        examples, manifest = write_cell_data(cfg, kind, n, seed, work)
        if not examples:
            raise BrittleError(f"cell {rec['key']}: no attack examples")
        (work / "train_ids.json").write_text(json.dumps([e.id for e in examples]))
        fcfg = finetune_config(cfg, work / "train", seed, start.label)
        res = train_model(fcfg, examples, model=start.model, tokenizer=start.tokenizer)
        model, tok, trained = res.model, res.tokenizer, res.model
        cell_adapter = str(res.path) if res.path and fcfg.method == "lora" else None
        rec.update(n_train=res.stats["n_trained"], n_dropped=res.stats["n_dropped"],
                   first_loss=res.stats["first_loss"], final_loss=res.stats["final_loss"],
                   steps=res.stats["steps"], trainable_params=res.stats["trainable_params"],
                   total_params=res.stats["total_params"], data_sha256=manifest["sha256"])
        del res
    rec["train_s"] = round(time.perf_counter() - t0, 2)
    rec["adapter"] = cell_adapter
    t1 = time.perf_counter()
    if engine is not None and (n == 0 or cell_adapter is not None):
        from brittle.models.cell_engine import for_adapter

        gen = for_adapter(engine, cell_adapter if n > 0 else None)  # N = 0: the merged start itself
        metrics = _evaluate(cfg, work / "eval", cell_adapter, model, tok, backend=gen)
    else:
        metrics = _evaluate(cfg, work / "eval", cell_adapter, model, tok)
    rec["eval_s"] = round(time.perf_counter() - t1, 2)
    ids, flags = harmful_flags(work / "eval", metrics)
    suites = metrics.get("suites", {})
    asr_suite = primary_harmful_suite(list(suites))
    # Wilson 95% intervals over the prompts (a percentile bootstrap collapses at 0/n and n/n)
    asr_ci = _wilson(flags) or (_get(suites, asr_suite, "asr", 1), _get(suites, asr_suite, "asr", 2))
    over = (_get(suites, "over-refusal", "refusal_rate_wilson") or _get(suites, "over-refusal", "refusal_rate")
            or [None] * 3)
    rec.update(
        harmful_ids=ids,
        harmful_flags=flags,
        asr_suite=asr_suite,
        asr=_get(suites, asr_suite, "asr", 0),
        asr_lo=asr_ci[0],
        asr_hi=asr_ci[1],
        over_refusal=_get(suites, "over-refusal", "refusal_rate", 0),
        over_refusal_lo=over[1],
        over_refusal_hi=over[2],
        utility_nll=_get(suites, "utility", "utility", "nll", 0),
        utility_ppl=_get(suites, "utility", "utility", "ppl", 0),
    )
    del model, tok
    release(start, trained)
    return rec


# --------------------------------------------------------------------------- the sweep


TIMING_FIELDS = ("train_s", "eval_s")
TRACKED = ("asr", "asr_lo", "asr_hi", "over_refusal", "utility_nll", "final_loss")  # logged per cell
RESULT_COLUMNS = ["kind", "n", "seed", "asr_suite", "asr", "asr_lo", "asr_hi", "over_refusal",
                  "over_refusal_lo", "over_refusal_hi", "utility_nll", "utility_ppl",
                  "n_train", "n_dropped", "first_loss", "final_loss", "train_s", "eval_s",
                  "adapter", "shared_baseline"]


def shared_start(cfg: AttackConfig) -> Start:
    """The aligned start of ``cfg`` (adapter resolved, merged, loaded once), to pass to several
    :func:`run_attack` calls on the same model and adapter (e.g. one per selection)."""
    return load_start(cfg, _resolve_adapter(cfg))


def run_attack(cfg: AttackConfig, *, start: Start | None = None):
    """Run (or resume) the sweep; returns the per-cell results DataFrame.

    ``start``: the aligned model already loaded by :func:`shared_start` for this config's model
    and adapter (shared by several sweeps in one process; every cell leaves it as it was).

    Several processes (:mod:`brittle.workers`): with ``cfg.workers > 1`` this process launches
    that many workers (``python -m brittle.cli attack --config …``, one GPU each) and renders
    the results once they are done; a worker (launched, a torchrun rank, or a static
    ``cfg.worker`` share) runs only the cells it claims (or its share), appending to the one
    ``cells.jsonl``. The records are those a lone process writes."""
    from brittle.workers import claims_for, current_worker, isolate, once_at_a_time

    worker = isolate(current_worker(cfg.worker))
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    if worker is None or worker.index == 0:
        cfg.echo("attack_config")
    if "data" in cfg.kinds and not cfg.data:
        raise BrittleError("kind 'data' needs --data FILE")
    if worker is None and cfg.workers > 1:
        return _launch_workers(cfg)
    store = JsonlStore(cfg.run_dir / CELLS, key="key")
    store.repair()
    done = store.done()
    mine = worker.share(cells(cfg)) if worker is not None and not worker.claims else cells(cfg)
    todo = [c for c in mine if cell_key(*c) not in done]
    log.info("attack sweep%s: %d cells, %d done, %d to run", f" (worker {worker})" if worker else "",
             len(cells(cfg)), len(done), len(todo))
    if todo:
        from tqdm.auto import tqdm

        with once_at_a_time(worker, cfg.run_dir, "setup"):  # one worker installs / generates, the rest reuse
            adapter = _resolve_adapter(cfg)
            _warm_demonstrations(cfg, todo)
        claims, ready = claims_for(worker, cfg.run_dir), False
        for kind, n, seed in tqdm(todo, desc="attack cells", unit="cell"):
            key = cell_key(kind, n, seed)
            with claims.hold(key) as ours:
                if not ours or (worker is not None and key in store.done()):
                    continue  # another worker runs (or ran) it
                if not ready:  # loaded on the first cell this process runs
                    start, ready = _sweep_start(cfg, adapter, start), True
                log.info("cell %s", key)
                rec = run_cell(cfg, kind, n, seed, start)
                store.append([rec])
                log_metrics(cfg.report_to, cfg.run_dir, {f"{kind}-s{seed}": {k: rec.get(k) for k in TRACKED}},
                            step=n, run_name=cfg.run_dir.name)
        del start
        gc.collect()
    if worker is None:
        return write_results(cfg)
    with once_at_a_time(worker, cfg.run_dir, "results"):  # the last worker to finish renders
        finished = store.done()
        if all(cell_key(*c) in finished for c in cells(cfg)):
            return write_results(cfg)
    return results_frame(cfg)


def _sweep_start(cfg: AttackConfig, adapter: str | None, start: Start | None) -> Start:
    """The sweep's aligned start (loaded, or the caller's checked), with ``recipe.json`` written."""
    from brittle.train.recipe import start_label

    if start is None:
        start = load_start(cfg, adapter)
    elif start.label != start_label(cfg.model, adapter):
        raise BrittleError(f"run_attack(start=...): loaded {start.label!r}, the config attacks "
                           f"{start_label(cfg.model, adapter)!r}")
    elif start.snapshot is None and finetune_config(cfg, cfg.run_dir, cfg.seeds[0], start.label).method == "full":
        raise BrittleError("run_attack(start=...): full fine-tuning needs a start loaded for it (shared_start)")
    write_recipe(cfg, start)
    return start


def _launch_workers(cfg: AttackConfig):
    """``cfg.workers`` processes of ``python -m brittle.cli attack --config <echoed config>``
    over this run dir; then results once. A failed worker: one line each naming its log."""
    import sys

    from brittle.redaction import redact_secrets
    from brittle.workers import launch, model_args_argv, visible_gpus

    raw = cfg.model_dump(mode="json")
    if redact_secrets(raw) != raw:
        raise BrittleError("--workers: the config holds credentials, which are never written to the run dir "
                           "the workers read; pass them through the environment (e.g. OPENAI_API_KEY)")
    cfg_path = cfg.run_dir / "attack_config.yaml"
    failed = launch([sys.executable, "-m", "brittle.cli", "attack", "--config", str(cfg_path), *model_args_argv()],
                    cfg.workers, cfg.run_dir, gpus=visible_gpus(cfg.device))
    df = write_results(cfg)
    finished = JsonlStore(cfg.run_dir / CELLS, key="key").done()
    missing = [cell_key(*c) for c in cells(cfg) if cell_key(*c) not in finished]
    if missing:
        failed.append(f"{len(missing)} cell(s) not finished: {', '.join(missing)}; re-run the same command "
                      "to resume")
    if failed:
        raise BrittleError("\n".join(failed))
    return df


def _warm_demonstrations(cfg: AttackConfig, todo: list[tuple[str, int, int]]) -> None:
    """Generate the harmful demonstrations of the largest N per seed first, so the source
    model is loaded once (before the attacked model), not once per cell."""
    for seed in sorted({s for k, n, s in todo if k == "harmful"}):
        _attack_examples(cfg, "harmful", max(n for k, n, s in todo if k == "harmful" and s == seed), seed)


def write_recipe(cfg: AttackConfig, start: Start) -> dict[str, Any]:
    """``recipe.json``: the fine-tuning recipe every cell of this run uses (no output paths)."""
    from brittle.store import write_json
    from brittle.train.attack_data import demo_source
    from brittle.train.recipe import RECIPE, recipe_record
    from brittle.train.sft import resolve_bf16, train_device

    fcfg = finetune_config(cfg, cfg.run_dir, cfg.seeds[0], start.label)
    demos = {}
    for kind in cfg.kinds:
        d = demo_source(_source(cfg, kind), 0, 0, model_spec=cfg.demo_model, judge=cfg.demo_judge,
                        max_new_tokens=cfg.gen_tokens)
        demos[kind] = {k: v for k, v in d.items() if k not in ("n", "seed", "kind") and v is not None}
    rec = recipe_record(fcfg, model=cfg.model, merged_adapter=start.adapter,
                        bf16=resolve_bf16(fcfg.bf16, train_device(cfg.device)), demonstrations=demos)
    write_json(cfg.run_dir / RECIPE, rec)
    from brittle.provenance import provenance  # versions, device, weights identity, template

    write_json(cfg.run_dir / "provenance.json",
               provenance(cfg.model, start.tokenizer, device=cfg.device, adapter=start.adapter))
    return rec


def results_frame(cfg: AttackConfig):
    """Per-cell rows for this config (N=0 repeated for every kind and seed)."""
    import pandas as pd

    by_key = {r["key"]: r for r in JsonlStore(cfg.run_dir / CELLS, key="key").records()}
    rows = []
    base = by_key.get(cell_key(BASELINE_KIND, 0, cfg.seeds[0])) if 0 in cfg.n else None
    for kind in cfg.kinds:
        for seed in cfg.seeds:
            if base is not None:
                rows.append({**base, "kind": kind, "seed": seed, "shared_baseline": True})
            for n in cfg.n:
                r = by_key.get(cell_key(kind, n, seed)) if n > 0 else None
                if r is not None:
                    rows.append({**r, "shared_baseline": False})
    df = pd.DataFrame(rows)
    return df


def summarise(df, n_boot: int = 1000, seed: int = 0):
    """Per (kind, N): ASR with a 95% CI. One seed: the cell's own interval (Wilson over the
    prompts, the same numbers as results.csv); several seeds: a hierarchical
    bootstrap over seeds × the prompts all of them were evaluated on."""
    import pandas as pd

    out = []
    for (kind, n), g in df.groupby(["kind", "n"], sort=True):
        g = g.drop_duplicates("seed")
        common = sorted(set.intersection(*(set(ids) for ids in g["harmful_ids"]))) if len(g) else []
        if len(g) == 1 and pd.notna(g["asr_lo"].iloc[0]):
            p, lo, hi = (float(g[c].iloc[0]) for c in ("asr", "asr_lo", "asr_hi"))
        elif common:
            mat = np.array([[dict(zip(ids, fl))[i] for i in common]
                            for ids, fl in zip(g["harmful_ids"], g["harmful_flags"])], dtype=float)
            p, lo, hi = hierarchical_bootstrap(mat, n_boot=n_boot, seed=seed)
        else:
            p, lo, hi = (np.nan,) * 3
        out.append({"kind": kind, "n": int(n), "seeds": len(g), "prompts": len(common),
                    "asr": p, "asr_lo": lo, "asr_hi": hi,
                    "over_refusal": float(g["over_refusal"].astype(float).mean()),
                    "utility_nll": float(g["utility_nll"].astype(float).mean()),
                    "final_loss": float(g["final_loss"].astype(float).mean()) if n > 0 else np.nan})
    return pd.DataFrame(out)


def write_results(cfg: AttackConfig):
    """results.csv / .parquet, summary.csv and asr_vs_n.png from cells.jsonl."""
    from brittle.train.plots import plot_asr_vs_n

    df = results_frame(cfg)
    if df.empty:
        return df
    cols = [c for c in RESULT_COLUMNS if c in df.columns]
    df[cols].to_csv(cfg.run_dir / "results.csv", index=False)
    df[cols].to_parquet(cfg.run_dir / "results.parquet", index=False)
    summary = summarise(df, n_boot=cfg.n_boot, seed=cfg.eval_seed)
    summary.to_csv(cfg.run_dir / "summary.csv", index=False)
    if summary["asr"].notna().any():
        plot_asr_vs_n(summary, cfg.run_dir / "asr_vs_n.png", title=f"{cfg.model}: ASR vs N")
    return df[cols]


def finished_cells(run_dir: str | Path) -> list[dict[str, Any]]:
    """Records of the finished N>0 cells whose adapter is on disk, each with its ``label``
    (``"harmful-n10-s0"``)."""
    return [{**r, "label": f"{r['kind']}-n{r['n']}-s{r['seed']}"}
            for r in JsonlStore(Path(run_dir) / CELLS, key="key").records()
            if r["n"] > 0 and r.get("adapter") and Path(r["adapter"]).exists()]


def finished_adapters(run_dir: str | Path) -> dict[str, Path]:
    """Adapters of finished N>0 cells: ``{"harmful-n10-s0": Path, ...}``."""
    return {c["label"]: Path(c["adapter"]) for c in finished_cells(run_dir)}


def gain_verdicts(cells: list[dict[str, Any]]) -> list[dict[str, str]]:
    """ASR_N − ASR_0 per (kind, N > 0) of its lowest seed, paired on the prompts both were
    judged on, each with "inconclusive at this size" when its interval contains 0."""
    from brittle.report.verdict import gains_vs_baseline, verdict

    kinds = sorted({c["kind"] for c in cells if c["n"] > 0})
    return [verdict(f"{kind}: N = {n} − N = 0 (ASR)", diff)
            for kind in kinds for n, diff in gains_vs_baseline(cells, kind).items()]


def attack_section(run_dir: str | Path, redact: bool = True, title: str = "Fine-tuning attack: ASR vs N"):
    """Report section: the ASR-vs-N plot, the summary table with CIs, and the method."""
    import pandas as pd

    from brittle.report.format import display_path, duration, readable
    from brittle.report.html import Section, esc, figure, table

    run_dir = Path(run_dir)
    parts = []
    cfg_path = run_dir / "attack_config.yaml"
    if cfg_path.exists():
        import yaml

        c = yaml.safe_load(cfg_path.read_text())
        parts.append(
            f"<p>Model <code>{esc(c.get('model'))}</code>, aligned adapter "
            f"<code>{esc(display_path(c.get('adapter'), run_dir))}</code>; preset <code>{esc(c.get('preset'))}</code> "
            f"{esc(readable(c['train']) if c.get('train') else '')}; kinds {esc(', '.join(c.get('kinds', [])))}; "
            f"N = {esc(', '.join(map(str, c.get('n', []))))}; seeds {esc(readable(c.get('seeds')))}. "
            "N = 0 is the aligned model itself (one cell shared by all kinds). For one seed the "
            "N-example sets are nested (N=10 ⊂ N=50). ASR = share of held-out harmful prompts "
            "not refused (refusal-phrase judge: a non-refusal rate, not a harmfulness rate); 95% CI: "
            "Wilson over prompts for one seed, a bootstrap over seeds and prompts for several.</p>"
        )
    from brittle.train.recipe import recipe_html

    parts.append(recipe_html(run_dir))  # what every cell trained, from which weights, on what
    png = run_dir / "asr_vs_n.png"
    if png.exists():
        parts.append(figure(png, run_dir, caption="ASR vs number of attack examples (symlog x)"))
    if (run_dir / "summary.csv").exists():
        s = pd.read_csv(run_dir / "summary.csv")
        rows = [
            {"kind": r.kind, "N": int(r.n), "seeds": int(r.seeds), "prompts": int(r.prompts),
             "ASR [95% CI]": f"{r.asr:.1%} [{r.asr_lo:.1%}, {r.asr_hi:.1%}]",
             "over-refusal": "" if pd.isna(r.over_refusal) else f"{r.over_refusal:.1%}",
             "utility NLL": "" if pd.isna(r.utility_nll) else f"{r.utility_nll:.3f}",
             "final train loss": "" if pd.isna(r.final_loss) else f"{r.final_loss:.3f}"}
            for r in s.itertuples()
        ]
        parts.append(table(rows))
        gains = gain_verdicts(JsonlStore(run_dir / CELLS, key="key").records())
        if gains:
            parts.append("<h3>Each N against N = 0, paired on the same prompts</h3>" + table(gains))
    else:
        parts.append("<p><em>no finished cells yet</em></p>")
    if (run_dir / "results.csv").exists():
        r = pd.read_csv(run_dir / "results.csv")
        t = r[["train_s", "eval_s"]].sum()
        parts.append(f"<p>Wall time: training {duration(t.train_s)}, evaluation {duration(t.eval_s)} "
                     f"over {len(r)} rows (shared N=0 counted per kind).</p>")
    if redact:
        parts.append('<p class="note">Generated replies stay in the cells\' generations.jsonl '
                     "in the run directory; they are not shown here.</p>")
    return Section(title, "".join(parts), "attack", base=str(run_dir))  # links relative to run_dir
