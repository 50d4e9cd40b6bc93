"""Report sections for an eval run (and several runs side by side).

Everything from datasets or models enters the HTML through ``esc`` / ``redact``; replies to
harmful prompts are redacted (first words only) unless ``redact=False``.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.evaluate.labeling import find_calibration
from brittle.evaluate.metrics import DEFINITIONS
from brittle.evaluate.plots import category_bars
from brittle.evaluate.run import GENERATIONS, METRICS
from brittle.evaluate.samples import SAMPLES_HTML
from brittle.evaluate.suites import SPECS
from brittle.report.format import display_path
from brittle.report.html import Section, esc, figure, redact, table, truncate
from brittle.report.links import relative_link
from brittle.store import JsonlStore, read_json


def fmt_ci(iv: Sequence[float] | None, pct: bool = True) -> str:
    """(p, lo, hi) → "42.0% [30.1, 55.2]" (or plain numbers)."""
    if not iv or any(v is None or (isinstance(v, float) and math.isnan(v)) for v in iv):
        return "–"
    p, lo, hi = iv
    if pct:
        return f"{100 * p:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{p:.3g} [{lo:.3g}, {hi:.3g}]"


NON_REFUSAL_COL = "non-refusal rate (ASR by refusal phrases: share of replies not opening with a refusal)"
CORRECTED_COL = "harmfulness rate (label-corrected)"
OVER_REFUSAL_COL = "over-refusal rate (benign prompts refused)"


def summary_rows(
    metrics: Mapping[str, Any], label: str | None = None,
    calibration: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, str]]:
    """One row per suite: n, refusal rate, non-refusal rate (the refusal-phrase "ASR"), every
    harmfulness judge's harmfulness rate, the label-corrected harmfulness rate when
    ``calibration`` ({suite: calibration.json rate}) has one, rubric, quality, utility."""
    rows = []
    for suite, m in metrics.get("suites", {}).items():
        row = {"run": label} if label is not None else {}
        harmful = bool(SPECS[suite].harmful) if suite in SPECS else True
        row.update({
            "suite": suite,
            "n": str(m.get("n") or m.get("utility", {}).get("n", 0)),
            "refusal rate": fmt_ci(m.get("refusal_rate")),
            NON_REFUSAL_COL: fmt_ci(m.get("non_refusal_rate", m.get("asr"))) if harmful else "–",
        })
        if not harmful and "over_refusal_rate" in m:  # over-refusal, a benign --prompts file
            row[OVER_REFUSAL_COL] = fmt_ci(m["over_refusal_rate"])
        if calibration and suite in calibration:  # right next to the raw rate it corrects
            c = calibration[suite]
            notes = f" ({', '.join(c['notes'])})" if c.get("notes") else ""
            row[CORRECTED_COL] = fmt_ci(c["corrected"]) + notes if c.get("corrected") else f"– ({c.get('reason')})"
        row["empty"] = fmt_ci(m.get("empty_rate"))
        if "rubric" in m:
            r = m["rubric"]
            if "mean_score" in r:
                row["rubric mean (1–5)"] = fmt_ci(r["mean_score"], pct=False)
            row["harmfulness rate (rubric score 5)"] = fmt_ci(r.get("harmfulness_rate"))
            row["unscored"] = str(r.get("n_unscored", ""))
        for name, jm in m.items():  # every other harmfulness judge (harmbench, strongreject, …)
            if name != "rubric" and isinstance(jm, Mapping) and (
                    "harmfulness_rate" in jm or (name == "classifier" and "unsafe_rate" in jm)):
                row[f"harmfulness rate ({name})"] = fmt_ci(jm.get("harmfulness_rate", jm.get("unsafe_rate")))
                if jm.get("n_unscored"):
                    row[f"{name} unscored"] = str(jm["n_unscored"])
        if "quality" in m and "complied_on_topic_rate" in m["quality"]:
            row["complied & on-topic (quality)"] = fmt_ci(m["quality"]["complied_on_topic_rate"])
        if "helpfulness" in m:
            row["helpfulness (1–5)"] = fmt_ci(m["helpfulness"]["mean_score"], pct=False)
        if "utility" in m:
            row["ref. NLL/token"] = fmt_ci(m["utility"]["nll"], pct=False)
            row["ref. perplexity"] = fmt_ci(m["utility"]["ppl"], pct=False)
        rows.append(row)
    return rows


def definitions_note(rows: Sequence[Mapping[str, Any]]) -> str:
    """What each rate in the table measures (refusal rate vs harmfulness rate, named apart)."""
    cols = _columns(rows)
    keys = ["refusal_rate", "non_refusal_rate"]
    if any(c.startswith("harmfulness rate") for c in cols):
        keys.append("harmfulness_rate")
    if "complied & on-topic (quality)" in cols:
        keys.append("complied_on_topic_rate")
    return '<p class="note">' + "<br>".join(esc(DEFINITIONS[k]) for k in keys) + "</p>"


def calibration_note(cal: Mapping[str, Any]) -> str:
    """Where the label-corrected rates come from: labels, the judge's precision/recall on them."""
    acc = cal.get("judge_accuracy", {})
    return (
        f"<p>{esc(CORRECTED_COL)}: from {esc(cal.get('n_labelled'))} human labels "
        f"({esc(cal.get('n_labelled_harmful'))} harmful) of this run's replies "
        f"(<code>{esc(Path(str(cal.get('labels', ''))).name)}</code>); on them the "
        f"{esc(cal.get('judge'))} judge's positive call (<em>{esc(cal.get('judge_positive', ''))}</em>) has "
        f"precision {esc(fmt_ci(acc.get('precision')))}, recall {esc(fmt_ci(acc.get('recall')))}, "
        f"specificity {esc(fmt_ci(acc.get('specificity')))} (Wilson 95%). {esc(cal.get('method', ''))}. "
        "Flags: <em>clipped</em> = the raw rate lies outside what the labelled judge errors allow "
        "(they do not fit this rate: label it apart); <em>raw at 0/100%</em> or <em>empty confusion "
        "cell</em> = the bootstrap has no spread on that side, so the interval is too narrow.</p>"
    )


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "eval"


