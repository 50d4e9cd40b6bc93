"""The end-to-end lab: every stage chained on one model, one report.

Reads top to bottom like a recipe. Each stage is a plain function that takes the lab
config and a shared ``ctx`` dict (paths produced by earlier stages), writes into its own
sub-directory of the run directory, and returns a report :class:`Section`. A failing
stage is recorded in the report and makes the lab exit non-zero; the others still run
when they do not depend on it.

Resume: every stage writes incrementally (generations, cells, feature shards), so
re-running the same command continues where a crash stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from brittle.config import StageConfig
from brittle.monitor import PeakMemory, release_memory
from brittle.report.format import display_path, duration, looks_like_path, scrub_paths
from brittle.report.html import Section, esc, relocate, table, write_report
from brittle.store import read_json, write_json

log = logging.getLogger(__name__)

STAGES = ("overview", "align", "attack", "select", "diagnose", "transfer", "rules")


class LabConfig(StageConfig):
    run_dir: Path = Field(Path("runs/lab"), description="Directory for the lab's outputs.")
    model: str = Field("embedded:smollm2-135m", description="Model spec to study.")
    quick: bool = Field(True, description="quick: small sizes that finish on a laptop CPU; full: the full grid.")
    stages: list[str] | None = Field(
        None, description="Stages to run, in order, comma-separated (default: all; 'transfer' only with a reference)."
    )
    reference: Path | None = Field(
        None,
        description="Run dir of a finished lab on another model (e.g. the SmolLM2 quick lab): the "
        "'transfer' stage fine-tunes its top-K and random-K selections into this model and puts both labs "
        "side by side.",
    )
    redact: bool = Field(True, description="Redact generated harmful text in the report.")
    retrain_alignment: bool = Field(
        False, description="Train the safety adapter on this machine even when it is cached or shipped with brittle "
        "for this model and recipe (the embedded default's: ≈ 3-4 min on 2 CPU cores).")
    seed: int = Field(0, description="Global seed.")
    device: str = Field("auto", description="cpu | cuda | auto")
    vendor_aligned: bool = Field(
        False, description="The model is already safety-aligned by its vendor (e.g. Llama-2-7b-chat): attack it "
        "as is, install no alignment adapter (embedded aligned models are detected automatically).")

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def seeds(self) -> list[int]:
        return [self.seed] if self.quick else [0, 1, 2]

    def eval_limit(self) -> int | None:
        """Prompts per eval suite: 50 in the quick lab, all otherwise."""
        return self.size(50, 0) or None

    def utility_limit(self) -> int | None:
        """Utility references per eval: 25 in the quick lab (their teacher-forced NLL was ≈ 26 s of
        each ≈ 64 s eval at 50; the interval widens by about √2), all otherwise."""
        return self.size(25, 0) or None

    def eval_tokens(self) -> int:
        """Reply length of every eval: 32 tokens in the quick lab (≈ 130 characters; the refusal
        judge reads the first 100: cutting the quick lab's 700 stored harmful/over-refusal replies
        of 48 tokens to 32 changed no verdict), 64 otherwise. One value for all stages, so the
        attack's N = 0 cell can reuse the align stage's replies (same generation fingerprint)."""
        return self.size(32, 64)

    def stage_list(self) -> list[str]:
        return list(self.stages or [s for s in STAGES if s != "transfer" or self.reference])

    def budget_s(self, stage: str) -> float | None:
        """Wall-time budget of a stage: set for the quick lab on the embedded default (issue 18's
        target, ≤ 20 min in all on an idle 2-core CPU with setup); None elsewhere."""
        return QUICK_BUDGET_S.get(stage) if self.quick and not _vendor_aligned(self.model) else None


# The quick lab's time budget per stage (seconds, idle 2-core CPU): 18 min for the stages +
# ~2 min of setup = the 20-minute target (2026-12-04, fresh clone: 8.7 min of stages, 10.6 min
# with setup). The run summary shows each stage's wall time beside its budget and marks the
# ones over it; benchmarks/bench_lab.py records both. "transfer" runs only with --reference.
QUICK_BUDGET_S: dict[str, float] = {
    "overview": 30, "align": 120, "attack": 300, "select": 300, "diagnose": 210, "transfer": 300,
    "rules": 120,
}


def _vendor_aligned(spec: str) -> bool:
    from brittle.models.load import EMBEDDED

    name = spec.split(":", 1)[1] if spec.startswith("embedded:") else ""
    return name in EMBEDDED and EMBEDDED[name].aligned


# ----------------------------------------------------------------------------- stages


def stage_overview(cfg: LabConfig, ctx: dict[str, Any]) -> Section:
    """Model facts and the embedded data sets with their split sizes."""
    from brittle.data.embedded import list_datasets
    from brittle.models.load import model_info

    info = model_info(cfg.model)
    data = list_datasets()
    write_json(cfg.run_dir / "overview.json", {"model": info, "datasets": data})
    model_rows = [{"field": k, "value": display_path(v, cfg.run_dir) if looks_like_path(v) else v}
                  for k, v in info.items()]
    body = "<h3>Model</h3>" + table(model_rows) + "<h3>Data sets (offline)</h3>" + table(data, _DATA_COLUMNS)
    return Section("Model and data", body, "overview")


_DATA_COLUMNS = ["name", "description", "rows", "splits", "by_source", "licence", "sources", "split_rule"]


def stage_align(cfg: LabConfig, ctx: dict[str, Any]) -> Section:
    """Evaluate the model as shipped (shown at once), install alignment (cached adapter), then
    evaluate the aligned model: unaligned vs aligned side by side."""
    from brittle.evaluate.run import EvalConfig, run_eval
    from brittle.evaluate.section import compare_section

    out = cfg.run_dir / "align"
    vendor = _vendor_aligned(cfg.model) or cfg.vendor_aligned
    title = "Baseline safety of the vendor-aligned model" if vendor else "Installing alignment: before vs after"
    dirs: dict[str, Path] = {}

    def evaluate(label: str, adapter: Path | None) -> None:
        ecfg = EvalConfig(run_dir=out / f"eval-{label}", model=cfg.model, adapter=str(adapter) if adapter else None,
                          limit=cfg.eval_limit(), utility_limit=cfg.utility_limit(),
                          max_new_tokens=cfg.eval_tokens(), seed=cfg.seed,
                          redact=cfg.redact)
        run_eval(ecfg)
        dirs[label] = ecfg.run_dir

    evaluate("vendor-aligned" if vendor else "unaligned", None)
    if not vendor:  # the "before" numbers go on the page while the adapter trains
        before = compare_section(dirs, title=title, report_dir=cfg.run_dir)
        before.body = ('<p class="note">Installing alignment: the safety adapter (trained here, or read from '
                       "the cache or the seed shipped with brittle) …</p>") + before.body
        ctx.get("show", lambda section: None)(before)
        evaluate("aligned", _aligned_adapter(cfg, ctx))
    else:
        _aligned_adapter(cfg, ctx)
    ctx["eval_dirs"] = dirs
    section = compare_section(dirs, title=title, report_dir=cfg.run_dir)
    if not vendor:
        section.body = adapter_provenance(out / "train" / "alignment.json") + section.body
    return section


def adapter_provenance(path: Path) -> str:
    """One paragraph: what the safety adapter was trained on and where (here, this machine's
    cache, or the seed shipped with brittle), from the ``alignment.json`` install_alignment wrote."""
    if not path.exists():
        return ""
    info = read_json(path)
    c, train, shipped = info.get("counts", {}), info.get("train", {}), info.get("shipped")
    what = (f"{c.get('harmful_refusals', 0)} harmful prompts with refusals + {c.get('benign', 0)} benign pairs + "
            f"{c.get('contrast', 0)} risky-sounding benign prompts answered by the model itself, recipe "
            f"v{info.get('recipe_version', '?')}, {train.get('steps', '?')} steps")
    took = duration(train.get("seconds")) if train.get("seconds") else "?"
    if shipped:
        where = (f"shipped with brittle: trained by this recipe on {esc(shipped.get('host', '?'))} in {took} "
                 f"(<code>brittle lab --retrain-alignment</code> trains it on this machine)")
    elif info.get("cached"):
        where = f"from this machine's cache (trained in {took} by an earlier run)"
    else:
        where = f"trained in this run in {took}"
    return (f'<p>Safety adapter (LoRA, fingerprint <code>{esc(info.get("fingerprint"))}</code>): {esc(what)}; '
            f"{where}.</p>")


def stage_attack(cfg: LabConfig, ctx: dict[str, Any]) -> Section:
    """The N-harmful-examples sweep on the aligned model."""
    from brittle.train.attack import AttackConfig, attack_section, run_attack

    acfg = AttackConfig(
        run_dir=cfg.run_dir / "attack",
        model=cfg.model,
        adapter=_adapter_arg(cfg, ctx),
        n=_attack_ns(cfg),
        kinds=["harmful"] if cfg.quick else ["harmful", "aoa", "benign"],
        seeds=cfg.seeds(),
        eval_limit=cfg.eval_limit(),
        utility_limit=cfg.utility_limit(),
        max_new_tokens=cfg.eval_tokens(),
        gen_tokens=_demo_tokens(cfg),
        train={"max_length": _finetune_max_length(cfg)} if cfg.quick else {},
        # the N = 0 cell is the aligned model the align stage evaluated: reuse its replies
        reuse_evals=[str(d) for d in sorted((cfg.run_dir / "align").glob("eval-*"))],
    )
    run_attack(acfg)
    ctx["attack_dir"] = acfg.run_dir
    section = attack_section(acfg.run_dir, redact=cfg.redact)
    if cfg.quick:
        full = ", ".join(map(str, _attack_ns(cfg.model_copy(update={"quick": False}))))
        section.body = (f'<p class="note">Quick lab: N = {esc(", ".join(map(str, acfg.n)))}, one seed, harmful '
                        f"demonstrations only; <code>brittle lab --full</code> sweeps N = {esc(full)} over the "
                        "harmful, identity-shifting (AOA) and benign kinds with three seeds.</p>") + section.body
    return section


def stage_select(cfg: LabConfig, ctx: dict[str, Any]) -> Section:
    """Which benign data breaks safety: anchoring scores, selections, fine-tune comparison."""
    from brittle.select.run import SelectConfig, compare_selections, run_select
    from brittle.select.section import select_section

    scfg = SelectConfig(
        run_dir=cfg.run_dir / "select",
        model=cfg.model,
        adapter=_adapter_arg(cfg, ctx),
        pool_limit=_pool_limit(cfg),
        methods=_select_methods(cfg),
        k=_select_k(cfg),
        # quick: 4 per batch. Exact-anchor holds every layer's inputs and output grads of a batch
        # for the ghost sums, beside the model and the combined anchor direction: on the 135M
        # model (150 examples x 128 tokens) scoring peaks at 3.2 GB with 4, 4.9 GB with 8, and takes
        # 1.10x as long (benchmarks/bench_batch_memory.py exact)
        batch_size=4 if cfg.quick else 8,
        # quick: repr reads the harmful anchors only, as in the reference (its score and top-K do
        # not change; the safe sets' components cost ≈ 25 s of the stage's 52 s of repr, issue 18)
        repr_safe_anchors=not cfg.quick,
        max_length=_finetune_max_length(cfg),
        seed=cfg.seed,
    )
    run_select(scfg)
    # quick: the paper's headline contrast only, top-K of the first scoring method (exact-anchor)
    # vs random-K (each a 5-epoch fine-tune of the same recipe, on examples cut to the scoring
    # length); the other scores are shown, not fine-tuned (too few list examples in the pool
    # for a list-K arm: 4 in the first 150)
    names = [f"top-{scfg.methods[0]}", "random"] if cfg.quick else None
    overrides = {"max_new_tokens": cfg.eval_tokens()}
    if cfg.quick:
        overrides["train"] = {"max_length": _finetune_max_length(cfg)}
    compare_selections(scfg, seeds=cfg.seeds(), names=names, eval_limit=cfg.eval_limit(),
                       attack_overrides=overrides)
    section = select_section(scfg.run_dir, redact=cfg.redact)
    if cfg.quick:
        section.body = (f'<p class="note">Quick lab: only top-K by {esc(scfg.methods[0])} score and random-K '
                        "are fine-tuned; <code>brittle lab --full</code> fine-tunes every selection "
                        "(top-K of each method, bottom-K, list-K, math-K) on the full pool.</p>") + section.body
    return section


def stage_diagnose(cfg: LabConfig, ctx: dict[str, Any]) -> Section:
    """Shallow alignment: per-token KL, prefilling, refusal direction, personas."""
    from brittle.diagnose.run import DiagnoseConfig, run_diagnose
    from brittle.diagnose.section import diagnose_section

    dcfg = DiagnoseConfig(
        run_dir=cfg.run_dir / "diagnose",
        model=cfg.model,
        aligned_adapter=_adapter_arg(cfg, ctx),
        attacked=_diagnosed_attacks(cfg, ctx),
        attack_start="merge",  # the attack adapters sit on the merged aligned weights (issue 13)
        # without an unaligned base (vendor-aligned model) KL(aligned‖base) is undefined
        diagnostics=(["prefill", "direction"] if _vendor_aligned(cfg.model)
                     else ["kl", "prefill", "direction", "persona"]),
        n_prompts=cfg.size(24, 100),
        persona_prompts=cfg.size(6, 32),
        # quick: the first persona of each of the 6 groups, not all 16 (issue 18: 94 s -> ≈ 40 s);
        # the spread (max − min refusal over personas) can only shrink with fewer personas
        persona_per_group=1 if cfg.quick else None,
        synth_n=cfg.size(16, 64),
        prefill_ks=[0, 1, 5] if cfg.quick else [0, 1, 2, 5, 10, 20, 40],  # quick: k = 20 cost ≈ 14 s, issue 18
        max_new_tokens=cfg.size(32, 48),  # the refusal judge reads the first ~100 characters
        # quick: the reference's selection rules on 32 + 32 held-out prompts, candidates at the
        # last post-instruction position of every third layer, and no scoring of the pruned
        # last 20% of layers (all positions and layers: ~70 min single-threaded on the 135M model;
        # every second layer cost ≈ 166 s, issue 18)
        direction_positions=1 if cfg.quick else None,
        direction_layer_stride=cfg.size(3, 1),
        direction_score_pruned=not cfg.quick,
        direction_n_train=cfg.size(64, 128),
        device=cfg.device,
        seed=cfg.seed,
    )
    run_diagnose(dcfg)
    return diagnose_section(dcfg.run_dir)  # numbers only, no model text


def stage_transfer(cfg: LabConfig, ctx: dict[str, Any]) -> Section:
    """Selection transfer (the reference lab's top-K and random-K fine-tuned into this model) and both
    labs side by side: installed vs vendor alignment."""
    from brittle.errors import BrittleError
    from brittle.lab_compare import side_by_side_section
    from brittle.select.transfer import transfer_selections

    if cfg.reference is None:
        raise BrittleError("the transfer stage needs a finished reference lab: --reference RUN_DIR")
    # the reference's top-K of the methods this lab scores itself, and its random-K as the
    # control fine-tuned under the same conditions (random-K does not depend on the model)
    transfer_selections(
        cfg.reference / "select", cfg.run_dir / "transfer", model=cfg.model, adapter=_adapter_arg(cfg, ctx),
        k=_select_k(cfg), names=[f"top-{m}" for m in _select_methods(cfg)] + ["random"],
        seeds=cfg.seeds(), eval_limit=cfg.eval_limit(), device=cfg.device,
    )
    from brittle.train.recipe import compare_recipe_html

    section = side_by_side_section(cfg.reference, cfg.run_dir)
    section.body += compare_recipe_html(cfg.run_dir / "transfer")  # the transfer fine-tunes' recipe
    return section


def stage_rules(cfg: LabConfig, ctx: dict[str, Any]) -> Section:
    """Ambiguous rules: judge panel, entropy, flips, leaning, refinement."""
    from brittle.rules import rules_section, run_rules_quick

    out = cfg.run_dir / "rules"
    run_rules_quick(out, cfg.model, budget="quick" if cfg.quick else "full")
    return rules_section(out)


def _attack_ns(cfg: LabConfig) -> list[int]:
    """N of the attack sweep. Quick on the embedded default: 0 and 50 (issue 18: the N = 10 cell
    cost 90-120 s and measured +2 pts [0, +6], inconclusive at 50 prompts; N = 50 measured
    +16 pts [+6, +26]); on a vendor-aligned model 0, 5, 10, 25; full: the paper's grid."""
    if not cfg.quick:
        return [0, 1, 2, 5, 10, 25, 50, 100]
    return [0, 5, 10, 25] if _vendor_aligned(cfg.model) else [0, 50]


def _select_methods(cfg: LabConfig) -> list[str]:
    # vendor-aligned (bigger) models: the exact-anchor method only (issue: top-K vs random-K)
    return ["exact-anchor"] if _vendor_aligned(cfg.model) else ["exact-anchor", "repr"]


def _small_budget(cfg: LabConfig) -> bool:
    """Quick lab on a vendor-aligned (0.5B+) model: sizes cut for a CPU (≈ 2 h on 2 cores)."""
    return cfg.quick and _vendor_aligned(cfg.model)


def _pool_limit(cfg: LabConfig) -> int | None:
    # quick: a 100-example pool (the paper scores ~5k); exact-anchor costs ~1.5 s per example
    # on the 135M model and ~7 s on a 0.5B one with a 150k vocabulary (2 CPU cores)
    return 100 if cfg.quick else None


def _select_k(cfg: LabConfig) -> int:
    """K of the fine-tuned selections: quick 10 on the embedded default (the top tenth of the
    pool, and the "10 examples" size of the attack sweep; issue 18: each arm trains 5 steps, not
    13), 25 on a vendor-aligned model (the top quarter), 100 in the full lab as in the paper."""
    if not cfg.quick:
        return 100
    return 25 if _small_budget(cfg) else 10


def _finetune_max_length(cfg: LabConfig) -> int:
    """Tokens per training example of every quick-lab fine-tune after alignment (attack cells,
    selection arms) and per scored pool example: 128 (the benign pool's median example is ≈ 150
    tokens; a harmful demonstration is ≈ 40 prompt + 96 reply tokens), else 512 as in the
    reference (the attack preset's 256 for the attack cells)."""
    return 128 if cfg.quick else 512


def _demo_tokens(cfg: LabConfig) -> int:
    """Reply length of the generated harmful demonstrations: quick 96 (what a 128-token
    training example keeps of the reply), else 128."""
    return cfg.size(96, 128)


def _aligned_adapter(cfg: LabConfig, ctx: dict[str, Any]) -> Path | None:
    """The aligned starting point: None for a vendor-aligned model, else the installed
    safety adapter (trained once, then read from the cache; later stages run alone too)."""
    if "aligned_adapter" not in ctx:
        if _vendor_aligned(cfg.model) or cfg.vendor_aligned:
            ctx["aligned_adapter"] = None
        else:
            from brittle.train.align import install_alignment

            ctx["aligned_adapter"] = install_alignment(
                cfg.model, run_dir=cfg.run_dir / "align" / "train", quick=cfg.quick, seed=cfg.seed,
                device=cfg.device, force=cfg.retrain_alignment,
            )
    return ctx["aligned_adapter"]


def _adapter_arg(cfg: LabConfig, ctx: dict[str, Any]) -> str | None:
    adapter = _aligned_adapter(cfg, ctx)
    return str(adapter) if adapter else None


def _diagnosed_attacks(cfg: LabConfig, ctx: dict[str, Any]) -> dict[str, str]:
    """The attacked models diagnose compares with the aligned one (label -> adapter dir): every
    finished cell, or in the quick lab only the most-attacked one (largest N), which halves the
    stage's cost."""
    cells = _attack_cells(cfg, ctx)
    if cfg.quick and cells:
        cells = [max(cells, key=lambda c: c["n"])]
    return {c["label"]: str(c["adapter"]) for c in cells}


def _attack_cells(cfg: LabConfig, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Finished cells of the attack sweep with their adapters: this run's, or an earlier run's
    in the same run directory (``--stages diagnose`` after a finished lab)."""
    attack_dir = Path(ctx.get("attack_dir") or cfg.run_dir / "attack")
    if not attack_dir.is_dir():
        return []
    from brittle.train.attack import finished_cells

    return finished_cells(attack_dir)


STAGE_FUNCS: dict[str, Callable[[LabConfig, dict[str, Any]], Section]] = {
    "overview": stage_overview,
    "align": stage_align,
    "attack": stage_attack,
    "select": stage_select,
    "diagnose": stage_diagnose,
    "transfer": stage_transfer,
    "rules": stage_rules,
}


# ----------------------------------------------------------------------------- recipe


def run_lab(cfg: LabConfig) -> dict[str, Any]:
    """Run the chosen stages in order; write ``index.html`` after every stage.

    Each stage's report section is also kept in ``sections/<stage>.json``, so a later run of
    some stages (``--stages diagnose``) updates those sections and keeps the others."""
    stages = cfg.stage_list()
    unknown = [s for s in stages if s not in STAGE_FUNCS]
    if unknown:
        from brittle.errors import BrittleError

        raise BrittleError(f"unknown lab stage(s) {unknown}; choose from {list(STAGES)}")
    cfg.echo("lab")
    ctx: dict[str, Any] = {}
    status_path = cfg.run_dir / "lab_status.json"
    status: dict[str, dict[str, Any]] = read_json(status_path) if status_path.exists() else {}
    this_run: dict[str, dict[str, Any]] = {}
    title = f"brittle lab — {cfg.model}" + (" (quick)" if cfg.quick else "")
    log.info("lab report: %s (reloads itself while the lab runs)", (cfg.run_dir / "index.html").resolve())
    for name in stages:
        status[name] = {**status.get(name, {}), "running": True, "budget_s": cfg.budget_s(name),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json(status_path, status)
        _write_report(cfg.run_dir, title, status, live=True)
        t0 = time.perf_counter()
        log.info("lab stage %s …", name)
        ctx["show"] = _shower(cfg.run_dir, title, status, name)  # a stage's partial section, mid-stage
        with PeakMemory() as mem:
            try:
                section = STAGE_FUNCS[name](cfg, ctx)
                this_run[name] = {"ok": True}
            except Exception as e:  # noqa: BLE001 - record, report, keep going
                log.error("stage %s failed: %s", name, e)
                (cfg.run_dir / f"{name}.error.txt").write_text(traceback.format_exc())
                this_run[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                shown = scrub_paths(this_run[name]["error"], cfg.run_dir)
                section = Section(f"{name} (failed)", f'<p class="note">{esc(shown)}</p>', name)
        release_memory()  # what the stage freed goes back to the OS before the next one
        this_run[name].update(seconds=round(time.perf_counter() - t0, 1), budget_s=cfg.budget_s(name),
                              peak_rss_mb=mem.peak_mb, finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        status[name] = this_run[name]
        section = relocate(section, cfg.run_dir)  # links relative to index.html, no absolute base kept
        write_json(cfg.run_dir / SECTIONS / f"{name}.json", dataclasses.asdict(section))
        write_json(status_path, status)
        _write_report(cfg.run_dir, title, status, live=name != stages[-1])
    return {"run_dir": str(cfg.run_dir), "report": str(cfg.run_dir / "index.html"), "stages": this_run}


SECTIONS = "sections"


def _shower(run_dir: Path, title: str, status: dict[str, dict[str, Any]], stage: str) -> Callable[[Section], None]:
    """``show(section)``: put a stage's partial section on the live page before the stage ends."""
    def show(section: Section) -> None:
        section = relocate(section, run_dir)
        write_json(run_dir / SECTIONS / f"{stage}.json", dataclasses.asdict(section))
        _write_report(run_dir, title, status, live=True)

    return show


def _write_report(run_dir: Path, title: str, status: dict[str, dict[str, Any]], *, live: bool = False) -> Path:
    """index.html: the run summary (wall time and peak memory of every stage next to its
    budget; the stage in progress with its ETA), then every stage's latest section in recipe
    order. ``live``: the page reloads itself every 30 s while the lab is still running."""
    order = [s for s in STAGES if s in status]
    sections = [Section(**read_json(run_dir / SECTIONS / f"{s}.json")) for s in order
                if (run_dir / SECTIONS / f"{s}.json").exists()]
    rows = [_status_row(k, status[k], run_dir) for k in order]
    cols = ["stage", "ok", "time", "budget", "peak memory", "finished"] + (
        ["error"] if any(r["error"] for r in rows) else [])
    total = sum(s.get("seconds") or 0 for s in status.values() if not s.get("running"))
    note = (f'<p class="note">Running: this page reloads itself every 30 s. Stages so far: '
            f"{esc(duration(total))}.</p>" if live else "")
    summary = Section("Run summary", note + table(rows, cols), "summary")
    return write_report(run_dir, title, [summary, *sections], refresh_s=30 if live else None)


def _status_row(stage: str, s: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """One run-summary row. A stage in progress shows its start and an ETA from its budget."""
    budget = s.get("budget_s")
    if s.get("running"):
        eta = (f"ETA {duration(budget)} after {s.get('started', '?')}" if budget
               else f"started {s.get('started', '?')}")
        return {"stage": stage, "ok": "running…", "time": eta, "budget": duration(budget) if budget else "",
                "peak memory": "", "finished": "", "error": ""}
    over = budget and s.get("seconds") and s["seconds"] > budget
    return {
        "stage": stage, "ok": "yes" if s.get("ok") else "no", "time": duration(s.get("seconds")),
        "budget": (duration(budget) + (" (over)" if over else "")) if budget else "",
        "peak memory": f"{s['peak_rss_mb'] / 1024:.1f} GB" if s.get("peak_rss_mb") else "",
        "finished": s.get("finished", ""), "error": scrub_paths(s.get("error", ""), run_dir),
    }
