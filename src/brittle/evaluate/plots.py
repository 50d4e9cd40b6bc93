"""Bar charts of per-category rates with CI error bars (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from brittle.report.plots import CI_LABEL, ci_legend_handle, pyplot, save_figure

Interval = Sequence[float]  # (point, lo, hi)


def _finite(iv: Interval | None) -> bool:
    return iv is not None and len(iv) == 3 and not any(v is None or math.isnan(v) for v in iv)


def categories_with_data(series: Mapping[str, Mapping[str, Interval]]) -> list[str]:
    """Sorted categories that have a finite interval in at least one series (a category with
    no prompts in the sample gets no empty row)."""
    return sorted({c for s in series.values() for c, iv in s.items() if _finite(iv)})


def category_bars(
    series: Mapping[str, Mapping[str, Interval]],
    path: str | Path,
    *,
    title: str = "",
    ylabel: str = "refusal rate",
) -> Path:
    """Grouped horizontal bars: ``series[label][category] = (point, lo, hi)``; one colour per
    label (e.g. unaligned vs aligned), error bars = the 95% CI (clipped to [0, 1]). Only
    categories with data get a row. Writes the PNG and an SVG beside it; returns the PNG."""
    plt = pyplot()
    from matplotlib.ticker import PercentFormatter

    labels = list(series)
    cats = categories_with_data(series)
    n = max(len(labels), 1)
    height = 0.8 / n
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.45 * len(cats) * max(1, n / 1.5) + 1.2)))
    for k, label in enumerate(labels):
        ys, xs, lo_err, hi_err = [], [], [], []
        for i, c in enumerate(cats):
            iv = series[label].get(c)
            if not _finite(iv):
                continue
            p, lo, hi = (min(1.0, max(0.0, float(v))) for v in iv)
            ys.append(i + (k - (n - 1) / 2) * height)
            xs.append(p)
            lo_err.append(max(0.0, p - lo))
            hi_err.append(max(0.0, hi - p))
        ax.barh(ys, xs, height=height, xerr=[lo_err, hi_err], capsize=2, label=label,
                error_kw={"elinewidth": 1, "ecolor": "black"})
    ax.set_yticks(range(len(cats)))
    ax.set_yticklabels([c if len(c) <= 40 else c[:39] + "…" for c in cats], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(f"{ylabel} (% of the category's prompts; error bars: {CI_LABEL}, bootstrap)")
    if title:
        ax.set_title(title)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*(handles if len(labels) > 1 else []), ci_legend_handle()],
              fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
