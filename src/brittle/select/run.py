"""`brittle select`: score a benign pool against harmful/safe anchors and write selections.

Recipe (reads top to bottom):

1. load the pool (embedded data set name + split, or a file) and the anchor sets;
2. load the aligned model (model + adapter, merged) once;
3. for each method: scores (cached per method by a fingerprint of model, adapter, pool,
   anchors and options) -> ``scores/<method>.json``;
4. ``scores.parquet`` (one row per pool example, one column per method/component),
   selections ``selections/<name>.jsonl`` (top-K per method, bottom-K per method, random-K,
   list-K, math-K, harmful-K) and ``summary.json`` (format make-up per selection, agreement
   between methods, top-scored examples).

:func:`compare_selections` fine-tunes the aligned model on each selection
(``brittle.train.attack.run_attack`` with ``data=<selection file>``) and records the ASR
per selection and seed; :func:`brittle.select.section.select_section` renders it all.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from brittle.config import CsvList, StageConfig
from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.evaluate.suites import DEFAULT_HARMFUL_SUITE
from brittle.fingerprint import fingerprint
from brittle.models.cell_engine import GEN_BACKEND_HELP, GenBackend
from brittle.models.identity import model_identity
from brittle.select import scores as S
from brittle.select.compute import (
    ANCHOR_METHODS,
    METHODS,
    ScoreOptions,
    make_config,
    method_scores,
    repr_anchor_names,
)
from brittle.select.selection import (
    Selection,
    bottom_k,
    format_k,
    format_makeup,
    formats_of,
    random_k,
    read_selection,
    top_k,
    write_selection,
)
from brittle.store import JsonlStore, read_json, write_json

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
SCORES = "scores.parquet"
COMPARE = "compare"


class SelectConfig(StageConfig):
    run_dir: Path = Field(Path("runs/select"), description="Directory for scores, selections and summary.json.")
    model: str = Field("embedded:smollm2-135m", description="Model spec of the model to attack (the aligned model).")
    adapter: str | None = Field(None, description="Adapter directory applied (and merged) on top of the model, e.g. the installed alignment.")
    pool: str = Field("benign", description="Candidate pool: an embedded data set name or a data file (JSONL/JSON/CSV/Parquet).")
    pool_split: str | None = Field("train", description="Split of an embedded pool data set.")
    pool_limit: int | None = Field(None, ge=1, description="Keep a seeded random subset of N pool examples.")
    methods: CsvList = Field(["exact-anchor", "repr"], description=f"Scoring methods: {', '.join(METHODS)} (comma list).")
    k: int = Field(100, ge=1, description="Selection size K (paper: 100; quick lab: 50).")
    anchor_source: str = Field("harmful-pairs", description="Harmful anchors: 'harmful-pairs' (offline uncensorbench pairs) or 'attack' (build_attack_data('harmful')).")
    anchor_category: str | None = Field(None, description="Anchor on one harm category only (the paper: illegal activities).")
    n_anchor: int = Field(10, ge=1, description="Anchor examples per set for gradient methods (reference: 10).")
    n_anchor_repr: int = Field(100, ge=1, description="Harmful anchor examples for repr (reference: 100).")
    anchor_response_tokens: int | None = Field(10, description="Anchor gradients use only the first N response tokens (reference: 10); None = all.")
    candidate_response_tokens: int | None = Field(None, description="Candidate gradients on the first N response tokens (reference: full response = None).")
    bidirectional: bool = Field(True, description="Subtract the safe-anchor scores (+1 harmful −1 safe1 −1 safe2).")
    repr_safe_anchors: bool = Field(True, description="repr: also compute the safe sets' max cosines and the bidirectional component (the repr score itself, as in the reference, uses the harmful anchors only).")
    selections: CsvList = Field(["top", "bottom", "random", "list", "math", "harmful"], description="Selections to write: top, bottom (per method), random, list, math, harmful.")
    grad_dim: int = Field(8192, ge=16, description="Projection dimension for the `grad` method (LESS: 8192).")
    batch_size: int = Field(8, ge=1, description="Feature batch size.")
    max_length: int | None = Field(512, description="Truncate examples to N tokens.")
    device: str = Field("auto", description="cpu | cuda | auto")
    seed: int = Field(0, description="Seed for anchors, random-K and format-K.")
    params: Literal["all", "trainable"] = Field("all", description="exact-anchor gradient space: all parameters (reference) or trainable = the weights of the attack's LoRA target linears (`trainable_targets`).")
    trainable_targets: CsvList | str = Field("all-linear", description="The attack's LoRA target modules ('all-linear' or a comma list): scored with --params trainable and used for the reported share of the anchor gradient in trainable weights.")
    gradient_checkpointing: bool = Field(False, description="exact-anchor: recompute each layer in backward (long candidates at 7B+).")
    gen_backend: GenBackend = Field("auto", description="--compare: " + GEN_BACKEND_HELP)
    workers: int = Field(1, ge=1, description="--compare: worker processes splitting the fine-tuning arms "
                         "(selection x seed) over one run dir, one GPU each (brittle.workers).")

    @field_validator("methods")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; choose from {list(METHODS)}")
        return v

    def options(self) -> ScoreOptions:
        return ScoreOptions(
            batch_size=self.batch_size, max_length=self.max_length,
            anchor_response_tokens=self.anchor_response_tokens,
            candidate_response_tokens=self.candidate_response_tokens,
            bidirectional=self.bidirectional, grad_dim=self.grad_dim, seed=self.seed, params=self.params,
            trainable_targets=self.trainable_targets if isinstance(self.trainable_targets, str) else tuple(self.trainable_targets),
            gradient_checkpointing=self.gradient_checkpointing, repr_safe=self.repr_safe_anchors,
        )


# ---- inputs --------------------------------------------------------------------------------


def load_pool(pool: str, split: str | None = "train", limit: int | None = None, seed: int = 0) -> list[Example]:
    """Examples with a response from a data file or an embedded data set; ``limit`` keeps a
    seeded random subset of that size (in the original order), so a small pool still mixes
    the sources (lists, math, …) of a data set that is stored source by source."""
    path = Path(pool)
    if path.suffix and path.exists():
        from brittle.data.io import read_examples

        exs = read_examples(path)
    elif path.suffix and not path.exists():
        raise BrittleError(f"{pool}: no such file")
    else:
        from brittle.data.embedded import load_dataset

        exs = load_dataset(pool, split)
    exs = [e for e in exs if e.response]
    if limit and limit < len(exs):
        keep = sorted(random_k(len(exs), limit, seed))  # seeded subset, original order kept
        exs = [exs[i] for i in keep]
    if not exs:
        raise BrittleError(f"pool {pool!r} has no examples with a response")
    return exs


def anchors_for(method: str, anchors: dict[str, list[Example]], n_grad: int, n_repr: int) -> dict[str, list[Example]]:
    n = n_repr if method == "repr" else n_grad
    return {k: v[:n] for k, v in anchors.items()}


def load_aligned(model_spec: str, adapter: str | None, device: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) of model + adapter; a PEFT adapter is merged so that full-parameter
    gradients are taken w.r.t. the aligned weights. Eval mode (no dropout)."""
    from brittle.models.load import load_model

    model, tok = load_model(model_spec, device=device, adapter=adapter)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.eval()
    return model, tok


