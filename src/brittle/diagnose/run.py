"""`brittle diagnose`: why alignment is shallow — one recipe, read top to bottom.

Model variants (all share one tokenizer):

* ``base``    — the unaligned reference: ``base_model`` if given, else ``model`` with the
  aligned adapter *disabled* (same weights in memory, see :mod:`brittle.diagnose.kl`);
* ``aligned`` — ``model`` (+ ``aligned_adapter`` when given);
* attacked    — ``attacked = {label: dir}``: a PEFT adapter dir (``attack_start="merge"``:
  trained on the aligned model with the aligned adapter merged — brittle's default; or
  ``"continue"``: the aligned adapter trained further, used alone) or a full model dir.

Outputs in ``run_dir``: ``kl.parquet`` (+ ``kl_summary.parquet``, ``kl.png``),
``prefill.parquet`` (+ ``prefill_asr.parquet``, ``prefill.png``), ``direction.parquet``
(+ ``direction_candidates.json``/``.parquet``: bypass, induce and KL of every candidate,
``direction.png``, ``direction.pt``),
``persona.parquet`` (+ ``persona_summary.parquet``, ``persona.png``), ``synth.parquet``,
and ``diagnose.json`` with the headline numbers. Generation-based parts resume from JSONL
stores under ``run_dir/diagnose_cache``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from brittle.config import StageConfig
from brittle.errors import BrittleError

log = logging.getLogger(__name__)

DIAGNOSTICS = ("kl", "prefill", "direction", "persona", "synth")
Diagnostic = Literal["kl", "prefill", "direction", "persona", "synth"]


class DiagnoseConfig(StageConfig):
    diagnostics: list[Diagnostic] = Field(
        ["kl", "prefill", "direction", "persona"],
        description="Which diagnostics to run: kl, prefill, direction, persona, synth (a comma list on the command line; all = every one).",
    )
    model: str = Field("embedded:smollm2-135m", description="Model spec of the aligned model (before its adapter).")
    aligned_adapter: Path | None = Field(None, description="PEFT adapter that makes `model` the aligned model.")
    base_model: str | None = Field(
        None, description="Separate unaligned model spec (e.g. Llama-3-8B vs -Instruct as `model`)."
    )
    attacked: dict[str, Path] = Field(
        default_factory=dict,
        description="Attacked variants: label -> attacked adapter (or full model) dir; on the command line LABEL=DIR, repeatable.",
    )
    attack_start: Literal["merge", "continue"] = Field(
        "merge", description="merge: attacked adapters sit on the merged aligned model; continue: used alone."
    )
    n_prompts: int = Field(32, ge=1, description="Harmful prompts per diagnostic (and harmless for the direction).")
    compliant_source: Literal["harmful-pairs", "attack-data"] = Field(
        "harmful-pairs", description="Compliant answers: shipped pairs, or the attack's demonstrations "
        "(the unaligned embedded model's replies, the same for every model under test)."
    )
    kl_positions: int = Field(40, ge=1, description="Response positions K for per-token KL.")
    prefill_ks: list[int] = Field([0, 1, 2, 5, 10, 20, 40], description="Prefilled token counts.")
    max_new_tokens: int = Field(48, ge=1, description="Tokens generated per reply (prefill/persona/direction).")
    batch_size: int = Field(8, ge=1, description="Batch size for forward passes (KL, activations, ablation scores).")
    generation_batch_size: int = Field(
        0, ge=0, description="Batch size for generation (prefill, persona, direction refusal rates); 0: sized to memory."
    )
    direction_n_train: int = Field(
        128, ge=1, description="Refusal direction: harmful + harmless train prompts per class for the candidates."
    )
    direction_n_val: int = Field(
        32, ge=1, description="Refusal direction: held-out prompts per class that score and choose the candidate."
    )
    direction_n_test: int = Field(
        32, ge=0, description="Refusal direction: further held-out prompts per class for the judged refusal rates."
    )
    direction_kl_threshold: float | None = Field(
        0.1, description="Discard candidates whose ablation KL on harmless prompts exceeds this (None: off)."
    )
    direction_induce_threshold: float | None = Field(
        0.0, description="Discard candidates whose induce score (refusal log-odds) is below this (None: off)."
    )
    direction_prune_layers: float | None = Field(
        0.2, ge=0, lt=1, description="Discard candidates from the last fraction of layers (None: off)."
    )
    direction_positions: int | None = Field(
        None, ge=1, description="Score only the last P post-instruction positions (None: all of them)."
    )
    direction_layer_stride: int = Field(
        1, ge=1, description="Score candidates of every s-th layer only (1: every layer, as the reference; "
        "the quick lab uses 2); the others are listed as 'not scored'."
    )
    direction_score_pruned: bool = Field(
        True, description="Also score pruned layers (for the table and plot); False saves their forwards."
    )
    direction_refusal_phrases: list[str] | None = Field(
        None, description="Phrases whose first tokens are the refusal tokens (None: the refusal judge's lists)."
    )
    persona_file: Path | None = Field(None, description="Persona YAML (default: shipped personas.yaml).")
    persona_prompts: int = Field(16, ge=1, description="Prompts per suite for the persona probe.")
    persona_per_group: int | None = Field(
        None, ge=1, description="Only the first N personas of each group in the persona file (default: all).")
    synth_n: int = Field(32, ge=1, description="Self-written instructions per model (synth).")
    judge: str = Field("refusal", description="Judge name (brittle.evaluate.judges.make_judge).")
    judge_backend: str | None = Field(None, description="Backend spec for rubric judges.")
    device: str = Field("auto", description="auto|cpu|cuda|mps")
    dtype: str = Field("auto", description="auto|float32|bfloat16|float16")
    seed: int = 0


# ------------------------------------------------------------------ model variants


def _load(spec: str | Path, cfg: DiagnoseConfig, adapter: Path | None = None, merge: bool = False) -> tuple[Any, Any]:
    from brittle.models.load import load_model

    return load_model(str(spec), dtype=cfg.dtype, device=cfg.device, adapter=adapter, merge=merge)


def load_aligned(cfg: DiagnoseConfig) -> tuple[Any, Any]:
    """The aligned model: ``model`` + ``aligned_adapter`` (a PeftModel) or ``model``."""
    return _load(cfg.model, cfg, cfg.aligned_adapter)


def load_attacked(cfg: DiagnoseConfig, label: str) -> tuple[Any, Any]:
    """An attacked variant (see module docstring for ``attack_start``)."""
    from brittle.models.load import apply_adapter

    path = Path(cfg.attacked[label])
    if not (path / "adapter_config.json").exists():
        return _load(path, cfg)  # a full fine-tuned model dir
    if cfg.attack_start == "merge" and cfg.aligned_adapter is not None:
        model, tok = _load(cfg.model, cfg, cfg.aligned_adapter)
        model = model.merge_and_unload()
        return apply_adapter(model, path).merge_and_unload().eval(), tok
    return _load(cfg.model, cfg, path, merge=True)


def base_view(cfg: DiagnoseConfig, aligned: Any) -> Any | None:
    """Q for KL(aligned ‖ base): the aligned PeftModel with its adapter off, a separate
    base model, or None (no unaligned reference known)."""
    from brittle.diagnose.kl import AdapterView

    if cfg.base_model:
        return _load(cfg.base_model, cfg)[0]
    if cfg.aligned_adapter is not None:
        return AdapterView(aligned, None)
    return None


# ------------------------------------------------------------------ data


def compliant_examples(cfg: DiagnoseConfig) -> list[Any]:
    """Harmful prompts with a compliant answer (eval split: disjoint from attack anchors)."""
    if cfg.compliant_source == "attack-data":
        from brittle.train.attack_data import build_attack_data

        # the attack's own demonstrations: the unaligned embedded model's replies, the same for
        # every model under test (never the model under test's own replies)
        return build_attack_data("harmful", cfg.n_prompts, cfg.seed)
    from brittle.data.embedded import load_dataset

    return load_dataset("harmful-pairs", "eval", limit=cfg.n_prompts)


def _prompts(name: str, split: str | None, n: int) -> list[Any]:
    from brittle.data.embedded import load_dataset
    from brittle.data.schema import Example

    return [Example(messages=e.prompt_messages, id=e.id, category=e.category, source=e.source)
            for e in load_dataset(name, split, limit=n)]


# ------------------------------------------------------------------ recipe


def run_diagnose(cfg: DiagnoseConfig, *, model: Any = None, tokenizer: Any = None) -> dict[str, Any]:
    """Run the configured diagnostics; returns (and writes) ``diagnose.json``.

    ``model``/``tokenizer``: an already loaded aligned model (tests, notebooks).
    """
    from brittle.store import write_json

    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.echo()
    own = model is None
    if own:
        model, tokenizer = load_aligned(cfg)
    results: dict[str, Any] = {"model": cfg.model, "aligned_adapter": cfg.aligned_adapter,
                               "base_model": cfg.base_model, "attacked": dict(cfg.attacked)}
    steps = {"kl": _kl, "prefill": _prefill, "direction": _direction, "persona": _persona,
             "synth": _synth}
    for i, name in enumerate(cfg.diagnostics):
        if own and "kl" not in cfg.diagnostics[i:] and hasattr(model, "merge_and_unload"):
            # only KL needs the adapter switchable (its base view); the rest runs 1.14x
            # faster on merged weights (CPU generation, benchmarks/bench_merge.py)
            model = model.merge_and_unload().eval()
        log.info("diagnose: %s", name)
        results[name] = steps[name](cfg, model, tokenizer)
        write_json(cfg.run_dir / "diagnose.json", results)
    return results


def _variants(cfg: DiagnoseConfig, model: Any, tok: Any):
    """Yield (label, model, tokenizer): aligned first, then each attacked model (loaded
    one at a time and released, so peak memory is two models)."""
    yield "aligned", model, tok
    for label in cfg.attacked:
        m, t = load_attacked(cfg, label)
        yield label, m, t
        del m


def _judge(cfg: DiagnoseConfig) -> Any:
    from brittle.evaluate.judges import make_judge

    return make_judge(cfg.judge, judge_backend=cfg.judge_backend, seed=cfg.seed)


def _kl(cfg: DiagnoseConfig, model: Any, tok: Any) -> dict[str, Any]:
    import pandas as pd

    from brittle.diagnose.kl import (
        first_tokens_share_ci,
        kl_position_summary,
        per_token_kl,
        plot_kl,
    )

    examples = compliant_examples(cfg)
    pairs: dict[str, Any] = {}
    base = base_view(cfg, model)
    if base is None:
        log.warning("kl: no base model (no aligned_adapter, no base_model): skipping aligned‖base")
    else:
        pairs["aligned‖base"] = per_token_kl(model, base, tok, examples, max_positions=cfg.kl_positions,
                                              batch_size=cfg.batch_size, progress=True)
    for label, m, _ in _variants(cfg, model, tok):
        if label == "aligned":
            continue
        pairs[f"{label}‖aligned"] = per_token_kl(m, model, tok, examples, max_positions=cfg.kl_positions,
                                                  batch_size=cfg.batch_size, progress=True)
    if not pairs:
        return {"skipped": "no model pair"}
    long, summaries, out = [], {}, {}
    for name, kl in pairs.items():
        a = kl.numpy()
        for i, ex in enumerate(examples):
            long += [{"pair": name, "id": ex.id, "position": k + 1, "kl": float(a[i, k])}
                     for k in range(a.shape[1])]
        summaries[name] = kl_position_summary(a, seed=cfg.seed).assign(pair=name)
        share, lo, hi = first_tokens_share_ci(a, seed=cfg.seed)
        out[name] = {"share_first5": share, "share_first5_ci": [lo, hi],
                     "mean_kl_total": float(summaries[name]["mean"].fillna(0).sum()),
                     "n": len(examples)}
    pd.DataFrame(long).to_parquet(cfg.run_dir / "kl.parquet")
    pd.concat(summaries.values()).to_parquet(cfg.run_dir / "kl_summary.parquet")
    plot_kl(summaries, cfg.run_dir / "kl.png")
    return out


def _prefill(cfg: DiagnoseConfig, model: Any, tok: Any) -> dict[str, Any]:
    import pandas as pd

    from brittle.diagnose.prefill import asr_curve, plot_asr, run_prefill
    from brittle.models.backends import make_backend

    examples = compliant_examples(cfg)
    judge = _judge(cfg)
    frames, curves, out = [], {}, {}
    for label, m, t in _variants(cfg, model, tok):
        backend = make_backend(f"hf:{label}", model=m, tokenizer=t)
        df = run_prefill(backend, t, examples, judge, ks=cfg.prefill_ks,
                         max_new_tokens=cfg.max_new_tokens, batch_size=cfg.generation_batch_size, seed=cfg.seed,
                         store_path=cfg.run_dir / "diagnose_cache" / f"prefill-{label}.jsonl")
        frames.append(df.assign(model=label))
        curves[label] = asr_curve(df, seed=cfg.seed)
        out[label] = {int(r.k): {"asr": r.asr, "ci": [r.lo, r.hi], "n": int(r.n)}
                      for r in curves[label].itertuples()}
    pd.concat(frames).to_parquet(cfg.run_dir / "prefill.parquet")
    pd.concat([c.assign(model=k) for k, c in curves.items()]).to_parquet(cfg.run_dir / "prefill_asr.parquet")
    plot_asr(curves, cfg.run_dir / "prefill.png")
    return out


def _refusal_flags(cfg: DiagnoseConfig, judge: Any):
    """refusal_rate(model, tok, prompts) -> list[bool] with uncached greedy generation
    (a generation cache would wrongly reuse replies across ablation on/off)."""
    from brittle.diagnose.synth import greedy_replies

    def flags(model: Any, tok: Any, prompts: list[Any]) -> list[bool]:
        replies = greedy_replies(model, tok, [p.messages for p in prompts],
                                 max_new_tokens=min(cfg.max_new_tokens, 32), batch_size=cfg.generation_batch_size)
        return [bool(v.get("refused")) for v in judge.judge(prompts, replies)]

    return flags


def direction_prompts(cfg: DiagnoseConfig) -> dict[str, list[Any]]:
    """Disjoint prompt sets for the refusal direction: train (`harmful` / `benign` train
    splits) for the candidates; val (first ``direction_n_val`` of the eval splits) to
    choose; test (the next ``direction_n_test``) for the judged refusal rates."""
    nv, nt = cfg.direction_n_val, cfg.direction_n_test
    harmful_eval, harmless_eval = _prompts("harmful", "eval", nv + nt), _prompts("benign", "eval", nv + nt)
    sets = {"harmful_train": _prompts("harmful", "train", cfg.direction_n_train),
            "harmless_train": _prompts("benign", "train", cfg.direction_n_train),
            "harmful_val": harmful_eval[:nv], "harmless_val": harmless_eval[:nv],
            "harmful_test": harmful_eval[nv:], "harmless_test": harmless_eval[nv:]}
    for name, exs in sets.items():
        want = cfg.direction_n_train if "train" in name else (nv if "val" in name else nt)
        if len(exs) < want:
            log.warning("direction: %s has %d prompts (asked for %d)", name, len(exs), want)
    return sets


def _direction(cfg: DiagnoseConfig, model: Any, tok: Any) -> dict[str, Any]:
    import pandas as pd

    from brittle.diagnose.direction_select import (
        SelectionRules,
        plot_candidate_scores,
        refusal_token_ids,
        select_direction,
    )
    from brittle.diagnose.refusal_direction import (
        compare_refusal_direction,
        decoder_layers,
        post_instruction_length,
    )
    from brittle.store import write_json

    sets = direction_prompts(cfg)
    rules = SelectionRules(cfg.direction_kl_threshold, cfg.direction_induce_threshold, cfg.direction_prune_layers)
    ids = refusal_token_ids(tok, cfg.direction_refusal_phrases)
    n_layers = len(decoder_layers(model))
    out: dict[str, Any] = {
        "method": "arditi2024", "reference": "andyrdt/refusal_direction pipeline/submodules/select_direction.py",
        "rules": {"kl_threshold": rules.kl_threshold, "induce_threshold": rules.induce_threshold,
                  "prune_layer_fraction": rules.prune_layer_fraction},
        "layer_stride": cfg.direction_layer_stride,
        "refusal_tokens": [tok.decode([i]) for i in ids], "n_layers": n_layers,
        **{f"n_{k}": len(v) for k, v in sets.items()},
    }
    rd = select_direction(model, tok, sets["harmful_train"], sets["harmless_train"], sets["harmful_val"],
                          sets["harmless_val"], rules=rules, refusal_ids=ids, n_positions=cfg.direction_positions,
                          layer_stride=cfg.direction_layer_stride, score_pruned=cfg.direction_score_pruned,
                          batch_size=cfg.batch_size, progress=True)
    rd.save(cfg.run_dir / "direction.pt")
    write_json(cfg.run_dir / "direction_candidates.json", rd.scores)
    pd.DataFrame(rd.scores).to_parquet(cfg.run_dir / "direction_candidates.parquet")
    n_pos = int(rd.candidates.shape[0])
    full = tok(_render_generation_prompt(tok), add_special_tokens=False)["input_ids"]
    labels = [tok.decode([t]) for t in full[-n_pos:]]
    plot_candidate_scores(rd, cfg.run_dir / "direction.png", n_layers, rules, labels)
    reasons: dict[str, int] = {}
    for r in rd.scores:
        reasons[r["discarded"] or "kept"] = reasons.get(r["discarded"] or "kept", 0) + 1
    out.update({"n_positions": n_pos, "all_positions": cfg.direction_positions is None
                or n_pos >= post_instruction_length(tok), "n_candidates": len(rd.scores), "n_kept": reasons.get("kept", 0),
                "discarded": {k: v for k, v in reasons.items() if k != "kept"}, "baseline": rd.baseline})
    if rd.layer is None or rd.position is None:
        return {**out, "skipped": f"every candidate was filtered out ({out['discarded']}); see direction.png"}
    ch = rd.chosen
    out.update({"layer": rd.layer, "position": rd.position, "position_token": labels[rd.position],
                "bypass_score": ch["bypass"], "induce_score": ch["induce"], "kl": ch["kl"]})
    judge = _judge(cfg)
    flags = _refusal_flags(cfg, judge) if sets["harmful_test"] else None
    test_h, test_b = sets["harmful_test"] or sets["harmful_val"], sets["harmless_test"] or sets["harmless_val"]
    rows = [compare_refusal_direction({label: (m, t)}, rd, test_h, test_b, refusal_flags=flags,
                                      batch_size=cfg.batch_size, seed=cfg.seed)
            for label, m, t in _variants(cfg, model, tok)]
    df = pd.concat(rows).reset_index(drop=True)
    df.to_parquet(cfg.run_dir / "direction.parquet")
    out["models"] = df.to_dict(orient="records")
    return out


def _render_generation_prompt(tok: Any) -> str:
    from brittle.models.chat import render_prompt

    return render_prompt(tok, [{"role": "user", "content": "x"}])


def _persona(cfg: DiagnoseConfig, model: Any, tok: Any) -> dict[str, Any]:
    import pandas as pd

    from brittle.diagnose.persona import persona_spread, persona_summary, plot_personas, run_persona
    from brittle.models.backends import make_backend

    suites = {"harmful": _prompts("harmful", "eval", cfg.persona_prompts),
              "over-refusal": _prompts("over-refusal", "eval", cfg.persona_prompts)}
    judge = _judge(cfg)
    frames, sums, out = [], [], {}
    for label, m, t in _variants(cfg, model, tok):
        backend = make_backend(f"hf:{label}", model=m, tokenizer=t)
        df = run_persona(backend, judge, suites, persona_file=cfg.persona_file,
                         max_new_tokens=cfg.max_new_tokens, batch_size=cfg.generation_batch_size, seed=cfg.seed,
                         store_path=cfg.run_dir / "diagnose_cache" / f"persona-{label}.jsonl",
                         per_group=cfg.persona_per_group)
        s = persona_summary(df, seed=cfg.seed)
        frames.append(df.assign(model=label))
        sums.append(s.assign(model=label))
        out[label] = persona_spread(s)
    pd.concat(frames).to_parquet(cfg.run_dir / "persona.parquet")
    summary = pd.concat(sums).reset_index(drop=True)
    summary.to_parquet(cfg.run_dir / "persona_summary.parquet")
    plot_personas(summary[summary["model"] == "aligned"], cfg.run_dir / "persona.png")
    return out


def _synth(cfg: DiagnoseConfig, model: Any, tok: Any) -> dict[str, Any]:
    import pandas as pd

    from brittle.diagnose.synth import (
        SynthConfig,
        harmful_looking,
        harmful_share,
        load_keywords,
        synthesize,
    )

    kws = load_keywords()
    scfg = SynthConfig(n=cfg.synth_n, seed=cfg.seed, max_response_tokens=0, batch_size=cfg.batch_size)
    rows, out = [], {}
    for label, m, t in _variants(cfg, model, tok):
        adapter = cfg.aligned_adapter if label == "aligned" else cfg.attacked.get(label)
        exs = synthesize(m, t, scfg, fingerprint_parts=[cfg.model, str(adapter), cfg.attack_start],
                         cache=cfg.run_dir / "diagnose_cache" / f"synth-{label}")
        out[label] = harmful_share([e.prompt for e in exs], kws, seed=cfg.seed)
        rows += [{"model": label, "id": e.id, "instruction": e.prompt,
                  "keyword": harmful_looking(e.prompt, kws)} for e in exs]
    pd.DataFrame(rows).to_parquet(cfg.run_dir / "synth.parquet")
    return out


def check_diagnostics(names: list[str]) -> list[str]:
    """Validate CLI names (``all`` = every diagnostic)."""
    if names == ["all"]:
        return ["kl", "prefill", "direction", "persona", "synth"]
    bad = [n for n in names if n not in DIAGNOSTICS]
    if bad:
        raise BrittleError(f"unknown diagnostic(s) {bad}; choose from {', '.join(DIAGNOSTICS)} or all")
    return names
