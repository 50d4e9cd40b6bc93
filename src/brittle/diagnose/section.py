"""The lab-report section of `brittle diagnose` (reads ``run_dir/diagnose.json`` + PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from brittle.report.html import Section, esc, figure, table


def _pct(x: Any) -> str:
    try:
        return f"{100 * float(x):.1f}%"
    except (TypeError, ValueError):
        return "–"


def _ci(pair: Any) -> str:
    if not pair or len(pair) != 2:
        return ""
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def _fig(run_dir: Path, name: str, caption: str) -> str:
    png = run_dir / name
    return figure(png, run_dir, caption) if png.exists() else ""


def diagnose_section(run_dir: str | Path, title: str = "Why alignment is shallow (diagnostics)") -> Section:
    """KL share in the first tokens, prefilling ASR, refusal direction, persona spread,
    self-synthesis: tables of the headline numbers plus the plots. Model text never
    appears here (only numbers, labels and persona ids), everything is escaped."""
    from brittle.store import read_json

    run_dir = Path(run_dir)
    path = run_dir / "diagnose.json"
    if not path.exists():
        return Section(title, "<p><em>no diagnostics in this run</em></p>", "diagnose")
    res = read_json(path)
    parts: list[str] = []

    kl = res.get("kl") or {}
    if kl and "skipped" not in kl:
        rows = [{"pair": k, "share of KL in first 5 tokens": _pct(v["share_first5"]),
                 "95% CI": _ci(v.get("share_first5_ci")), "Σ mean KL": v.get("mean_kl_total"),
                 "n": v.get("n")} for k, v in kl.items()]
        parts += ["<h3>Per-token KL (Qi et al. 2025)</h3>", table(rows),
                  _fig(run_dir, "kl.png", "mean KL per response position (95% bootstrap CI)")]

    pre = res.get("prefill") or {}
    if pre:
        ks = sorted({int(k) for v in pre.values() for k in v})
        rows = [{"model": m, **{f"k={k}": _pct(v.get(str(k), v.get(k, {})).get("asr"))
                                for k in ks}} for m, v in pre.items()]
        parts += ["<h3>Prefilling attack</h3>",
                  ("<p>ASR = share of prompts not refused after forcing the first k tokens of a "
                   "compliant answer.</p>"), table(rows),
                  _fig(run_dir, "prefill.png", "ASR vs number of prefilled tokens")]

    rd = res.get("direction") or {}
    if rd:
        parts += _direction_parts(run_dir, rd)

    per = res.get("persona") or {}
    if per:
        rows = [{"model": m, "suite": s, "spread (max−min)": _pct(d["spread"]),
                 "max": f"{d['max_persona']} {_pct(d['max_rate'])}",
                 "min": f"{d['min_persona']} {_pct(d['min_rate'])}",
                 "no persona": _pct(d["baseline_rate"])}
                for m, v in per.items() for s, d in v.items()]
        parts += ["<h3>Persona sensitivity</h3>", table(rows),
                  _fig(run_dir, "persona.png", "refusal rate per persona (aligned model)")]

    syn = res.get("synth") or {}
    if syn:
        rows = [{"model": m, "harmful-looking share": _pct(v["harmful_share"]), "95% CI": _ci([v["lo"], v["hi"]]),
                 "n": v["n"]} for m, v in syn.items()]
        parts += ["<h3>Self-synthesis (MAGPIE)</h3><p class='note'>Keyword flag: a crude screen.</p>",
                  table(rows)]
    return Section(title, "".join(parts) or "<p><em>no diagnostics in this run</em></p>", "diagnose",
                   base=str(run_dir))  # figure links are relative to run_dir


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    try:
        return fmt.format(float(x))
    except (TypeError, ValueError):
        return "–"


def _rate(r: dict[str, Any], tag: str) -> str:
    """'p% [lo, hi] (k/n)' of a Wilson-interval rate in a direction row."""
    if f"{tag}refusal_rate" not in r:
        return "–"
    return (f"{_pct(r[f'{tag}refusal_rate'])} {_ci([r[f'{tag}refusal_lo'], r[f'{tag}refusal_hi']])} "
            f"({r.get(f'{tag}refusal_k')}/{r.get(f'{tag}refusal_n')})")


def _effect(r: dict[str, Any], name: str) -> str:
    if name not in r:
        return "–"
    return f"{100 * float(r[name]):+.1f} pp [{100 * float(r[name + '_lo']):+.1f}, {100 * float(r[name + '_hi']):+.1f}]"


def _direction_deviation(rd: dict[str, Any]) -> str:
    """Where this run scored fewer candidates than the reference (the quick lab does)."""
    stride, n_pos = int(rd.get("layer_stride") or 1), rd.get("n_positions")
    if stride == 1 and rd.get("all_positions", True):
        return ""
    parts = [f"the last {esc(n_pos)} post-instruction position(s)" if not rd.get("all_positions", True) else "",
             f"one layer in {stride}" if stride > 1 else ""]
    return (f"<p class='note'>Deviation from the reference (CPU budget): candidates scored at "
            f"{' and '.join(p for p in parts if p)} only; <code>brittle lab --full</code> scores every "
            "position and layer.</p>")


def _direction_parts(run_dir: Path, rd: dict[str, Any]) -> list[str]:
    """Refusal direction: the chosen candidate with bypass / induce / KL against the
    baselines, then per model the judged refusal rates (Wilson 95 % intervals) and the
    paired effects of ablation and addition (bootstrap 95 % intervals)."""
    head = ("<h3>Refusal direction (Arditi et al. 2024)</h3><p>Chosen as in the reference code "
            "(andyrdt/refusal_direction, <code>select_direction.py</code>): candidates = difference of mean "
            "activations (harmful − harmless train prompts) at every post-instruction position and layer; "
            "kept if KL on harmless ≤ threshold, induce score ≥ threshold and not in the last layers; "
            "the lowest bypass score wins. Scores are refusal log-odds of the tokens "
            f"{esc(', '.join(repr(t) for t in rd.get('refusal_tokens', [])))} at the first reply position, on "
            f"{esc(rd.get('n_harmful_val'))} + {esc(rd.get('n_harmless_val'))} held-out prompts.</p>"
            + _direction_deviation(rd))
    base = rd.get("baseline") or {}
    if "skipped" in rd:
        msg = (f"<p><em>no direction chosen: {esc(rd['skipped'])}</em> Baseline refusal scores: harmful "
               f"{esc(_num(base.get('harmful_refusal_score')))}, harmless "
               f"{esc(_num(base.get('harmless_refusal_score')))}.</p>")
        cap = "bypass / induce / KL of every candidate by layer (no candidate passed the filter)"
        return [head, msg, _fig(run_dir, "direction.png", cap)]
    sel = [{"layer": f"{rd.get('layer')} of {rd.get('n_layers')}",
            "position": f"{rd.get('position')} ({rd.get('position_token')!r})",
            "bypass (harmful, ablated)": f"{_num(rd.get('bypass_score'))} vs {_num(base.get('harmful_refusal_score'))}",
            "induce (harmless, added)": f"{_num(rd.get('induce_score'))} vs {_num(base.get('harmless_refusal_score'))}",
            "KL (harmless, ablated)": _num(rd.get("kl"), "{:.4f}"),
            "candidates kept": f"{rd.get('n_kept')} of {rd.get('n_candidates')}"}]
    rows = [{"model": r.get("model"), "n": r.get("refusal_n", r.get("harmful_proj_n")),
             "refusal, harmful": _rate(r, ""), "ablated": _rate(r, "ablated_"),
             "ablation effect": _effect(r, "ablation_effect"), "refusal, harmless": _rate(r, "harmless_"),
             "with addition": _rate(r, "added_"), "addition effect": _effect(r, "addition_effect"),
             "projection gap": _num(r.get("proj_gap"), "{:.2f}")}
            for r in rd.get("models", [])]
    note = ("<p class='note'>Refusal rates: greedy replies judged on held-out test prompts (disjoint from the "
            "prompts that chose the direction), Wilson 95 % intervals; effects: paired differences with "
            "bootstrap 95 % intervals. The direction is the aligned model's, applied to every model. All "
            "candidates: <code>direction_candidates.json</code>.</p>")
    return [head, table(sel), table(rows), note,
            _fig(run_dir, "direction.png", "bypass / induce / KL of every candidate by layer (one line per "
                                           "position; dashed: no intervention; dotted: thresholds; shaded: pruned; star: chosen)")]
