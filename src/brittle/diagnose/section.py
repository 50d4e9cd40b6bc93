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
        cols = ["model", "harmful_proj_mean", "harmless_proj_mean", "refusal_rate", "ablated_refusal_rate"]
        rows = [{c: r.get(c, "") for c in cols} for r in rd.get("models", [])]
        head = (f"<h3>Refusal direction (Arditi et al. 2024)</h3><p>layer {esc(rd.get('layer'))} of "
                f"{esc(rd.get('n_layers'))}, chosen by held-out {esc(rd.get('method'))}.</p>")
        parts += [head,
                  table(rows, cols), _fig(run_dir, "direction.png", "held-out AUC per layer; projections")]

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
    return Section(title, "".join(parts) or "<p><em>no diagnostics in this run</em></p>", "diagnose")
