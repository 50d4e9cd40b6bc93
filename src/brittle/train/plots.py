"""Plots for the training stage (matplotlib, Agg backend, imported lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brittle.report.plots import ci_legend_handle, save_figure
from brittle.report.plots import pyplot as _plt


def plot_loss(log_path: Path, png: Path, title: str = "") -> Path:
    """Training loss per logged step from ``train_log.jsonl``."""
    recs = [json.loads(x) for x in Path(log_path).read_text().splitlines() if x.strip()]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["step"] for r in recs], [r["loss"] for r in recs], marker=".", lw=1)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss (response tokens)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, png, dpi=110)


def plot_asr_vs_n(summary: Any, png: Path, title: str = "") -> Path:
    """ASR against N (symlog x so N=0 is shown; linear below 1) with 95% CI error bars,
    one line per attack kind. ``summary``: DataFrame with kind, n, asr, asr_lo, asr_hi."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for kind, g in summary.groupby("kind", sort=True):
        g = g.sort_values("n")
        y = g["asr"].to_numpy(dtype=float)
        err = [y - g["asr_lo"].to_numpy(dtype=float), g["asr_hi"].to_numpy(dtype=float) - y]
        ax.errorbar(g["n"], y, yerr=err, marker="o", capsize=3, label=str(kind))
    ax.set_xscale("symlog", linthresh=1)
    ns = sorted({int(x) for x in summary["n"]})
    ax.set_xticks(ns)
    ax.set_xticklabels([str(x) for x in ns])
    ax.minorticks_off()
    ax.set_xlabel("N fine-tuning examples (symlog: 0, then log)")
    ax.set_ylabel("ASR (share of held-out prompts)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*handles, ci_legend_handle()], fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, png, dpi=110)
