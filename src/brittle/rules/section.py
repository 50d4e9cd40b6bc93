"""Lab-report section for the ambiguous-rules stage (reads the run directory only)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from brittle.report.html import Section, esc, figure, table


def _num(v: Any) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.3f}"
    return "—" if v is None else str(v)


def rules_section(run_dir: str | Path, title: str = "Ambiguous rules") -> Section:
    from brittle.store import read_json

    run_dir = Path(run_dir)
    parts: list[str] = []
    js = run_dir / "judge_summary.json"
    if js.exists():
        s = read_json(js)
        parts.append(
            "<p>"
            + esc(
                f"{s['judgments']} judgments: {s['rules']} rules × {s['scenarios']} scenarios × "
                f"{len(s['strategies'])} strategies ({', '.join(s['strategies'])}) × {len(s['panel'])} judges "
                f"({', '.join(s['panel'])}); unscored {s['unscored']}; mean probability mass on the "
                f"answer letters {_num(s.get('mean_option_mass'))}."
            )
            + "</p>"
        )
    parts.append(
        "<p class='note'>"
        + esc(
            "He et al. (2025) use a panel of 5 strong judge models and ~5k real conversations. Offline, "
            "the panel here is small local models (e.g. SmolLM2-135M with two prompt templates): a weak "
            "judge whose letter preferences dominate, so these numbers test the pipeline, not the rules."
        )
        + "</p>"
    )
    an = run_dir / "analysis.json"
    if an.exists():
        a = read_json(an)
        parts.append(
            table(
                [
                    {"metric": "mean panel entropy, no strategy (bits)", "value": _num(a.get("mean_entropy_none"))},
                    {"metric": "mean entropy, mean-p variant", "value": _num(a.get("mean_entropy_mean_p_none"))},
                    {"metric": "mean entropy with a strategy", "value": _num(a.get("mean_entropy_constrained"))},
                    {"metric": "share of scenarios without consensus", "value": _num(a.get("no_consensus_share"))},
                    {"metric": "flip rate (strategy vs none)", "value": _num(a.get("overall_flip_rate"))},
                ]
            )
        )
        parts.append(table(a.get("rule_entropy", [])[:10], ["rule_id", "entropy", "no_consensus", "scenarios"]))
        parts.append(table(a.get("leaning_by_judge", []), ["judge", "agree_narrow", "agree_broad", "leaning", "label"]))
        for name, cap in (
            ("rule_entropy", "Per-rule mean panel entropy"),
            ("flip_heatmap", "Flip rate (strategy × judge)"),
            ("leaning", "Default leaning per judge"),
            ("constraint", "Entropy per strategy"),
        ):
            f = a.get("figures", {}).get(name)
            if f and (run_dir / f).exists():
                parts.append(figure(run_dir / f, run_dir, cap))
    rf = run_dir / "refinements.json"
    if rf.exists():
        r = read_json(rf)
        rows = []
        for rule in r.get("rules", []):
            for c in rule.get("candidates", []):
                rows.append({
                    "rule": rule["rule_id"], "original": rule["original"], "revised": c["text"],
                    "H before": rule["entropy_before"], "H after": c["entropy_after"],
                    "meaning shift": c["meaning_shift"], "kept": "yes" if c["kept"] else "no",
                })
        parts.append(f"<h3>{esc('Prompt-based refinement')}</h3>" + table(rows))
        if (run_dir / "form.html").exists():
            parts.append("<p><a href='form.html'>" + esc("Meaning-shift form (mark each revision)") + "</a></p>")
    gr = run_dir / "grpo.json"
    if gr.exists():
        g = read_json(gr)
        parts.append(
            f"<h3>{esc('GRPO refinement')}</h3><p>"
            + esc(f"{g.get('steps')} GRPO steps; mean reward per step: "
                  + ", ".join(_num(h["mean_reward"]) for h in g.get("reward_history", [])))
            + "</p>"
            + table(g.get("rules", []), ["rule_id", "original", "revised", "entropy_before", "entropy_after", "meaning_shift"])
        )
    if len(parts) == 1:
        parts.append("<p><em>" + esc("no rules outputs in this run directory") + "</em></p>")
    return Section(title, "".join(parts), anchor="rules")
