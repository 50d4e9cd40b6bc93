"""Relative links in generated pages.

A section's HTML links its images and pages relative to the directory it was built for (its
*base*, e.g. a stage's run directory). A page that embeds the section elsewhere (the lab's
``index.html`` one level up) rewrites those links with :func:`rebase_links`, so every link
resolves relative to the page that contains it, and the run directory can be moved or zipped.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

# src="…" / href="…" as written by esc() (quotes inside values are always escaped)
_ATTR = re.compile(r"""(?P<pre>\s(?:src|href)=)(?P<q>["'])(?P<val>[^"'<>]*)(?P=q)""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def is_relative_link(value: str) -> bool:
    """True for a link that names a file relative to its page (not ``#x``, ``/x``, ``data:…``,
    ``https://…``, ``//host``, empty)."""
    v = value.strip()
    return bool(v) and not v.startswith(("#", "/", "?")) and not _SCHEME.match(v)


def relative_link(target: str | Path, page_dir: str | Path) -> str:
    """``target`` as a POSIX link relative to ``page_dir`` (``../x.png`` when outside it)."""
    return Path(os.path.relpath(os.path.abspath(target), os.path.abspath(page_dir))).as_posix()


def rebase_link(value: str, from_dir: str | Path, to_dir: str | Path) -> str:
    """One link written relative to ``from_dir``, rewritten relative to ``to_dir``
    (query and fragment kept; non-relative links unchanged)."""
    if not is_relative_link(value):
        return value
    cut = min((i for i in (value.find("?"), value.find("#")) if i >= 0), default=len(value))
    path, rest = value[:cut], value[cut:]
    if not path:
        return value
    return relative_link(Path(from_dir) / path, to_dir) + rest


def rebase_links(body: str, from_dir: str | Path, to_dir: str | Path) -> str:
    """Every relative ``src``/``href`` in ``body`` (HTML built relative to ``from_dir``)
    rewritten relative to ``to_dir``. Attribute values stay escaped."""
    if os.path.abspath(from_dir) == os.path.abspath(to_dir):
        return body

    def sub(m: re.Match[str]) -> str:
        new = rebase_link(html.unescape(m["val"]), from_dir, to_dir)
        return f"{m['pre']}{m['q']}{html.escape(new, quote=True)}{m['q']}"

    return _ATTR.sub(sub, body)
