"""Bar charts of per-category rates with CI error bars (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path


def category_bars(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    *,
    title: str = "",
    ylabel: str = "refusal rate",
) -> Path:
    """Grouped horizontal bars: ``series[label][category] = (point, lo, hi)``; one colour per
    label (e.g. unaligned vs aligned), error bars = the CI. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(series)
    cats = sorted({c for s in series.values() for c in s})
    n = max(len(labels), 1)
    height = 0.8 / n
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.45 * len(cats) * max(1, n / 1.5) + 1)))
    for k, label in enumerate(labels):
        ys, xs, lo_err, hi_err = [], [], [], []
        for i, c in enumerate(cats):
            iv = series[label].get(c)
            if iv is None or any(math.isnan(v) for v in iv):
                continue
            p, lo, hi = iv
            ys.append(i + (k - (n - 1) / 2) * height)
            xs.append(p)
            lo_err.append(max(0.0, p - lo))
            hi_err.append(max(0.0, hi - p))
        ax.barh(ys, xs, height=height, xerr=[lo_err, hi_err], capsize=2, label=label)
    ax.set_yticks(range(len(cats)))
    ax.set_yticklabels([c if len(c) <= 40 else c[:39] + "…" for c in cats], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(ylabel + " (95% bootstrap CI)")
    if title:
        ax.set_title(title)
    if len(labels) > 1:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
