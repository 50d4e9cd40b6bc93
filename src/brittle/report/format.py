"""Numbers, collections and paths as a reader wants them in a shared page.

Pure functions returning plain text (escape it with :func:`brittle.report.html.esc`):
``42 min 40 s`` rather than ``2.56e+03``, ``train 577, eval 561`` rather than a dict
literal, and paths relative to the run directory (or ``~/…``) rather than the absolute
paths of the machine that wrote the page.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def duration(seconds: float | None) -> str:
    """Seconds as ``42 min 40 s`` / ``1 h 05 min`` / ``3.2 s`` (``–`` when unknown)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = float(seconds)
    if s < 0:
        return "-" + duration(-s)
    if s < 10:
        return f"{s:.1f} s"
    total = round(s)
    h, rem = divmod(total, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h} h {m:02d} min"
    if m:
        return f"{m} min {sec} s" if sec else f"{m} min"
    return f"{sec} s"


def number(v: Any) -> str:
    """An int (thousands separators from 10,000), a float with 3 significant digits (no exponent
    between 1e-3 and 1e6), anything else as ``str``."""
    if isinstance(v, bool) or v is None:
        return "–" if v is None else ("yes" if v else "no")
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and not 1e-3 <= abs(v) < 1e6:
            return f"{v:.2e}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}"
    return str(v)


def readable(v: Any) -> str:
    """Any value as text a person reads: mappings as ``key value, …``, sequences as
    comma lists, numbers via :func:`number`; never a Python literal."""
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {readable(x)}" for k, x in v.items()) or "–"
    if isinstance(v, (list, tuple, set, frozenset)):
        items = sorted(v, key=str) if isinstance(v, (set, frozenset)) else v
        return ", ".join(readable(x) for x in items) or "–"
    return number(v)


def display_path(path: str | Path | None, run_dir: str | Path | None = None) -> str:
    """A path for a page meant to be shared: relative to ``run_dir`` when inside it, else
    ``~/…`` when under the home directory, else the last two parts (``…/dir/file``).
    Relative paths are returned as given. ``–`` for None/empty."""
    if path is None or str(path) == "":
        return "–"
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute():
        return p.as_posix()
    p = Path(os.path.normpath(p))
    if run_dir is not None:
        root = Path(os.path.abspath(run_dir))
        if p == root or root in p.parents:
            return p.relative_to(root).as_posix() or "."
    home = Path(os.path.abspath(Path.home()))
    if home != Path("/") and home in p.parents:
        return "~/" + p.relative_to(home).as_posix()
    tail = p.parts[-2:] if len(p.parts) > 2 else p.parts[1:]
    return "…/" + "/".join(tail)


def looks_like_path(v: Any) -> bool:
    """True for a Path or an absolute / home-relative path string."""
    return isinstance(v, Path) or (isinstance(v, str) and (v.startswith(("/", "~/")) and "\n" not in v))


def scrub_paths(text: str, run_dir: str | Path | None = None) -> str:
    """Free text (an error message) with the run directory's absolute path shown as
    ``<run dir>`` and the home directory as ``~``."""
    out = str(text)
    if run_dir is not None:
        root = os.path.abspath(run_dir)
        out = out.replace(root + os.sep, "").replace(root, "<run dir>")
    home = os.path.abspath(Path.home())
    if home != os.sep:
        out = out.replace(home, "~")
    return out
