"""A standalone HTML form for the human meaning-shift check (He et al. 2025).

One row per revision: original rule, revised rule, entropy before/after (on the report half
of the scenarios, see :mod:`brittle.rules.split`), embedding
meaning shift, and a yes/no "meaning shifted?" choice plus a note. "Save" builds a JSON
file in the browser (no server) and downloads it as ``meaning_shift_labels.json``:
``[{"id", "rule_id", "meaning_shifted": "yes"|"no"|null, "note"}]``.

All rule text passes through :func:`brittle.report.html.esc`; the script reads only ids
from ``data-`` attributes and note text from form fields, so rule text never reaches
JavaScript as code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brittle.report.html import CSS, esc

_SCRIPT = """
function collect(){
  const rows=[...document.querySelectorAll('tr[data-id]')];
  return rows.map(r=>{
    const c=r.querySelector('input[type=radio]:checked');
    return {id:r.dataset.id, rule_id:r.dataset.rule, meaning_shifted:c?c.value:null,
            note:r.querySelector('textarea').value};
  });
}
function save(){
  const blob=new Blob([JSON.stringify(collect(),null,2)],{type:'application/json'});
  const a=document.createElement('a');
  a.href=URL.createObjectURL(blob); a.download='meaning_shift_labels.json';
  document.body.appendChild(a); a.click(); a.remove();
}
"""


def _f(v: Any) -> str:
    if isinstance(v, float):
        return esc("—" if math.isnan(v) else f"{v:.3f}")
    return esc("—" if v is None else v)


def form_html(revisions: Sequence[dict[str, Any]], title: str = "Rule refinements: did the meaning shift?") -> str:
    rows = []
    for i, r in enumerate(revisions):
        name = f"q{i}"
        rows.append(
            f'<tr data-id="{esc(r["id"])}" data-rule="{esc(r["rule_id"])}">'
            f"<td>{esc(r['rule_id'])}</td><td>{esc(r['original'])}</td><td>{esc(r['revised'])}</td>"
            f"<td>{_f(r.get('entropy_before'))} → {_f(r.get('entropy_after'))}</td>"
            f"<td>{_f(r.get('meaning_shift'))}</td><td>{esc('yes' if r.get('kept') else 'no')}</td>"
            f'<td><label><input type="radio" name="{name}" value="yes"> yes</label> '
            f'<label><input type="radio" name="{name}" value="no"> no</label></td>'
            f'<td><textarea rows="2" cols="20" aria-label="note"></textarea></td></tr>'
        )
    head = "".join(
        f"<th>{esc(c)}</th>"
        for c in ("rule", "original", "revised", "entropy before → after (report half)", "embedding shift", "kept",
                  "meaning shifted?", "note")
    )
    body = "".join(rows) or '<tr><td colspan="8"><em>no revisions</em></td></tr>'
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>"
        "<p class='note'>For each revision, decide whether the revised rule forbids or requires "
        "something different from the original. Click <b>Save</b> to download your answers as JSON.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "<button type='button' onclick='save()'>Save</button>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def write_form(revisions: Sequence[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(form_html(revisions), encoding="utf-8")
    return path
