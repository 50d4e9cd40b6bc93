"""Minimal, dependency-free HTML report.

Every string that comes from a dataset or a model is *untrusted*: it only enters the page
through :func:`esc` (or :func:`redact`, which escapes too). Stages contribute
:class:`Section` objects; :func:`write_report` assembles ``index.html``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def esc(text: Any) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape(str(text), quote=True)


def redact(text: str, *, keep_words: int = 6, enabled: bool = True) -> str:
    """Escaped text; when ``enabled`` only the first ``keep_words`` words survive."""
    if not enabled:
        return esc(text)
    words = str(text).split()
    if len(words) <= keep_words:
        return esc(" ".join(words))
    return esc(" ".join(words[:keep_words])) + ' <span class="redacted">[… redacted]</span>'


def truncate(text: str, n: int = 300) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Section:
    title: str
    body: str  # already-safe HTML built with esc()/table()/figure()
    anchor: str = ""


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table with every cell escaped."""
    if not rows:
        return "<p><em>no rows</em></p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return esc(f"{v:.3g}")
    return esc(v)


def figure(path: str | Path, run_dir: str | Path, caption: str = "") -> str:
    """An <img> for a PNG inside the run directory (relative link)."""
    rel = Path(path).resolve().relative_to(Path(run_dir).resolve())
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{esc(rel.as_posix())}" alt="{esc(caption)}">{cap}</figure>'


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3} img{max-width:100%} figure{margin:1em 0}
.redacted{color:#a00;font-style:italic} .note{background:#fff8e1;padding:0.6em;border-left:4px solid #f0c000}
nav a{margin-right:1em}
"""


def write_report(run_dir: str | Path, title: str, sections: Sequence[Section]) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    nav = "".join(
        f'<a href="#{esc(s.anchor or f"s{i}")}">{esc(s.title)}</a>' for i, s in enumerate(sections)
    )
    parts = [
        f'<section id="{esc(s.anchor or f"s{i}")}"><h2>{esc(s.title)}</h2>{s.body}</section>'
        for i, s in enumerate(sections)
    ]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><nav>{nav}</nav>"
        + "".join(parts)
        + "</body></html>"
    )
    out = run_dir / "index.html"
    out.write_text(page, encoding="utf-8")
    return out