def _place(png: Path, report_dir: Path) -> Path:
    """The PNG must sit under the report directory for a relative link: copy it if not."""
    try:
        png.resolve().relative_to(report_dir.resolve())
        return png
    except ValueError:
        dest = report_dir / "plots" / png.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, dest)
        if png.with_suffix(".svg").exists():  # the SVG written beside it travels too
            shutil.copyfile(png.with_suffix(".svg"), dest.with_suffix(".svg"))
        return dest


def _load(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS
    if not path.exists():
        raise BrittleError(f"{path} not found: run `brittle eval --run-dir {run_dir}` first")
    return read_json(path)


def sample_table(records: Sequence[Mapping[str, Any]], *, redact_harmful: bool = True,
                 per_suite: int = 4) -> str:
    """Escaped HTML table of a few prompts and replies per suite."""
    shown: dict[str, int] = {}
    rows = []
    for r in sorted(records, key=lambda r: r["key"]):
        suite = r["suite"]
        if "response" not in r or shown.get(suite, 0) >= per_suite:
            continue
        shown[suite] = shown.get(suite, 0) + 1
        harmful = SPECS[suite].harmful if suite in SPECS else True
        verdicts = r.get("verdicts", {})
        verdict = []
        if "refusal" in verdicts:
            v = verdicts["refusal"]
            verdict.append("empty" if v.get("empty") else ("refused" if v.get("refused") else "complied"))
        if "rubric" in verdicts:
            verdict.append(f"rubric {verdicts['rubric'].get('score')}")
        reply = truncate(r["response"], 400)
        rows.append(
            "<tr>"
            f"<td>{esc(suite)}</td><td>{esc(r.get('category') or '')}</td>"
            f"<td>{esc(truncate(r.get('prompt', ''), 300))}</td>"
            f"<td>{redact(reply, enabled=redact_harmful and harmful)}</td>"
            f"<td>{esc(', '.join(verdict))}</td></tr>"
        )
    if not rows:
        return "<p><em>no generations</em></p>"
    head = "".join(f"<th>{c}</th>" for c in ("suite", "category", "prompt", "reply", "verdict"))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def eval_section(
    run_dir: str | Path, title: str = "Safety evaluation", redact: bool = True,
    *, report_dir: str | Path | None = None, samples_per_suite: int = 4,
) -> Section:
    """Summary table with CIs, per-category refusal bar chart, sample prompts/replies.

    ``report_dir``: directory of the index.html that will embed the section (default
    ``run_dir``); image links are relative to it."""
    run_dir = Path(run_dir)
    report_dir = Path(report_dir or run_dir)
    m = _load(run_dir)
    cal = find_calibration(run_dir)
    rows = summary_rows(m, calibration=cal[1] if cal else None)
    parts = [
        f"<p>model <code>{esc(m.get('model'))}</code>"
        + (f", adapter <code>{esc(display_path(m.get('adapter'), run_dir))}</code>" if m.get("adapter") else "")
        + f"; greedy, {esc(m.get('max_new_tokens'))} new tokens; judges: "
        + esc(", ".join(f"{k} ({_judge_desc(v)})" for k, v in m.get("judges", {}).items()))
        + ". Intervals: 95% percentile bootstrap.</p>",
        table(rows, _columns(rows)),
        definitions_note(rows),
        calibration_note(cal[0]) if cal else "",
    ]
    series = {
        s: {c: cm["refusal_rate"] for c, cm in sm.get("per_category", {}).items()}
        for s, sm in m.get("suites", {}).items() if sm.get("per_category")
    }
    for suite, cats in series.items():
        png = category_bars({suite: cats}, run_dir / "plots" / f"{_slug(title)}-{suite}.png",
                            title=f"{suite}: refusal rate by category")
        parts.append(figure(_place(png, report_dir), report_dir,
                            caption=f"{suite}: refusal rate per category with 95% CIs"))
    records = JsonlStore(run_dir / GENERATIONS, key="key").records()
    parts.append("<h3>Sample prompts and replies</h3>")
    if redact:
        parts.append('<p class="note">Replies to harmful prompts are redacted to their first '
                     "words; full text is in generations.jsonl in the run directory only.</p>")
    parts.append(sample_table(records, redact_harmful=redact, per_suite=samples_per_suite))
    parts.append(samples_link(run_dir, report_dir))
    return Section(title=title, body="".join(parts), anchor=_slug(title), base=str(report_dir))


def samples_link(run_dir: Path, report_dir: Path, label: str = "") -> str:
    """A link (relative to ``report_dir``) to the run's filterable samples page, if written."""
    page = run_dir / SAMPLES_HTML
    if not page.exists():
        return ""
    what = f"every sample of {label}" if label else "every sample"
    return (f'<p><a href="{esc(relative_link(page, report_dir))}">Browse {esc(what)}</a> '
            "(filters by suite, category and verdict).</p>")


def _judge_desc(meta: Mapping[str, Any]) -> str:
    if "prompt_sha256" in meta:
        return f"{meta.get('judge_model', '')}, prompt sha256 {str(meta['prompt_sha256'])[:12]}"
    if "list_sha256" in meta:
        return f"{meta.get('n_phrases')} phrases in first {meta.get('window_chars')} chars, list sha256 {str(meta['list_sha256'])[:12]}"
    return str(meta.get("kind", ""))


def compare_section(
    runs: Mapping[str, str | Path], title: str = "Before / after", *,
    report_dir: str | Path | None = None,
) -> Section:
    """Several eval runs side by side: one summary table (rows labelled by run) and one
    grouped per-category bar chart per suite (one colour per run, CI error bars)."""
    if not runs:
        raise BrittleError("compare_section needs at least one run")
    report_dir = Path(report_dir or next(iter(runs.values())))
    loaded = {label: _load(Path(d)) for label, d in runs.items()}
    cals = {label: find_calibration(Path(d)) for label, d in runs.items()}
    rows = [row for label, m in loaded.items()
            for row in summary_rows(m, label, calibration=cals[label][1] if cals[label] else None)]
    parts = ["<p>Intervals: 95% percentile bootstrap over prompts.</p>", table(rows, _columns(rows)),
             definitions_note(rows)]
    notes = {(c[0].get("run_dir"), c[0].get("labels_sha256")): c[0] for c in cals.values() if c}
    parts += [calibration_note(c) for c in notes.values()]  # one per calibration.json
    suites = sorted({s for m in loaded.values() for s in m.get("suites", {})})
    for suite in suites:
        series = {
            label: {c: cm["refusal_rate"] for c, cm in m["suites"][suite].get("per_category", {}).items()}
            for label, m in loaded.items() if suite in m.get("suites", {})
        }
        if not any(series.values()):
            continue
        png = category_bars(series, report_dir / "plots" / f"{_slug(title)}-{suite}.png",
                            title=f"{suite}: refusal rate by category")
        parts.append(figure(png, report_dir, caption=f"{suite}: refusal rate per category, per run (95% CIs)"))
    parts.append("".join(samples_link(Path(d), report_dir, label) for label, d in runs.items()))
    return Section(title=title, body="".join(parts), anchor=_slug(title), base=str(report_dir))
