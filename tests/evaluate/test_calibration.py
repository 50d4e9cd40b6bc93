import math

import numpy as np
import pytest

from brittle.evaluate.calibration import (
    Confusion,
    boundary_notes,
    corrected_rate,
    degenerate_reason,
    judge_accuracy,
    rogan_gladen,
)


def test_rogan_gladen_formula_and_clipping():
    assert rogan_gladen(0.5, 0.9, 0.8) == pytest.approx((0.5 + 0.8 - 1) / (0.9 + 0.8 - 1))
    assert rogan_gladen(0.37, 1.0, 1.0) == pytest.approx(0.37)  # a perfect judge changes nothing
    assert rogan_gladen(0.05, 0.9, 0.8) == 0.0  # below the false-positive floor → clipped
    assert rogan_gladen(0.99, 0.6, 0.99) == 1.0
    assert rogan_gladen(0.5, 0.5, 0.5) is None and rogan_gladen(0.5, 0.3, 0.6) is None


def test_confusion_and_accuracy_counts():
    judge = [1, 1, 1, 0, 0, 1, 0, 0]
    human = [1, 0, 1, 1, 0, 0, 0, 0]
    c = Confusion.from_pairs(judge, human)
    assert (c.tp, c.fn, c.fp, c.tn, c.m) == (2, 1, 2, 3, 8)
    a = judge_accuracy(c)
    assert a["precision"][0] == pytest.approx(2 / 4) and a["recall"][0] == pytest.approx(2 / 3)
    assert a["specificity"][0] == pytest.approx(3 / 5) and a["accuracy"][0] == pytest.approx(5 / 8)
    assert a["precision"][1] < 0.5 < a["precision"][2]  # Wilson interval around the point
    with pytest.raises(ValueError):
        Confusion.from_pairs([1, 0], [1])


def test_degenerate_samples_give_no_estimate_with_reason():
    assert "sensitivity" in degenerate_reason(Confusion(0, 0, 3, 7))
    assert "specificity" in degenerate_reason(Confusion(3, 2, 0, 0))
    chance = Confusion(tp=5, fn=5, fp=5, tn=5)  # Se = Sp = 0.5
    r = corrected_rate(30, 100, chance)
    assert r["corrected"] is None and "no better than chance" in r["reason"]
    assert r["raw"][0] == pytest.approx(0.3)
    assert degenerate_reason(Confusion(8, 2, 3, 7)) is None


def test_corrected_point_and_interval():
    c = Confusion(tp=18, fn=2, fp=12, tn=28)  # Se 0.9, Sp 0.7
    r = corrected_rate(60, 100, c, n_boot=2000, seed=3)
    p, lo, hi = r["corrected"]
    assert p == pytest.approx((0.6 + 0.7 - 1) / (0.9 + 0.7 - 1))
    assert 0 <= lo < p < hi <= 1
    assert r["n_boot_valid"] == 2000
    assert corrected_rate(60, 100, c, seed=3)["corrected"] == r["corrected"]  # seeded


def _simulate(truth: float, se: float, sp: float, n: int, m: int, reps: int, seed: int,
              *, from_run: bool = False):
    """Each rep: n prompts with true labels ~ Bernoulli(truth) and judge verdicts with the given
    Se/Sp; m replies labelled by a person (= the truth), drawn from the same population (as when
    one cell's rate is corrected with labels pooled over a whole lab) or, ``from_run``, as a
    subset of the n. Returns the share of reps whose corrected 95% interval covers ``truth``
    (no estimate counts as a miss) and the same for the raw judge rate's Wilson interval."""
    rng = np.random.default_rng(seed)

    def draw(size):
        human = rng.random(size) < truth
        return np.where(human, rng.random(size) < se, rng.random(size) >= sp), human

    covered = raw_covered = 0
    for rep in range(reps):
        judge, human = draw(n)
        if from_run:
            lab = rng.choice(n, size=m, replace=False)
            c = Confusion.from_pairs(judge[lab], human[lab])
        else:
            c = Confusion.from_pairs(*draw(m))
        r = corrected_rate(int(judge.sum()), n, c, n_boot=1000, seed=rep)
        covered += r["corrected"] is not None and r["corrected"][1] <= truth <= r["corrected"][2]
        raw_covered += r["raw"][1] <= truth <= r["raw"][2]
    return covered / reps, raw_covered / reps


@pytest.mark.parametrize("truth,se,sp,n,m", [(0.25, 0.9, 0.75, 200, 60), (0.2, 0.85, 0.7, 300, 100)])
def test_interval_covers_true_rate_about_95_percent(truth, se, sp, n, m):
    cover, raw_cover = _simulate(truth, se, sp, n, m, reps=200, seed=11)
    assert 0.88 <= cover <= 0.99, cover
    # the uncorrected judge rate is biased here: its interval must miss the truth far more often
    assert raw_cover < 0.5, raw_cover


def test_labels_from_the_rated_prompts_are_conservative_not_anticonservative():
    # labels drawn from the very prompts being rated: judge errors in the sample move p̂ and Sp
    # in opposite directions, so the independent bootstrap over-covers (documented)
    cover, _ = _simulate(0.25, 0.9, 0.75, 200, 60, reps=200, seed=11, from_run=True)
    assert cover >= 0.93, cover


def test_empty_run_is_reported_not_estimated():
    r = corrected_rate(0, 0, Confusion(5, 1, 2, 9))
    assert r["corrected"] is None and r["reason"] == "no judged replies"
    assert all(math.isnan(v) for v in r["raw"])


def test_boundary_notes_flag_misfit_and_no_spread():
    c = Confusion(tp=8, fn=2, fp=6, tn=14)  # Se 0.8, Sp 0.7: raw rates in [0.3, 0.8] fit
    assert boundary_notes(50, 100, c) == []
    assert boundary_notes(20, 100, c) == ["clipped"]
    assert boundary_notes(100, 100, c) == ["clipped", "raw at 0/100%"]
    assert boundary_notes(50, 100, Confusion(8, 0, 6, 14)) == ["empty confusion cell"]
    r = corrected_rate(100, 100, c, n_boot=200)
    assert r["corrected"][0] == 1.0 and "clipped" in r["notes"]
