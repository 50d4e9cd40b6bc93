"""Minimal, dependency-free HTML report.

Every string that comes from a dataset or a model is *untrusted*: it only enters the page
through :func:`esc` (or :func:`redact`, which escapes too). Stages contribute
:class:`Section` objects; :func:`write_report` assembles ``index.html``.

Links: a section's images and links are written relative to its ``base`` directory (the
stage's run directory); :func:`write_report` rewrites them relative to the page it writes
(:func:`brittle.report.links.rebase_links`), so every page works wherever the run directory
is moved.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from brittle.report.format import readable
from brittle.report.links import rebase_links, relative_link


def esc(text: Any) -> str:
    """HTML-escape any value (quotes included)."""
    return html.escape(str(text), quote=True)


def _graphemes(text: str) -> list[str]:
    """User-perceived characters (approximate extended grapheme clusters): a base character
    with its combining marks, variation selectors, emoji modifiers and ZWJ-joined parts;
    regional-indicator pairs (flags) stay together."""
    import unicodedata

    def emoji(c: str) -> bool:
        return ord(c) >= 0x1F000 or 0x2600 <= ord(c) <= 0x27BF

    out: list[str] = []
    for ch in text:
        cp = ord(ch)
        prev = out[-1] if out else ""
        joins = bool(prev) and len(prev) < 8 and (  # a cluster never hides more than 8 code points
            unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Mc")
            or (ch == "\u200d" and emoji(prev[0]))  # ZWJ only glues emoji, never letters
            or (prev.endswith("\u200d") and emoji(prev[0]) and emoji(ch))
            or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF or 0x1F3FB <= cp <= 0x1F3FF
            or (0x1F1E6 <= cp <= 0x1F1FF and len(prev) == 1 and 0x1F1E6 <= ord(prev) <= 0x1F1FF)
        )
        if joins:
            out[-1] += ch
        else:
            out.append(ch)
    return out


def redact(text: str, *, keep_words: int = 6, keep_chars: int = 40, enabled: bool = True) -> str:
    """Escaped text; when ``enabled`` only a short prefix survives: at most ``keep_words``
    whitespace-separated words *and* at most ``keep_chars`` width units of characters
    (a grapheme counts 1, a wide CJK one 4, so ~10 CJK characters), so text without spaces
    (CJK, zero-width-joined words, code) is cut too. Invisible format characters
    (zero-width spaces/joiners outside emoji, bidi controls, BOM) separate words like
    whitespace and are never shown; whitespace runs become one space."""
    if not enabled:
        return esc(text)
    import unicodedata

    kept: list[str] = []
    units = words = 0
    in_word = cut = False
    for g in _graphemes(str(text)):
        base = g[0]
        if base.isspace() or (unicodedata.category(base) == "Cf" and len(g) == 1):
            # whitespace, and invisible format characters (zero-width space, word joiner,
            # bidi controls, BOM) that can glue words together: a word boundary, shown as a space
            if in_word:
                in_word = False
                kept.append(" ")
            continue
        if not in_word:
            if words >= keep_words:
                cut = True
                break
            words += 1
            in_word = True
        w = 4 if unicodedata.east_asian_width(base) in ("W", "F") else 1
        if units + w > keep_chars:
            cut = True
            break
        units += w
        kept.append("".join(c for c in g if unicodedata.category(c) != "Cf" or c == "\u200d"))
    shown = "".join(kept).strip()
    if not cut:
        return esc(shown)
    return esc(shown) + ' <span class="redacted">[… redacted]</span>'


def truncate(text: str, n: int = 300) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Section:
    title: str
    body: str  # already-safe HTML built with esc()/table()/figure()
    anchor: str = ""
    base: str = ""  # directory the body's relative links start from ("" = the page's own)


def relocate(section: Section, page_dir: str | Path) -> Section:
    """The section with its relative links rewritten for a page in ``page_dir`` (and no
    ``base`` left: nothing machine-specific is kept when the section is stored)."""
    if not section.base:
        return section
    return replace(section, body=rebase_links(section.body, section.base, page_dir), base="")


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
    """A cell: numbers without exponents for everyday sizes, dicts/lists as readable text."""
    if isinstance(v, (int, float, dict, list, tuple, set)):  # bools too: yes / no
        return esc(readable(v))
    return esc(v)


def figure(path: str | Path, run_dir: str | Path, caption: str = "") -> str:
    """A <figure> for a plot, linked relative to ``run_dir`` (the section's ``base``): the SVG
    written beside the PNG when there is one (crisp), with a link to the PNG."""
    png = Path(path)
    svg = png.with_suffix(".svg")
    src = relative_link(svg if svg.exists() else png, run_dir)
    png_link = (f' <a href="{esc(relative_link(png, run_dir))}">PNG</a>'
                if svg.exists() and png.exists() else "")
    cap = f"<figcaption>{esc(caption)}{png_link}</figcaption>" if caption or png_link else ""
    return f'<figure><img src="{esc(src)}" alt="{esc(caption)}">{cap}</figure>'


CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3} img{max-width:100%} figure{margin:1em 0}
.redacted{color:#a00;font-style:italic} .note{background:#fff8e1;padding:0.6em;border-left:4px solid #f0c000}
nav a{margin-right:1em}
"""


def write_report(run_dir: str | Path, title: str, sections: Sequence[Section],
                 filename: str = "index.html", refresh_s: int | None = None) -> Path:
    """Write ``run_dir/filename``: a nav bar and one <section> per :class:`Section`, every
    section's relative links rewritten relative to ``run_dir``. ``refresh_s``: the page reloads
    itself every that many seconds (a live view while a job is still writing it)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    sections = [relocate(s, run_dir) for s in sections]
    nav = "".join(
        f'<a href="#{esc(s.anchor or f"s{i}")}">{esc(s.title)}</a>' for i, s in enumerate(sections)
    )
    parts = [
        f'<section id="{esc(s.anchor or f"s{i}")}"><h2>{esc(s.title)}</h2>{s.body}</section>'
        for i, s in enumerate(sections)
    ]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        + (f"<meta http-equiv='refresh' content='{int(refresh_s)}'>" if refresh_s else "")
        + f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><nav>{nav}</nav>"
        + "".join(parts)
        + "</body></html>"
    )
    out = run_dir / filename
    out.write_text(page, encoding="utf-8")
    return out
