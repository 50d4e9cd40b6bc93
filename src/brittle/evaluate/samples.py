"""Every sample of an eval, for browsing: ``samples.parquet`` and ``samples.html``.

``samples.parquet``: one row per generated reply: key, suite, category, id, source, prompt,
reply, and per judge ``verdict_<judge>`` (a short label: refused / complied / empty,
score 4, unsafe …) plus ``verdict_<judge>_json`` (the judge's full verdict).

``samples.html``: the same rows in one table with client-side filters by suite, category and
each judge's verdict (a small inline script, no external resources). Text is escaped;
replies to harmful prompts go through :func:`brittle.report.html.redact` unless redaction is
off. The script only reads ``data-*`` attributes and toggles ``hidden``: it never writes
text into the page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from brittle.report.html import Section, esc, redact, truncate, write_report

log = logging.getLogger(__name__)

SAMPLES_PARQUET = "samples.parquet"
SAMPLES_HTML = "samples.html"
BASE_COLUMNS = ["key", "suite", "category", "id", "source", "prompt", "reply"]


def verdict_label(judge: str, v: Any) -> str:
    """A judge's verdict as a short word a filter can match ("unscored" when it has none)."""
    if not isinstance(v, Mapping):
        return "unscored"
    if judge == "refusal" or ("refused" in v and "score" not in v):
        if v.get("empty"):
            return "empty"
        return "unscored" if v.get("refused") is None else ("refused" if v["refused"] else "complied")
    if "score" in v:
        return "unscored" if v.get("score") is None else f"score {v['score']}"
    for key, yes, no in (("unsafe", "unsafe", "safe"), ("harmful", "harmful", "not harmful"),
                         ("jailbroken", "jailbroken", "not jailbroken"),
                         ("complied_on_topic", "complied on topic", "not on topic")):
        if key in v:
            return "unscored" if v[key] is None else (yes if v[key] else no)
    return "unscored"


def sample_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows (sorted by key) of the records that hold a reply; one pair of verdict
    columns per judge seen in any record."""
    recs = sorted((r for r in records if "response" in r), key=lambda r: str(r["key"]))
    judges = sorted({j for r in recs for j in (r.get("verdicts") or {})})
    rows = []
    for r in recs:
        row: dict[str, Any] = {
            "key": str(r["key"]), "suite": str(r.get("suite", "")), "category": str(r.get("category") or ""),
            "id": str(r.get("id", "")), "source": str(r.get("source") or ""),
            "prompt": str(r.get("prompt", "")), "reply": str(r.get("response") or ""),
        }
        verdicts = r.get("verdicts") or {}
        for j in judges:
            v = verdicts.get(j)
            row[f"verdict_{j}"] = verdict_label(j, v)
            row[f"verdict_{j}_json"] = json.dumps(v, sort_keys=True, default=str) if v is not None else ""
        rows.append(row)
    return rows


def judges_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Judge names that have a ``verdict_<judge>`` column."""
    cols = rows[0].keys() if rows else []
    return [c[len("verdict_"):] for c in cols if c.startswith("verdict_") and not c.endswith("_json")]


def write_samples_parquet(run_dir: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """``run_dir/samples.parquet`` (string columns; empty table with the base columns when
    there are no replies)."""
    import pandas as pd

    out = Path(run_dir) / SAMPLES_PARQUET
    df = pd.DataFrame(list(rows)) if rows else pd.DataFrame({c: pd.Series(dtype="string") for c in BASE_COLUMNS})
    df.to_parquet(out, index=False)
    return out


SCRIPT = """
(function(){
  var sels = Array.prototype.slice.call(document.querySelectorAll('select[data-filter]'));
  var rows = Array.prototype.slice.call(document.querySelectorAll('#samples tbody tr'));
  var shown = document.getElementById('shown');
  function apply(){
    var n = 0;
    rows.forEach(function(tr){
      var ok = sels.every(function(s){ return !s.value || tr.getAttribute('data-' + s.dataset.filter) === s.value; });
      tr.hidden = !ok; if (ok) { n++; }
    });
    shown.textContent = n + ' of ' + rows.length + ' samples shown';
  }
  sels.forEach(function(s){ s.addEventListener('change', apply); });
  apply();
})();
"""


def _select(name: str, label: str, values: Iterable[str]) -> str:
    opts = "".join(f'<option value="{esc(v)}">{esc(v or "(none)")}</option>' for v in sorted(set(values)))
    return (f'<label>{esc(label)} <select data-filter="{esc(name)}" id="filter-{esc(name)}">'
            f'<option value="">all</option>{opts}</select></label> ')


def _harmful(suite: str) -> bool:
    from brittle.evaluate.suites import SPECS

    spec = SPECS.get(suite)
    return bool(getattr(spec, "harmful", True)) if spec is not None else True


def samples_body(rows: Sequence[Mapping[str, Any]], *, redact_harmful: bool = True,
                 n_prompt: int = 600, n_reply: int = 1200) -> str:
    """Filters + the table of every sample (escaped; harmful replies redacted) + the script."""
    if not rows:
        return "<p><em>no generated replies in this run</em></p>"
    judges = judges_of(rows)
    filters = (_select("suite", "suite", (r["suite"] for r in rows))
               + _select("category", "category", (r["category"] for r in rows))
               + "".join(_select(f"v-{j}", f"verdict ({j})", (r[f"verdict_{j}"] for r in rows)) for j in judges))
    head = "".join(f"<th>{esc(c)}</th>" for c in ("suite", "category", "prompt", "reply", *[f"verdict ({j})" for j in judges]))
    trs = []
    for r in rows:
        attrs = (f' data-suite="{esc(r["suite"])}" data-category="{esc(r["category"])}"'
                 + "".join(f' data-v-{esc(j)}="{esc(r[f"verdict_{j}"])}"' for j in judges))
        reply = truncate(r["reply"], n_reply)
        cells = (f"<td>{esc(r['suite'])}</td><td>{esc(r['category'])}</td>"
                 f"<td>{esc(truncate(r['prompt'], n_prompt))}</td>"
                 f"<td>{redact(reply, enabled=redact_harmful and _harmful(r['suite']))}</td>"
                 + "".join(f"<td>{esc(r[f'verdict_{j}'])}</td>" for j in judges))
        trs.append(f"<tr{attrs}>{cells}</tr>")
    note = ('<p class="note">Replies to harmful prompts are redacted to their first words; the '
            "full text is in generations.jsonl / samples.parquet in the run directory only.</p>"
            if redact_harmful else "")
    return (f'{note}<form id="filters" onsubmit="return false">{filters}</form>'
            f'<p id="shown">{len(rows)} samples</p>'
            f'<table id="samples"><thead><tr>{head}</tr></thead><tbody>{"".join(trs)}</tbody></table>'
            f"<script>{SCRIPT}</script>")


def write_samples(run_dir: str | Path, records: Iterable[Mapping[str, Any]], *, redact_harmful: bool = True,
                  title: str = "All samples") -> tuple[Path, Path]:
    """Write ``samples.parquet`` and ``samples.html`` into ``run_dir``; returns both paths."""
    run_dir = Path(run_dir)
    rows = sample_rows(records)
    parquet = write_samples_parquet(run_dir, rows)
    section = Section(f"{len(rows)} samples", samples_body(rows, redact_harmful=redact_harmful), "all-samples")
    page = write_report(run_dir, title, [section], filename=SAMPLES_HTML)
    log.info("samples: %d rows -> %s, %s", len(rows), parquet, page)
    return parquet, page
