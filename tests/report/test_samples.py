"""Per-sample browsing: samples.parquet and samples.html written by every eval."""

import re

import pandas as pd

from brittle.evaluate import run as R
from brittle.evaluate.samples import sample_rows, samples_body, verdict_label
from brittle.evaluate.section import compare_section, eval_section
from brittle.report.html import write_report
from tests.evaluate.eval_fakes import FakeBackend, bot, fake_load_suite

EVIL = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


def _eval(tmp_path, monkeypatch, reply=None, redact=True):
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    cfg = R.EvalConfig(run_dir=tmp_path / "eval", model="fake", suites=["harmful-eval", "over-refusal", "utility"],
                       redact=redact)
    R.run_eval(cfg, backend=FakeBackend(reply or (lambda p: EVIL + " " + bot(p))))
    return cfg.run_dir


def test_every_eval_writes_samples_parquet_with_all_verdicts(tmp_path, monkeypatch):
    run_dir = _eval(tmp_path, monkeypatch)
    df = pd.read_parquet(run_dir / "samples.parquet")
    assert len(df) == 14  # 10 harmful + 4 over-refusal replies; utility has no generations
    assert {"prompt", "suite", "category", "reply", "verdict_refusal", "verdict_refusal_json"} <= set(df.columns)
    assert set(df["suite"]) == {"harmful-eval", "over-refusal"}
    assert set(df["verdict_refusal"]) <= {"refused", "complied", "empty"}
    assert df["reply"].str.startswith("<img").all()  # full text in the file, escaped only in pages


def test_samples_page_escapes_redacts_and_has_filters(tmp_path, monkeypatch):
    run_dir = _eval(tmp_path, monkeypatch)
    page = (run_dir / "samples.html").read_text()
    assert page.count("<script>") == 1  # the filter script only; model text is escaped
    assert "&lt;script&gt;" in page and "<img src=x" not in page
    assert str(tmp_path) not in page
    assert 'data-filter="suite"' in page and 'data-filter="category"' in page and 'data-filter="v-refusal"' in page
    assert len(re.findall(r"<tr data-suite=", page)) == 14
    assert "redacted" in page  # long harmful replies cut
    assert 'data-suite="over-refusal"' in page


def test_eval_and_compare_sections_link_the_samples_page_relative_to_their_page(tmp_path, monkeypatch):
    run_dir = _eval(tmp_path, monkeypatch)
    sec = eval_section(run_dir)
    assert 'href="samples.html"' in write_report(run_dir, "t", [sec]).read_text()
    lab = tmp_path / "lab"
    page = write_report(lab, "lab", [compare_section({"x": run_dir}, report_dir=lab)]).read_text()
    assert 'href="../eval/samples.html"' in page


def test_verdict_labels():
    assert verdict_label("refusal", {"refused": True, "empty": False}) == "refused"
    assert verdict_label("refusal", {"refused": False}) == "complied"
    assert verdict_label("refusal", {"refused": True, "empty": True}) == "empty"
    assert verdict_label("rubric", {"score": 5}) == "score 5" and verdict_label("rubric", {"score": None}) == "unscored"
    assert verdict_label("classifier", {"unsafe": True}) == "unsafe" and verdict_label("x", None) == "unscored"


def test_samples_body_without_replies():
    assert "no generated replies" in samples_body(sample_rows([{"key": "u/1", "suite": "utility"}]))
