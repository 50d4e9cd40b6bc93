"""Report section for `brittle select` (+ the fine-tuning comparison) and shared plots.

Images are embedded as base64 ``data:`` URIs so the section renders wherever the page is
(lab report one directory up, standalone audit.html); every text passes through ``esc``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError
from brittle.report.format import display_path, duration, looks_like_path
from brittle.report.html import Section, esc, table, truncate
from brittle.report.plots import CI_LABEL, pyplot, save_figure
from brittle.store import JsonlStore, read_json

FORMAT_COLS = ("list", "numbered", "math", "code", "short")


def embed_png(path: str | Path, caption: str = "") -> str:
    """<figure> with the PNG inlined as a data URI (base64 is HTML-safe); caption escaped."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">{cap}</figure>'


def _plt() -> Any:
    return pyplot()


def asr_plot(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Bars of ASR per selection with CI error bars (rows from ``compare_table``)."""
    plt = _plt()
    names = [str(r["selection"]) for r in rows]
    ps = [r.get("asr") if r.get("asr") is not None else math.nan for r in rows]
    lo = [max(0.0, p - r["lo"]) if r.get("lo") is not None and not math.isnan(p) else 0.0 for p, r in zip(ps, rows)]
    hi = [max(0.0, r["hi"] - p) if r.get("hi") is not None and not math.isnan(p) else 0.0 for p, r in zip(ps, rows)]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.6))
    colors = ["#c0392b" if n == "harmful" else "#2c7fb8" if n.startswith("top-") else "#7f8c8d" for n in names]
    ax.bar(range(len(names)), ps, yerr=[lo, hi], capsize=3, color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"ASR after fine-tuning\n(share of harmful prompts; bars: {CI_LABEL})", fontsize=9)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def histogram_plot(values: Sequence[float], path: str | Path, *, cut: float | None = None,
                   title: str = "", xlabel: str = "risk score") -> Path:
    """Histogram of scores; optional vertical line at the drop threshold."""
    plt = _plt()
    vals = [v for v in values if v is not None and not math.isnan(v)]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(vals, bins=min(40, max(5, len(vals) // 3 or 1)), color="#2c7fb8")
    if cut is not None and not math.isnan(cut):
        ax.axvline(cut, color="#c0392b", linestyle="--", label="drop threshold")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows (count)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def pct(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * float(x):.0f}%"


def makeup_rows(makeups: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Table rows: name, n, share of each format, mean words of the response."""
    rows = []
    for name, m in makeups.items():
        row: dict[str, Any] = {"set": name, "n": int(m.get("n", 0))}
        row.update({f: pct(m.get(f)) for f in FORMAT_COLS})
        mw = m.get("mean_words")
        row["mean words"] = "" if mw is None else f"{float(mw):.0f}"
        rows.append(row)
    return rows


def examples_table(rows: Sequence[Mapping[str, Any]], n_prompt: int = 200, n_response: int = 300) -> str:
    """Escaped, truncated table of scored examples (rank, score, formats, prompt, response)."""
    out = [
        {"rank": r.get("rank"), "score": r.get("score"), "formats": ", ".join(r.get("formats", [])),
         "prompt": truncate(r.get("prompt", ""), n_prompt), "response": truncate(r.get("response", ""), n_response)}
        for r in rows
    ]
    return table(out, ["rank", "score", "formats", "prompt", "response"])


def _shown(value: Any, run_dir: Path) -> str:
    """A pool/file name for the page: paths relative to the run directory or ``~/…``."""
    return display_path(value, run_dir) if looks_like_path(value) else str(value)


def _anchor_counts(v: dict[str, Any]) -> str:
    """"10; repr 75" — or "10; unused by repr" when the repr score skipped this anchor set (the
    quick lab's repr, like the reference, uses only the harmful anchors)."""
    n_repr = v.get("n_repr", v["n"])
    return f"{v['n']}; repr {n_repr}" if n_repr else f"{v['n']}; unused by repr"


def versus_random(compare_dir: Path, names: Sequence[str]) -> list[dict[str, str]]:
    """ASR(selection) − ASR(random-K) for every other selection (first seed's fine-tuned cell of
    each, paired on the prompts both were judged on), with "inconclusive at this size"."""
    from brittle.report.verdict import flags_by_id, paired_difference, verdict

    def flags(name: str) -> dict[str, int] | None:
        path = compare_dir / name / "cells.jsonl"
        cells = [c for c in JsonlStore(path, key="key").records() if c["n"] > 0 and c.get("harmful_ids")] \
            if path.exists() else []
        if not cells:
            return None
        c = min(cells, key=lambda c: c["seed"])
        return flags_by_id(c["harmful_ids"], c["harmful_flags"])

    rand = flags("random") if "random" in names else None
    if rand is None:
        return []
    out = []
    for name in names:
        f = flags(name) if name != "random" else None
        if f is not None:
            out.append(verdict(f"{name} − random (ASR)", paired_difference(f, rand)))
    return out


def select_section(run_dir: str | Path, redact: bool = True, *, title: str = "Which benign data breaks safety",
                   top_n: int = 5) -> Section:
    """Format make-up of each selection, method agreement, top-scored examples and (when
    ``compare_selections`` ran) ASR per selection with CIs. ``redact`` is accepted for
    symmetry: only benign pool rows are shown (escaped and truncated), never harmful text."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.exists():
        raise BrittleError(f"{path} not found: run `brittle select --run-dir {run_dir}` first")
    s = read_json(path)
    parts = [
        f"<p>Pool <code>{esc(_shown(s['pool'], run_dir))}</code> ({esc(s['n_pool'])} examples) scored under "
        f"<code>{esc(s['model'])}</code>"
        + (f" + adapter <code>{esc(display_path(s['adapter'], run_dir))}</code>" if s.get("adapter") else "")
        + f" with {esc(', '.join(s['methods']))}; K = {esc(s['k'])}. Anchors: "
        + esc(", ".join(f"{k} ({_anchor_counts(v)})" for k, v in s.get("anchors", {}).items()))
        + ". Gradient scores: +1·harmful − 1·safe1 − 1·safe2 (He, Xia &amp; Henderson 2024). Scoring time: "
        + esc(", ".join(f"{m} {duration(v)}" for m, v in (s.get("seconds") or {}).items() if v is not None) or "cached")
        + ".</p>"
    ]
    compare = run_dir / "compare" / "results.jsonl"
    if compare.exists():
        from brittle.select.run import compare_table

        ctab = compare_table(JsonlStore(compare, key=lambda r: f"{r['selection']}|{r['seed']}").records())
        if ctab:
            png = asr_plot(ctab, run_dir / "plots" / "asr_per_selection.png", title="ASR per selection")
            parts.append("<h3>Fine-tuning on each selection</h3>")
            parts.append(embed_png(png, "ASR after fine-tuning the aligned model on each selection; "
                                        "error bars: 95% CI over seeds (t) or, with one seed, over prompts"))
            parts.append(table([{**r, "asr": pct(r["asr"]), "lo": pct(r["lo"]), "hi": pct(r["hi"])} for r in ctab],
                               ["selection", "n", "n_seeds", "asr", "lo", "hi", "ci_over"]))
            vs = versus_random(run_dir / "compare", [r["selection"] for r in ctab])
            if vs:
                parts.append("<h3>Top-K against random-K, paired on the same prompts</h3>" + table(vs))
            from brittle.train.recipe import compare_recipe_html

            parts.append(compare_recipe_html(run_dir / "compare"))  # one recipe for every selection
    makeups = {"pool (all)": s["pool_makeup"], **{k: v["makeup"] for k, v in s["selections"].items()}}
    parts.append("<h3>Format make-up of each selection</h3>")
    parts.append(table(makeup_rows(makeups)))
    if s.get("agreement"):
        parts.append("<h3>Agreement between methods</h3>")
        parts.append(table([{"pair": k, **{m: v.get(m) for m in ("spearman", "kendall", "topk_overlap", "topk_overlap_random")}}
                            for k, v in s["agreement"].items()]))
    for method, rows in s.get("top", {}).items():
        parts.append(f"<h3>Top-scored pool examples: {esc(method)}</h3>")
        parts.append(examples_table(rows[:top_n]))
    return Section(title, "".join(parts), "select", base=str(run_dir))
