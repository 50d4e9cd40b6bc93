"""The adapters in brittle.select.compute against the real brittle.features on the tiny model."""

import numpy as np
import pytest

from brittle.data.schema import Example
from brittle.select.compute import ScoreOptions, grad_sq_norms, method_scores


def _pool():
    return [Example.from_pair(f"question {i}", ("answer " * (1 + i % 4)) + str(i)) for i in range(6)]


def _anchors():
    h = [Example.from_pair(f"bad {i}", f"sure here is how {i}") for i in range(3)]
    return {"harmful": h,
            "safe1": [e.with_response("sorry no") for e in h],
            "safe2": [e.with_response("i cannot help because it is harmful") for e in h]}


@pytest.mark.parametrize("method", ["exact-anchor", "grad", "repr", "outlier"])
def test_method_scores_with_real_features(tiny_lm, tiny_tok, method):
    opts = ScoreOptions(batch_size=4, max_length=64, grad_dim=64)
    res = method_scores(method, tiny_lm, tiny_tok, _pool(), _anchors(), opts)
    assert res["score"].shape == (6,) and np.isfinite(res["score"]).all()
    if method == "exact-anchor":  # one combined direction == the per-set combination
        opts.exact_directions = "per-set"
        per = method_scores(method, tiny_lm, tiny_tok, _pool(), _anchors(), opts)
        np.testing.assert_allclose(per["score"], per["harmful"] - per["safe1"] - per["safe2"], rtol=1e-9)
        np.testing.assert_allclose(res["score"], per["score"], rtol=1e-4, atol=1e-6)
        assert np.all(np.abs(per["harmful"]) <= 1 + 1e-6)  # cosines
    if method == "grad":
        np.testing.assert_allclose(res["score"], res["harmful"] - res["safe1"] - res["safe2"], rtol=1e-9)
        assert np.all(np.abs(res["harmful"]) <= 1 + 1e-6)  # cosines


def test_outlier_norms_match_a_batch1_backward(tiny_lm, tiny_tok):
    import torch

    from brittle.features.hooks import encode_examples, per_example_loss

    pool = _pool()[:3]
    g2, n = grad_sq_norms(tiny_lm, tiny_tok, pool, ScoreOptions(batch_size=3, max_length=64))
    for i, ex in enumerate(pool):
        enc = encode_examples(tiny_tok, [ex], max_length=64)[0]
        ids, labels = torch.tensor([enc.input_ids]), torch.tensor([enc.labels])
        tiny_lm.zero_grad()
        per_example_loss(tiny_lm(input_ids=ids).logits, labels).sum().backward()
        ref = sum(float((p.grad ** 2).sum()) for p in tiny_lm.parameters() if p.grad is not None)
        assert g2[i] == pytest.approx(ref, rel=1e-3)
        assert n[i] == sum(lab != -100 for lab in enc.labels)
