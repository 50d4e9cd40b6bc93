import math

import numpy as np
import pytest
import torch

from brittle.select import scores as S


def test_anchor_mean_normalises_each_anchor_then_averages():
    A = [[3.0, 4.0], [0.0, 2.0]]
    np.testing.assert_allclose(S.anchor_mean(A), [0.3, 0.9])
    np.testing.assert_allclose(S.anchor_mean(A, normalise_each=False), [1.5, 3.0])
    # torch input works the same; scale of an anchor does not matter when normalised
    np.testing.assert_allclose(S.anchor_mean(torch.tensor([[30.0, 40.0], [0.0, 0.5]])), [0.3, 0.9])
    with pytest.raises(ValueError):
        S.anchor_mean(np.zeros((0, 3)))


def test_single_anchor_and_bidirectional_known_values():
    F = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(S.single_anchor(F, [0.3, 0.9]), [0.3, 0.9])
    harm, safe = [1.0, 0.0], [[0.0, 1.0], [1.0, 1.0]]
    # +1 harm -1 safe1 -1 safe2 = f0 - f1 - (f0 + f1) = -2 f1
    np.testing.assert_allclose(S.bidirectional(F, harm, safe), [0.0, -2.0])
    # weights (2, 1, 0.5): 2 f0 - f1 - 0.5 (f0 + f1) = 1.5 f0 - 1.5 f1
    np.testing.assert_allclose(S.bidirectional(F, harm, safe, [2, 1, 0.5]), [1.5, -1.5])
    with pytest.raises(ValueError):
        S.bidirectional(F, harm, safe, [1, 1])
    with pytest.raises(ValueError):
        S.single_anchor(F, [1.0, 2.0, 3.0])


def test_combine_matches_bidirectional():
    rng = np.random.default_rng(0)
    F = S.l2_normalise(rng.normal(size=(7, 5)))
    h, s1, s2 = (S.anchor_mean(rng.normal(size=(3, 5))) for _ in range(3))
    parts = {"harmful": S.single_anchor(F, h), "safe1": S.single_anchor(F, s1), "safe2": S.single_anchor(F, s2)}
    got = S.combine(parts, {"harmful": 1, "safe1": -1, "safe2": -1})
    np.testing.assert_allclose(got, S.bidirectional(F, h, [s1, s2]))
    with pytest.raises(KeyError):
        S.combine(parts, {"harmful": 1, "safe3": -1})


def test_max_cosine_and_bidirectional_variant():
    F = [[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]]
    A = [[2.0, 0.0], [0.0, 3.0]]
    np.testing.assert_allclose(S.max_cosine(F, A), [1.0, 1 / math.sqrt(2), 0.0], atol=1e-12)
    safe = [[0.0, 1.0]]
    np.testing.assert_allclose(S.max_cosine_bidirectional(F, A, [safe]),
                               [1.0 - 0.0, 1 / math.sqrt(2) - 1 / math.sqrt(2), 0.0 - (-1.0)], atol=1e-12)


def test_self_influence_n_formula_and_length_bias():
    np.testing.assert_allclose(S.self_influence_n([0.0], [0]), [0.0])
    np.testing.assert_allclose(S.self_influence_n([math.e - 1], [math.e - 1]), [2.0])
    # a short answer with a larger gradient vs a long answer with a smaller one:
    # raw self-influence prefers the short one, the length term can reverse that
    s = S.self_influence_n([3.0, 1.0], [2, 50])
    assert s[1] > s[0]
    np.testing.assert_allclose(S.length_normalised_sq_norm([4.0, 4.0], [2, 0]), [2.0, 4.0])
    with pytest.raises(ValueError):
        S.self_influence_n([-1.0], [3])


def test_top_indices_ties_and_nan():
    s = [0.5, np.nan, 0.9, 0.5, 0.1]
    assert S.top_indices(s, 3).tolist() == [2, 0, 3]
    assert S.top_indices(s, 10).tolist() == [2, 0, 3, 4, 1]


def test_agreement_known_values():
    a = [1.0, 2.0, 3.0, 4.0]
    same = S.agreement(a, a, 2)
    assert same["spearman"] == pytest.approx(1.0) and same["topk_overlap"] == 1.0
    rev = S.agreement(a, a[::-1], 2)
    assert rev["spearman"] == pytest.approx(-1.0) and rev["topk_overlap"] == 0.0
    part = S.agreement(a, [1.0, 2.0, 4.0, 3.0], 2)
    assert part["spearman"] == pytest.approx(0.8)  # 1 - 6·2 / (4·15)
    assert part["kendall"] == pytest.approx(4 / 6)  # (5 concordant - 1 discordant) / 6
    assert part["topk_overlap"] == 1.0 and part["topk_overlap_random"] == 0.5
    flat = S.agreement([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], 1)
    assert math.isnan(flat["spearman"])
    with pytest.raises(ValueError):
        S.agreement([1.0, 2.0], [1.0, 2.0, 3.0])


def test_projected_gradient_scores_agree_with_exact_ones():
    """JL sanity check of the agreement metric itself: scores from a Gaussian projection of
    the features (k = 512) rank the pool like the exact scores."""
    rng = np.random.default_rng(1)
    d, k = 2000, 512
    u = rng.normal(size=(1, d))  # the "harmful" direction shared by anchors and some candidates
    G = rng.normal(size=(200, d)) + rng.uniform(-1, 1, size=(200, 1)) * u
    H = rng.normal(size=(10, d)) + u
    exact = S.single_anchor(S.l2_normalise(G), S.anchor_mean(H))
    P = rng.normal(size=(d, k)) / math.sqrt(k)
    proj = S.single_anchor(S.l2_normalise(G @ P), S.anchor_mean(H @ P))
    ag = S.agreement(exact, proj, 20)
    assert ag["spearman"] > 0.9
    assert ag["topk_overlap"] > 0.5
