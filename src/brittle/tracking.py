"""Experiment tracking: ``--report-to none|tensorboard|mlflow|wandb``.

Training goes through the Trainer's own integrations (:func:`trainer_report_to` gives the
``TrainingArguments.report_to`` value); eval and attack metrics are logged the same way by
:func:`log_metrics`. Offline-safe: nothing is contacted unless the user asked for it —

* ``tensorboard``: event files under ``<run_dir>/tensorboard`` (training curves and metrics;
  needs the ``tensorboard`` package);
* ``mlflow``: a local file store ``<run_dir>/mlruns`` unless ``$MLFLOW_TRACKING_URI`` names a server;
* ``wandb``: ``WANDB_MODE`` defaults to ``offline`` (files under ``<run_dir>/wandb``); set
  ``WANDB_MODE=online`` yourself to upload. API keys come only from the environment.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from brittle.errors import BrittleError

ReportTo = Literal["none", "tensorboard", "mlflow", "wandb"]
TRACKERS: tuple[str, ...] = ("none", "tensorboard", "mlflow", "wandb")
_PACKAGE = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
REPORT_TO_HELP = ("Experiment tracker: none, tensorboard (event files in the run dir), mlflow "
                  "(local ./mlruns store unless $MLFLOW_TRACKING_URI) or wandb (offline unless "
                  "$WANDB_MODE=online).")


def check_tracker(report_to: str) -> str:
    """Validate the name and that its package is installed (one clear line otherwise)."""
    if report_to not in TRACKERS:
        raise BrittleError(f"unknown tracker {report_to!r}; choose from {', '.join(TRACKERS)}")
    if report_to != "none":
        import importlib.util

        if importlib.util.find_spec(_PACKAGE[report_to]) is None:
            raise BrittleError(f"--report-to {report_to} needs the {_PACKAGE[report_to]!r} package: "
                               f"pip install {_PACKAGE[report_to]}")
    return report_to


def trainer_report_to(report_to: str, run_dir: Path) -> str:
    """The ``TrainingArguments.report_to`` value, with the offline defaults set in the environment
    (the Trainer's integrations read them)."""
    check_tracker(report_to)
    _offline_defaults(report_to, run_dir)
    return report_to


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metric dicts → ``{"a/b/c": value}``. A ``[p, lo, hi]`` interval is logged as
    ``name`` (p), ``name_lo`` and ``name_hi``; non-numeric leaves and NaN are skipped."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, bool):
            out[name] = float(v)
        elif isinstance(v, (int, float)):
            if not math.isnan(float(v)):
                out[name] = float(v)
        elif isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v):
            for suffix, x in zip(("", "_lo", "_hi"), v, strict=True):
                if not math.isnan(float(x)):
                    out[name + suffix] = float(x)
        elif isinstance(v, Mapping):
            out.update(flatten_metrics(v, f"{name}/"))
    return out


def log_metrics(report_to: str, run_dir: Path, metrics: Mapping[str, Any], *, step: int = 0,
                run_name: str | None = None) -> None:
    """Log ``flatten_metrics(metrics)`` at ``step`` to the chosen tracker (no-op for ``none``)."""
    if check_tracker(report_to) == "none":
        return
    run_dir = Path(run_dir)
    flat = flatten_metrics(metrics)
    _offline_defaults(report_to, run_dir)
    if report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(run_dir / "tensorboard")) as w:
            for k, v in flat.items():
                w.add_scalar(k, v, global_step=step)
    elif report_to == "mlflow":
        import mlflow

        with mlflow.start_run(run_name=run_name or run_dir.name):
            mlflow.log_metrics({_mlflow_key(k): v for k, v in flat.items()}, step=step)
    elif report_to == "wandb":
        import wandb

        run = wandb.init(dir=str(run_dir), name=run_name or run_dir.name, reinit=True)
        run.log(flat, step=step)
        run.finish()


def _offline_defaults(report_to: str, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    if report_to == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):
        os.environ["MLFLOW_TRACKING_URI"] = (run_dir / "mlruns").resolve().as_uri()
    elif report_to == "wandb":
        os.environ.setdefault("WANDB_MODE", "offline")
    elif report_to == "tensorboard":  # the Trainer's callback reads it when training starts
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")


def _mlflow_key(k: str) -> str:
    """MLflow keys allow alphanumerics, ``_ - . / space``; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in k)
