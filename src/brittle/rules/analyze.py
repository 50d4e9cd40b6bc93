"""`brittle rules analyze`: ambiguity metrics + plots from ``judgments.parquet``.

Writes ``analysis.json`` (see :func:`brittle.rules.metrics.summary`) and three PNGs:
``rule_entropy.png`` (per-rule mean panel entropy under "none"), ``flip_heatmap.png``
(flip rate, strategy × judge) and ``leaning.png`` (agreement of the default verdict with
narrow vs broad strategies, per judge).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pydantic import Field

from brittle.config import StageConfig
from brittle.errors import BrittleError
from brittle.rules.judge import RUN_DIR_HELP

log = logging.getLogger(__name__)


class RulesAnalyzeConfig(StageConfig):
    run_dir: Path = Field(Path("runs/rules"), description=RUN_DIR_HELP)
    judgments: Path | None = Field(None, description="judgments.parquet (default: run_dir/judgments.parquet).")
    strategies_file: Path | None = Field(None, description="Strategies YAML for the leaning tags (default: shipped).")
    mode: str = Field("votes", description="Panel entropy variant: 'votes' or 'mean_p'.")
    top_rules: int = Field(20, description="Rules shown in the entropy bar chart.")


def run_analyze(cfg: RulesAnalyzeConfig) -> dict[str, Any]:
    import pandas as pd

    from brittle.rules.data import load_strategies
    from brittle.rules.metrics import (
        constraint_effect,
        default_leaning,
        flip_rates,
        rule_entropy,
        summary,
    )
    from brittle.store import write_json

    path = cfg.judgments or cfg.run_dir / "judgments.parquet"
    if not Path(path).exists():
        raise BrittleError(f"{path}: not found; run `brittle rules judge` first")
    df = pd.read_parquet(path)
    if df.empty:
        raise BrittleError(f"{path}: no judgments")
    leanings = {s.id: s.leaning for s in load_strategies(cfg.strategies_file)}
    result = summary(df, leanings, mode=cfg.mode)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    figs = {
        "rule_entropy": _plot_rule_entropy(rule_entropy(df, mode=cfg.mode).head(cfg.top_rules), cfg.run_dir / "rule_entropy.png"),
        "flip_heatmap": _plot_flips(flip_rates(df), cfg.run_dir / "flip_heatmap.png"),
        "leaning": _plot_leaning(default_leaning(df, leanings, by="judge"), cfg.run_dir / "leaning.png"),
        "constraint": _plot_constraint(constraint_effect(df, mode=cfg.mode), cfg.run_dir / "constraint_effect.png"),
    }
    result["figures"] = {k: v.name for k, v in figs.items() if v is not None}
    write_json(cfg.run_dir / "analysis.json", result)
    return result


def _plt():
    from brittle.report.plots import pyplot

    return pyplot()


def save_figure(fig, out: Path, dpi: int) -> Path:
    from brittle.report.plots import save_figure as save

    return save(fig, out, dpi=dpi)


def _plot_rule_entropy(t, out: Path) -> Path | None:
    if t.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(t) + 1.2))
    ax.barh(t["rule_id"][::-1], t["entropy"][::-1], color="#4c72b0")
    ax.set_xlabel("mean panel entropy (bits), no strategy")
    ax.set_xlim(0, 1)
    ax.set_title("Most ambiguous rules")
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


def _plot_flips(fr, out: Path) -> Path | None:
    if fr.empty:
        return None
    plt = _plt()
    m = fr.T  # strategy × judge
    fig, ax = plt.subplots(figsize=(1.6 * m.shape[1] + 3, 0.35 * m.shape[0] + 1.5))
    im = ax.imshow(m.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_yticks(range(m.shape[0]), m.index)
    ax.set_xticks(range(m.shape[1]), [_short(j) for j in m.columns], rotation=30, ha="right")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m.iat[i, j]
            if not math.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k", fontsize=8)
    fig.colorbar(im, ax=ax, label="flip rate vs no strategy")
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


def _plot_leaning(t, out: Path) -> Path | None:
    if t.empty:
        return None
    plt = _plt()
    import numpy as np

    x = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(1.5 * len(t) + 3, 3.2))
    ax.bar(x - 0.2, t["agree_narrow"], 0.4, label="agrees with narrow")
    ax.bar(x + 0.2, t["agree_broad"], 0.4, label="agrees with broad")
    ax.set_xticks(x, [_short(j) for j in t["judge"]], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of verdicts equal to 'none'")
    ax.legend()
    ax.set_title("Default leaning")
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


def _plot_constraint(t, out: Path) -> Path | None:
    if t.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(t) + 1.2))
    ax.barh(t["strategy"], t["entropy"], color=["#c44e52" if s == "none" else "#55a868" for s in t["strategy"]])
    ax.set_xlabel("mean panel entropy (bits)")
    ax.set_title("Entropy with each interpretive strategy")
    fig.tight_layout()
    return save_figure(fig, out, dpi=110)


def _short(name: str, n: int = 28) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"
