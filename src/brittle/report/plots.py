"""The one way every plot is saved: a PNG and, beside it, an SVG (crisp at any zoom, small).

matplotlib is imported lazily (Agg backend) so importing brittle stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CI_LABEL = "95% CI"  # legend / axis note for every interval drawn


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, png: str | Path, *, dpi: int = 110, close: bool = True) -> Path:
    """Write ``fig`` to ``png`` and to the same name with ``.svg``; returns the PNG path.

    SVG text is kept as text (not paths) so it stays small and searchable; metadata dates are
    dropped so reruns write identical files."""
    png = Path(png).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "brittle"}):
        fig.savefig(png.with_suffix(".svg"), metadata={"Date": None, "Creator": None})
    if close:
        pyplot().close(fig)
    log.debug("plot written: %s (+ .svg)", png)
    return png


def ci_legend_handle(**style: Any) -> Any:
    """A legend entry for error bars: a short line labelled :data:`CI_LABEL`."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color=style.pop("color", "black"), marker="|", linestyle="-",
                  markersize=8, label=CI_LABEL, **style)
