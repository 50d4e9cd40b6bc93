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


def _yes(v: Any) -> str:
    return "—" if v is None else ("yes" if v else "no")


def _arrow(a: Any, b: Any) -> str:
    return f"{_num(a)} → {_num(b)}"


def _agreement(c: dict[str, Any]) -> str:
    n = c.get("unanimous")
    return "—" if n is None else f"{_num(c.get('unanimous_agreement'))} of {n}"


def _split_note(split: dict[str, Any] | None, verb: str) -> str:
    """The held-out protocol in one sentence (seed and sizes)."""
    if not split:
        return "<p class='note'>" + esc("Older output: no selection/report split recorded.") + "</p>"
    return "<p class='note'>" + esc(
        f"Scenarios not used to pick the rules ({split.get('pool')}) are split per rule, stratified by "
        f"{split.get('stratified_by', 'category')}, with seed {split.get('seed')} into a selection half "
        f"(≤ {split.get('n_selection')}) on which the rewrite is {verb} and a disjoint report half "
        f"(≤ {split.get('n_report')}); entropy before/after is stated on the report half. 'held-out': "
        "'does not generalise' = lower entropy on the selection half but not on the report half. "
        "Meaning shift = embedding cosine below the threshold or a changed verdict on a selection "
        "scenario where the original's readers were unanimous."
    ) + "</p>"


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
                f"{len(s['strategies'])} strategies ({', '.join(s['strategies'])}) × {len(s['panel'])} panel members "
                f"= {len(s.get('readers', s['panel']))} readers ({', '.join(s.get('readers', s['panel']))}) × "
                f"{len(s.get('permutations', [1]))} answer-order permutations ({', '.join(s.get('permutations', ['?']))}); "
                f"unscored {s['unscored']}; mean probability mass on the answer letters {_num(s.get('mean_option_mass'))}. "
                "Entropy is disagreement between readers (each reader's permutations averaged first); "
                "disagreement between one reader's permutations is reported as template sensitivity."
            )
            + "</p>"
        )
    parts.append(
        "<p class='note'>"
        + esc(
            "He et al. (2025) use a panel of 5 strong judge models and ~5k real conversations. Offline, "
            "the panel is the small local models installed here (SmolLM2-135M; Qwen2.5-Coder-0.5B after "
            "`make qwen`), each under two answer-order permutations: weak judges whose letter preferences "
            "dominate, so these numbers test the pipeline, not the rules."
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
                    {"metric": "template sensitivity: share of items where a reader's permutations disagree",
                     "value": _num((a.get("template_sensitivity") or {}).get("template_disagreement"))},
                    {"metric": "template sensitivity: mean entropy across a reader's permutations (bits)",
                     "value": _num((a.get("template_sensitivity") or {}).get("template_entropy"))},
                ]
            )
        )
        if len(a.get("readers", [])) == 1:
            parts.append("<p class='note'>" + esc(
                "One reader: the between-reader (votes) entropy is 0 by definition; the mean-p entropy is that "
                "reader's own uncertainty. Install a second judge model (`make qwen`) or name one with --panel."
            ) + "</p>")
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
            best = (rule.get("best") or {}).get("id")
            for c in rule.get("candidates", []):
                rows.append({
                    "rule": rule["rule_id"], "original": rule["original"], "revised": c["text"],
                    "H before (report half)": rule["entropy_before"], "H after (report half)": c["entropy_after"],
                    "H before → after (selection half)": _arrow(rule.get("entropy_before_selection"),
                                                                c.get("entropy_after_selection")),
                    "held-out": c.get("heldout", "—"), "embedding shift": c["meaning_shift"],
                    "unanimous agreement": _agreement(c), "meaning shift?": _yes(c.get("meaning_shifted")),
                    "kept": _yes(c["kept"]), "chosen": _yes(c["id"] == best),
                })
        parts.append(f"<h3>{esc('Prompt-based refinement')}</h3>" + _split_note(r.get("split"), "chosen") + table(rows))
        if (run_dir / "form.html").exists():
            parts.append("<p><a href=\"form.html\">" + esc("Meaning-shift form (mark each revision)") + "</a></p>")
    gr = run_dir / "grpo.json"
    if gr.exists():
        g = read_json(gr)
        parts.append(
            f"<h3>{esc('GRPO refinement')}</h3><p>"
            + esc(f"{g.get('steps')} GRPO steps; mean reward per step: "
                  + ", ".join(_num(h["mean_reward"]) for h in g.get("reward_history", [])))
            + "</p>"
            + _split_note(g.get("split"), "trained")
            + table(
                [{**row, "unanimous agreement": _agreement(row), "meaning shift?": _yes(row.get("meaning_shifted")),
                  "H before → after (selection half)": _arrow(row.get("entropy_before_selection"),
                                                              row.get("entropy_after_selection"))}
                 for row in g.get("rules", [])],
                ["rule_id", "original", "revised", "entropy_before", "entropy_after", "H before → after (selection half)",
                 "heldout", "meaning_shift", "unanimous agreement", "meaning shift?"],
            )
        )
    if len(parts) == 1:
        parts.append("<p><em>" + esc("no rules outputs in this run directory") + "</em></p>")
    return Section(title, "".join(parts), anchor="rules", base=str(run_dir))  # links relative to run_dir
