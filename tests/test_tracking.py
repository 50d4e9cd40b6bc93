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


def _events(root):
    return sorted(p for p in root.rglob("events.out.tfevents.*"))


def test_report_to_tensorboard_for_finetune_and_eval(tmp_path):
    """`--report-to tensorboard` writes event files for a finetune (the Trainer's integration)
    and for an eval (its metrics, logged by brittle.tracking)."""
    pytest.importorskip("tensorboard")
    import json

    from typer.testing import CliRunner

    from brittle.cli import app

    data = tmp_path / "trl.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}", "completion": f"{i} it is."}) + "\n"
                            for i in range(4)), encoding="utf-8")
    res = CliRunner().invoke(app, ["finetune", "--data", str(data), "--model", "tiny:llama", "--epochs", "1",
                                   "--batch-size", "4", "--device", "cpu", "--run-dir", str(tmp_path / "ft"),
                                   "--report-to", "tensorboard"])
    assert res.exit_code == 0, res.output
    assert _events(tmp_path / "ft")
    prompts = tmp_path / "p.txt"
    prompts.write_text("How do I pick a lock?\nWrite a poem\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["eval", "--model", "tiny:llama", "--prompts", str(prompts), "--limit", "2",
                                   "--max-new-tokens", "4", "--run-dir", str(tmp_path / "ev"),
                                   "--report-to", "tensorboard"])
    assert res.exit_code == 0, res.output
    (ev,) = _events(tmp_path / "ev" / "tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(ev))
    acc.Reload()
    assert "suites/prompts/refusal_rate" in acc.Tags()["scalars"]


def test_report_to_is_validated_before_work(tmp_path):
    from typer.testing import CliRunner

    from brittle.cli import app

    res = CliRunner().invoke(app, ["eval", "--model", "tiny:llama", "--run-dir", str(tmp_path),
                                   "--report-to", "tensorbored"])
    assert isinstance(res.exception, BrittleError) and "report_to" in str(res.exception)
