"""--report-to: metric flattening, clear errors, tensorboard event files written offline."""

from __future__ import annotations

import math

import pytest

from brittle.errors import BrittleError
from brittle.tracking import check_tracker, flatten_metrics, log_metrics


def test_flatten_intervals_and_nesting():
    flat = flatten_metrics({"suites": {"harmful": {"n": 3, "refusal_rate": [0.5, 0.2, 0.8],
                                                   "per_category": {"x": {"asr": [1.0, 0.4, 1.0]}}}},
                            "model": "tiny", "wall_s": math.nan, "ok": True})
    assert flat == {"suites/harmful/n": 3.0, "suites/harmful/refusal_rate": 0.5,
                    "suites/harmful/refusal_rate_lo": 0.2, "suites/harmful/refusal_rate_hi": 0.8,
                    "suites/harmful/per_category/x/asr": 1.0, "suites/harmful/per_category/x/asr_lo": 0.4,
                    "suites/harmful/per_category/x/asr_hi": 1.0, "ok": 1.0}


def test_unknown_or_missing_tracker_is_one_line(monkeypatch):
    with pytest.raises(BrittleError, match="unknown tracker 'tensorbored'"):
        check_tracker("tensorbored")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real(n, *a))
    with pytest.raises(BrittleError, match="pip install mlflow"):
        check_tracker("mlflow")
    assert check_tracker("none") == "none"


def test_tensorboard_event_file(tmp_path):
    pytest.importorskip("tensorboard")
    log_metrics("tensorboard", tmp_path, {"suites": {"harmful": {"refusal_rate": [0.25, 0.1, 0.5]}}}, step=3)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    scalars = acc.Scalars("suites/harmful/refusal_rate")
    assert [(s.step, s.value) for s in scalars] == [(3, 0.25)]


def test_none_writes_nothing(tmp_path):
    log_metrics("none", tmp_path / "r", {"a": 1})
    assert not (tmp_path / "r").exists()
