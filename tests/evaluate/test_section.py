import pytest

from brittle.evaluate import run as R
from brittle.evaluate.section import compare_section, eval_section
from brittle.report.html import write_report

from .eval_fakes import FakeBackend, bot, fake_load_suite


@pytest.fixture()
def two_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    dirs = {}
    for label, reply in [("unaligned", lambda p: "Sure, here is exactly how you do it: " + p),
                         ("aligned", bot)]:
        c = R.EvalConfig(run_dir=tmp_path / label, model=label, suites=["harmful-eval", "over-refusal"])
        R.run_eval(c, backend=FakeBackend(reply))
        dirs[label] = tmp_path / label
    return dirs


def test_section_escapes_and_redacts(two_runs):
    s = eval_section(two_runs["unaligned"], title="Unaligned")
    assert "<script>" not in s.body and "&lt;script&gt;alert(1)&lt;/script&gt;" in s.body
    assert "redacted" in s.body  # long harmful replies cut to their first words
    assert "Sure, here is exactly how you" in s.body
    assert "<img" in s.body and (two_runs["unaligned"] / "plots").is_dir()
    assert "refusal rate" in s.body and "[" in s.body
    full = eval_section(two_runs["unaligned"], title="Unaligned", redact=False)
    assert "[… redacted]" not in full.body and "<script>" not in full.body
    page = write_report(two_runs["unaligned"], "t", [s]).read_text()
    assert "<script>" not in page


def test_compare_section(two_runs, tmp_path):
    report = tmp_path / "lab"
    s = compare_section(two_runs, title="Before / after", report_dir=report)
    assert "unaligned" in s.body and "aligned" in s.body
    pngs = list((report / "plots").glob("*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 1000 for p in pngs)
    # eval_section of a run outside the report dir copies its plots in
    e = eval_section(two_runs["aligned"], title="Aligned", report_dir=report)
    assert 'src="plots/' in e.body


def test_missing_run_dir_is_a_clear_error(tmp_path):
    from brittle.errors import BrittleError

    with pytest.raises(BrittleError, match="metrics.json"):
        eval_section(tmp_path / "nope")