def attack_kwargs(model_spec: str) -> dict[str, Any]:
    """Extra arguments of ``build_attack_data`` for anchor source 'attack': none, so the
    compliant answers come from the one unaligned demonstration source
    (``brittle.train.attack_data.DEMO_MODEL``) for every model — never ``model_spec``'s own
    replies (issue 13)."""
    return {}


def _ids(exs: Sequence[Example]) -> list[str]:
    return [e.id for e in exs]


def _adapter_identity(adapter: str | None) -> str | None:
    """Content fingerprint of an adapter dir (a retrained adapter at the same path is new)."""
    if not adapter:
        return None
    try:
        from brittle.models.backends import adapter_fingerprint

        return adapter_fingerprint(adapter)
    except (OSError, ValueError, BrittleError):
        return str(adapter)


# ---- scoring (shared with the audit) ---------------------------------------------------------


def score_pool(
    methods: Sequence[str],
    pool: Sequence[Example],
    anchors: dict[str, list[Example]],
    *,
    model_spec: str,
    adapter: str | None,
    opts: ScoreOptions,
    n_grad: int,
    n_repr: int,
    cache_dir: Path,
    device: str = "auto",
    model_tok: tuple[Any, Any] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """{method: {"score": …, components …}}; cached in ``cache_dir/<method>.json``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    loaded = model_tok
    for method in methods:
        anc = anchors_for(method, anchors, n_grad, n_repr) if method in ANCHOR_METHODS else {}
        fp = fingerprint(model_spec, adapter, _ids(pool), {k: _ids(v) for k, v in anc.items()},
                         method, opts, model_identity(model_spec), _adapter_identity(adapter))
        path = cache_dir / f"{method}.json"
        if path.exists():
            rec = read_json(path)
            if rec.get("fingerprint") == fp:
                log.info("%s scores: reusing %s", method, path)
                out[method] = {k: np.asarray(v, dtype=np.float64) for k, v in rec["scores"].items()}
                continue
        if loaded is None:
            loaded = load_aligned(model_spec, adapter, device)
        log.info("scoring %d examples with %s …", len(pool), method)
        t0 = time.perf_counter()
        res = method_scores(method, loaded[0], loaded[1], pool, anc, opts, cache_dir=cache_dir / f"{method}.shards")
        seconds = round(time.perf_counter() - t0, 2)
        log.info("%s: %.1fs (%.2f examples/s)", method, seconds, len(pool) / max(seconds, 1e-9))
        for k, v in res.items():
            if np.asarray(v).shape != (len(pool),):
                raise BrittleError(f"{method}: component {k} has shape {np.asarray(v).shape}, expected ({len(pool)},)")
        write_json(path, {"fingerprint": fp, "method": method, "seconds": seconds, "n": len(pool),
                          "scores": {k: np.asarray(v).tolist() for k, v in res.items()}})
        out[method] = res
    return out


def agreements(scores: dict[str, dict[str, np.ndarray]], k: int) -> dict[str, dict[str, float]]:
    """Pairwise :func:`scores.agreement` of the final scores of every two methods."""
    names = list(scores)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            out[f"{a}~{b}"] = S.agreement(scores[a]["score"], scores[b]["score"], k)
    return out


def _score_frame(pool: Sequence[Example], scores: dict[str, dict[str, np.ndarray]], fmts: list[set[str]]) -> Any:
    import pandas as pd

    df = pd.DataFrame({"pool_index": np.arange(len(pool)), "id": _ids(pool),
                       "formats": [",".join(sorted(f)) for f in fmts]})
    for method, parts in scores.items():
        for comp, v in parts.items():
            df[method if comp == "score" else f"{method}:{comp}"] = np.asarray(v, dtype=np.float64)
    return df


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    return x


# ---- the stage ---------------------------------------------------------------------------------


def run_select(cfg: SelectConfig, *, model: Any = None, tokenizer: Any = None,
               anchors: dict[str, list[Example]] | None = None) -> dict[str, Any]:
    """Score the pool, write scores / selections / summary.json; returns the summary."""
    from brittle.select.anchors import build_anchor_sets

    run_dir = Path(cfg.run_dir)
    cfg.echo("select_config")
    pool = load_pool(cfg.pool, cfg.pool_split, cfg.pool_limit, cfg.seed)
    fmts = formats_of(pool)
    if anchors is None:
        anchors = build_anchor_sets(
            max(cfg.n_anchor, cfg.n_anchor_repr), source=cfg.anchor_source,
            category=cfg.anchor_category, seed=cfg.seed, attack_kwargs=attack_kwargs(cfg.model),
        )
    scores = score_pool(
        cfg.methods, pool, anchors, model_spec=cfg.model, adapter=cfg.adapter, opts=cfg.options(),
        n_grad=cfg.n_anchor, n_repr=cfg.n_anchor_repr, cache_dir=run_dir / "scores", device=cfg.device,
        model_tok=(model, tokenizer) if model is not None else None,
    )
    df = _score_frame(pool, scores, fmts)
    df.to_parquet(run_dir / SCORES, index=False)

    sels = build_selections(cfg, pool, scores, anchors)
    sel_info = {}
    for sel in sels:
        src = sel.source if sel.source is not None else pool
        path = write_selection(run_dir / "selections" / f"{sel.name}.jsonl", src, sel)
        members = [src[i] for i in sel.indices]
        sel_info[sel.name] = {"file": str(path), "n": len(sel.indices), "makeup": format_makeup(members),
                              **sel.info}
    top = {
        m: [{"rank": r + 1, "pool_index": i, "id": pool[i].id, "score": float(scores[m]["score"][i]),
             "prompt": pool[i].prompt, "response": pool[i].response or "",
             "formats": sorted(fmts[i])}
            for r, i in enumerate(top_k(scores[m]["score"], 10))]
        for m in scores
    }
    repr_sets = repr_anchor_names(anchors, cfg.repr_safe_anchors)
    summary = {
        "model": cfg.model, "adapter": cfg.adapter, "pool": cfg.pool, "pool_split": cfg.pool_split,
        "n_pool": len(pool), "k": cfg.k, "methods": list(cfg.methods),
        "anchors": {k: {"n": min(len(v), cfg.n_anchor),
                        "n_repr": min(len(v), cfg.n_anchor_repr) if k in repr_sets else 0,
                        "source": cfg.anchor_source, "category": cfg.anchor_category}
                    for k, v in anchors.items()},
        "pool_makeup": format_makeup(pool), "selections": sel_info,
        "agreement": agreements(scores, cfg.k), "top": top,
        "seconds": {m: read_json(run_dir / "scores" / f"{m}.json").get("seconds") for m in scores},
    }
    write_json(run_dir / SUMMARY, _nan_to_none(summary))
    log.info("select: %d pool examples, %d selections -> %s", len(pool), len(sels), run_dir)
    return summary


def build_selections(
    cfg: SelectConfig, pool: Sequence[Example], scores: dict[str, dict[str, np.ndarray]],
    anchors: dict[str, list[Example]],
) -> list[Selection]:
    """The selections named in ``cfg.selections`` (K each)."""
    k, out = cfg.k, []
    for name in cfg.selections:
        if name in ("top", "bottom"):
            for m, parts in scores.items():
                idx = top_k(parts["score"], k) if name == "top" else bottom_k(parts["score"], k)
                out.append(Selection(f"{name}-{m}", idx, [float(parts["score"][i]) for i in idx],
                                     {"method": m}))
        elif name == "random":
            out.append(Selection("random", random_k(len(pool), k, cfg.seed)))
        elif name in ("list", "math", "numbered", "code", "short"):
            idx = format_k(pool, name, k, cfg.seed)
            out.append(Selection(name, idx, info={"format": name}))
        elif name == "harmful":
            harmful = _harmful_examples(cfg, anchors)
            if harmful:
                idx = random_k(len(harmful), k, cfg.seed)
                out.append(Selection("harmful", idx, info={"source": cfg.anchor_source}, source=harmful))
        else:
            raise BrittleError(f"unknown selection {name!r}")
    return out


def _harmful_examples(cfg: SelectConfig, anchors: dict[str, list[Example]]) -> list[Example]:
    """K harmful prompt + compliant answer pairs (the paper's 'harmful' upper reference)."""
    from brittle.select.anchors import build_anchor_sets

    try:
        sets = build_anchor_sets(cfg.k, source=cfg.anchor_source, seed=cfg.seed + 1, safe_styles=(),
                                 attack_kwargs=attack_kwargs(cfg.model))
        return sets["harmful"]
    except BrittleError as e:
        log.warning("no harmful-K selection: %s", e)
        return list(anchors.get("harmful", []))


# ---- the fine-tuning comparison ------------------------------------------------------------------


def compare_selections(
    cfg: SelectConfig | str | Path,
    *,
    seeds: Sequence[int] = (0,),
    eval_limit: int | None = None,
    names: Sequence[str] | None = None,
    attack_overrides: dict[str, Any] | None = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Fine-tune the aligned model on each selection file and evaluate it (``run_attack``
    with ``data=<file>``, one run per selection, all ``seeds``). Records one row per
    selection and seed in ``compare/results.jsonl`` (resumable) and returns them; ASR per
    selection with CIs is summarised by :func:`compare_table`. ``workers`` (default
    ``cfg.workers``): processes splitting the arms, see :func:`finetune_on_selections`."""
    scfg = cfg if isinstance(cfg, SelectConfig) else SelectConfig.load(Path(cfg) / "select_config.yaml")
    run_dir = Path(scfg.run_dir)
    summary = read_json(run_dir / SUMMARY)
    wanted = list(names) if names else [n for n in summary["selections"] if not n.startswith("bottom-")]
    files: dict[str, tuple[Path, int]] = {}
    for name in wanted:
        info = summary["selections"].get(name)
        if info is None:
            raise BrittleError(f"no selection {name!r} in {run_dir / SUMMARY}")
        if not info["n"]:
            log.warning("selection %s is empty (no such examples in the pool): not fine-tuned", name)
            continue
        files[name] = (Path(info["file"]), int(info["n"]))
    return finetune_on_selections(files, run_dir / COMPARE, model=scfg.model, adapter=scfg.adapter,
                                  seeds=seeds, eval_limit=eval_limit, device=scfg.device,
                                  attack_overrides={"gen_backend": scfg.gen_backend, **(attack_overrides or {})},
                                  workers=scfg.workers if workers is None else workers)


def finetune_on_selections(
    files: dict[str, tuple[Path, int]],
    out_dir: Path,
    *,
    model: str,
    adapter: str | None,
    seeds: Sequence[int] = (0,),
    eval_limit: int | None = None,
    device: str = "auto",
    attack_overrides: dict[str, Any] | None = None,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Fine-tune ``model`` (+ ``adapter``) on each selection file ``{name: (path, n)}`` and
    evaluate it on the harmful suite: one ``run_attack`` (kind ``data``) per file in
    ``out_dir/<name>``; one row per (name, seed) in ``out_dir/results.jsonl`` (resumable),
    ``out_dir/table.json`` from :func:`compare_table`.

    ``workers > 1``: that many processes (:func:`brittle.workers.launch`, one GPU each, logs in
    ``out_dir/workers/``) each walk the selections; ``run_attack`` in a worker runs only the
    (selection, seed) cells it claims, and a row is appended by whoever sees its cell
    finished first, so the rows equal a lone process's."""
    import importlib

    from brittle.store import file_lock
    from brittle.train.attack import AttackConfig, run_attack
    from brittle.workers import current_worker

    shared_start = getattr(importlib.import_module("brittle.train.attack"), "shared_start", None)
    worker = current_worker()
    if worker is None and workers > 1:
        _launch_compare(files, out_dir, workers, model=model, adapter=adapter, seeds=list(seeds),
                        eval_limit=eval_limit, device=device, attack_overrides=attack_overrides)
        # every row is in results.jsonl now: the lone pass below only renders table.json

    store = JsonlStore(out_dir / "results.jsonl", key=lambda r: f"{r['selection']}|{r['seed']}")
    done = store.done()
    start = None  # the aligned model, loaded once for every selection (same model, adapter, recipe)
    for name, (path, n) in files.items():
        todo = [s for s in seeds if f"{name}|{s}" not in done]
        if not todo:
            continue
        kw: dict[str, Any] = {
            "run_dir": out_dir / name, "model": model, "adapter": adapter or "none",
            "data": str(path), "n": [n], "kinds": ["data"], "seeds": list(todo),
            "eval_limit": eval_limit, "eval_suites": [DEFAULT_HARMFUL_SUITE], "device": device,
        }
        kw.update(attack_overrides or {})
        acfg = make_config(AttackConfig, **kw)
        if "data" not in type(acfg).model_fields:
            raise BrittleError("AttackConfig has no `data` field: cannot fine-tune on a selection file")
        if start is None and shared_start is not None:
            start = shared_start(acfg)
        df = run_attack(acfg, start=start) if start is not None else run_attack(acfg)
        finished = _finished_seeds(df, todo)  # a worker: also the seeds other workers finished
        with file_lock(out_dir / ".results.lock"):  # the check and the append as one step
            have = store.done()
            store.append([{"selection": name, "seed": int(s), "n": n, **_asr_of(df, s)}
                          for s in finished if f"{name}|{s}" not in have])
    by_key = {f"{r['selection']}|{r['seed']}": r for r in store.records()}
    rows = [by_key[f"{name}|{s}"] for name in files for s in seeds if f"{name}|{s}" in by_key]
    write_json(out_dir / "table.json", compare_table(rows))
    return rows


def _finished_seeds(df: Any, seeds: Sequence[int]) -> list[int]:
    """The ``seeds`` whose fine-tuned (n > 0) row is in a run_attack DataFrame."""
    if df is None or not len(df) or "seed" not in df.columns:
        return []
    rows = df[df["n"] > 0] if "n" in df.columns else df
    have = {int(x) for x in rows["seed"]}
    return [s for s in seeds if int(s) in have]


def _launch_compare(files: dict[str, tuple[Path, int]], out_dir: Path, workers: int, **kw: Any) -> None:
    """``workers`` processes of :func:`compare_worker` on ``out_dir``; one line per failed worker."""
    import sys

    from brittle.models.model_args import current_model_args
    from brittle.workers import launch, visible_gpus

    args = {"files": {k: [str(p), n] for k, (p, n) in files.items()}, "out_dir": str(out_dir),
            "model_args": current_model_args().given(), **kw}
    path = write_json(out_dir / "workers" / "compare_args.json", args)
    code = "import sys; from brittle.select.run import compare_worker; compare_worker(sys.argv[1])"
    failed = launch([sys.executable, "-c", code, str(path)], workers, out_dir, gpus=visible_gpus(kw["device"]))
    if failed:
        raise BrittleError("\n".join(failed))


def compare_worker(args_path: str | Path) -> None:
    """Entry point of one worker launched by :func:`finetune_on_selections` (``BRITTLE_WORKER``
    set by the launcher)."""
    from brittle.models.model_args import ModelArgs, use_model_args

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    a = read_json(args_path)
    files = {k: (Path(p), int(n)) for k, (p, n) in a.pop("files").items()}
    with use_model_args(ModelArgs(**a.pop("model_args"))):
        finetune_on_selections(files, Path(a.pop("out_dir")), **a)


def _asr_of(df: Any, seed: int) -> dict[str, Any]:
    """ASR (point, lo, hi) of the fine-tuned run of ``seed`` from a run_attack DataFrame:
    the row with that seed and the largest n (the n=0 baseline row, if any, is skipped)."""
    d = df
    if "seed" in d.columns:
        d = d[d["seed"] == seed]
    if "n" in d.columns and len(d):
        d = d[d["n"] == d["n"].max()]
    if not len(d) or "asr" not in d.columns:
        return {"asr": None, "asr_lo": None, "asr_hi": None}
    row = d.iloc[-1]
    v = row["asr"]
    if isinstance(v, (list, tuple, np.ndarray)):
        p, lo, hi = (float(x) for x in list(v)[:3])
    else:
        p = float(v)
        lo = float(row["asr_lo"]) if "asr_lo" in d.columns else math.nan
        hi = float(row["asr_hi"]) if "asr_hi" in d.columns else math.nan
    return _nan_to_none({"asr": p, "asr_lo": lo, "asr_hi": hi})


def seed_interval(values: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean over seeds with a Student-t interval: x̄ ± t_{1-α/2, n-1}·s/√n (NaNs for n < 2)."""
    from scipy.stats import t

    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    m = float(x.mean())
    if x.size < 2:
        return (m, math.nan, math.nan)
    h = float(t.ppf(1 - alpha / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return (m, max(0.0, m - h), min(1.0, m + h))


def compare_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per selection: mean ASR over seeds with a t-interval over seeds (≥ 2 seeds),
    else the single run's own interval over prompts."""
    out = []
    for name in dict.fromkeys(r["selection"] for r in rows):
        rs = [r for r in rows if r["selection"] == name]
        p, lo, hi = seed_interval([r.get("asr") for r in rs])
        ci = "seeds"
        if len(rs) == 1:
            lo, hi, ci = rs[0].get("asr_lo"), rs[0].get("asr_hi"), "prompts"
        out.append(_nan_to_none({"selection": name, "n_seeds": len(rs), "asr": p, "lo": lo, "hi": hi,
                                 "ci_over": ci, "n": rs[0].get("n")}))
    return out


def selection_examples(run_dir: str | Path, name: str) -> list[Example]:
    return read_selection(Path(run_dir) / "selections" / f"{name}.jsonl")
