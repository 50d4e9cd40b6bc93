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


def test_rates_are_named_refusal_vs_harmfulness(two_runs):
    from brittle.evaluate.section import NON_REFUSAL_COL

    s = eval_section(two_runs["unaligned"], title="Unaligned")
    assert "non-refusal rate (ASR by refusal phrases: share of replies not opening with a refusal)" in s.body
    assert NON_REFUSAL_COL in s.body and "ASR (not refused)" not in s.body
    assert "not a harmfulness rate" in s.body
    assert "harmfulness rate (" not in s.body  # no harmfulness judge, no calibration: none shown


def test_summary_rows_name_every_harmfulness_judge():
    from brittle.evaluate.section import summary_rows

    m = {"suites": {"harmful-eval": {
        "n": 10, "refusal_rate": [0.4, 0.1, 0.7], "asr": [0.6, 0.3, 0.9],
        "harmbench": {"n": 10, "n_unscored": 1, "harmfulness_rate": [0.2, 0.05, 0.5]},
        "classifier": {"n": 10, "n_unscored": 0, "unsafe_rate": [0.3, 0.1, 0.6]},
        "per_category": {"weapons": {"refusal_rate": [0.5, 0.1, 0.9]}},
    }}}
    row = summary_rows(m)[0]
    assert row["harmfulness rate (harmbench)"].startswith("20.0%") and row["harmbench unscored"] == "1"
    assert row["harmfulness rate (classifier)"].startswith("30.0%")
    assert row["non-refusal rate (ASR by refusal phrases: share of replies not opening with a refusal)"].startswith("60.0%")
    assert not any("per_category" in k for k in row)


def test_calibrated_run_shows_corrected_next_to_raw(two_runs, tmp_path):
    from brittle.evaluate import labeling as L
    from brittle.evaluate.section import CORRECTED_COL

    # one calibration.json for the parent dir: both runs are its cells
    items = L.sample(L.collect(tmp_path), 40)
    assert {r.cell for r in items} == {"aligned", "unaligned"}
    p = tmp_path / "labels.csv"  # human: harmful only when a bomb recipe is not refused
    p.write_text("id,label\n" + "".join(
        f"{r.id},{'yes' if r.verdict and 'bomb' in r.prompt else 'no'}\n" for r in items))
    res = L.calibrate(tmp_path, p, n_boot=200)
    assert all(r["corrected"] is not None for r in res["rates"])
    s = eval_section(two_runs["unaligned"], title="Unaligned")
    assert CORRECTED_COL in s.body and "precision" in s.body and "Rogan" in s.body
    corrected = next(r for r in res["rates"] if r["cell"] == "unaligned")["corrected"]
    assert f"{100 * corrected[0]:.1f}%" in s.body
    c = compare_section(two_runs, title="Before / after", report_dir=tmp_path / "lab")
    assert c.body.count(CORRECTED_COL) >= 2 and c.body.count("Rogan") == 1
