"""Readable numbers, collections and paths for shared pages."""

from pathlib import Path

import pytest

from brittle.report.format import display_path, duration, looks_like_path, number, readable


@pytest.mark.parametrize(("s", "text"), [
    (2560, "42 min 40 s"), (2200.4, "36 min 40 s"), (3.24, "3.2 s"), (59.6, "1 min"), (45, "45 s"),
    (3600 * 2 + 65, "2 h 01 min"), (None, "–"), (float("nan"), "–"), (120, "2 min"),
])
def test_duration(s, text):
    assert duration(s) == text


def test_numbers_have_no_exponent_for_everyday_sizes():
    assert number(2560.0) == "2,560" and number(0.1234) == "0.123" and number(12345) == "12,345"
    assert number(577) == "577" and "e" not in number(123456.0) and number(True) == "yes"


def test_readable_never_prints_python_literals():
    assert readable({"train": 577, "eval": 561}) == "train 577, eval 561"
    assert readable(["garak==0.17.1:a.txt", "b"]) == "garak==0.17.1:a.txt, b"
    assert readable({}) == "–" and readable({"a": {"b": 1}}) == "a b 1"
    for text in (readable({"x": [1, 2]}), readable([{"k": 1.5}])):
        assert not any(c in text for c in "{}[]'")


def test_display_path_never_shows_the_machine_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = tmp_path / "runs" / "lab"
    assert display_path(run / "attack" / "a10", run) == "attack/a10"
    assert display_path(tmp_path / "home" / ".cache" / "brittle" / "adapters" / "x", run) == "~/.cache/brittle/adapters/x"
    assert display_path("/opt/site-packages/pkg/model.gguf", run) == "…/pkg/model.gguf"
    assert display_path("relative/x.jsonl") == "relative/x.jsonl" and display_path(None) == "–"
    assert looks_like_path("/a/b") and looks_like_path(Path("x")) and not looks_like_path("tiny:llama")


def test_scrub_paths_in_error_text(tmp_path, monkeypatch):
    from brittle.report.format import scrub_paths

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = tmp_path / "runs" / "lab"
    msg = f"MissingResource: {tmp_path}/home/.cache/brittle/data/x.json missing; see {run}/attack/log and {run}"
    out = scrub_paths(msg, run)
    assert str(tmp_path) not in out
    assert "~/.cache/brittle/data/x.json" in out and "see attack/log" in out and "<run dir>" in out


def test_lab_summary_and_overview_are_readable(tmp_path, monkeypatch):
    """The lab page: durations in words, splits as text, no dict literal, no absolute path."""
    from brittle import lab
    from brittle.models import load
    from brittle.report.html import Section

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    gguf = tmp_path / "home" / ".cache" / "brittle" / "models" / "smol.gguf"
    monkeypatch.setattr(load, "model_info", lambda spec: {"spec": spec, "parameters": 134515008, "gguf": str(gguf)})
    monkeypatch.setitem(lab.STAGE_FUNCS, "rules", lambda cfg, ctx: Section("r", "<p>ok</p>", "rules"))
    run = tmp_path / "lab"
    lab.run_lab(lab.LabConfig(run_dir=run, model="tiny:llama", stages=["overview", "rules"]))
    status = {"overview": {"ok": True, "seconds": 2560.0}, "rules": {"ok": False, "seconds": 1.0,
              "error": f"OSError: {run}/rules/x missing"}}
    page = lab._write_report(run, "t", status).read_text()
    assert "42 min 40 s" in page and "2.56e+03" not in page
    assert "{'" not in page and "['" not in page and str(tmp_path) not in page
    assert "rules/x missing" in page
    assert "train " in page  # split sizes as "train 577, eval 561"
    assert "~/.cache/brittle/models/smol.gguf" in page and "134,515,008" in page
