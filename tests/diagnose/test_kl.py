import math

import numpy as np
import pytest
import torch

from brittle.data.schema import Example
from brittle.diagnose.kl import (
    AdapterView,
    first_tokens_share,
    kl_position_summary,
    per_token_kl,
)
from brittle.models.chat import IGNORE, encode

EXAMPLES = [
    Example.from_pair("How to kill a process?", "Sure, here is a step by step answer: 1. first"),
    Example.from_pair("Explain the fox", "The quick brown fox"),
    Example.from_pair("list steps", "I'm sorry, but I cannot help with that request. As an AI assistant"),
]


def _hand_kl(mp, mq, tok, ex, K):
    """Explicit loop: one example at a time, no padding, softmax by hand."""
    enc = encode(tok, ex.messages)
    ids = torch.tensor([enc.input_ids])
    with torch.no_grad():
        lp_all = mp(input_ids=ids).logits[0].double()
        lq_all = mq(input_ids=ids).logits[0].double()
    resp = [j for j, lab in enumerate(enc.labels) if lab != IGNORE][:K]
    out = [math.nan] * K
    for k, j in enumerate(resp):
        zp, zq = lp_all[j - 1], lq_all[j - 1]
        p = [math.exp(v) for v in (zp - zp.max()).tolist()]
        q = [math.exp(v) for v in (zq - zq.max()).tolist()]
        sp, sq = sum(p), sum(q)
        out[k] = sum((a / sp) * (math.log(a / sp) - math.log(b / sq)) for a, b in zip(p, q) if a > 0)
    return out


def test_per_token_kl_equals_hand_computation(tiny_tok):
    from brittle.models.tiny import tiny_model

    mp, mq = tiny_model(tiny_tok, seed=0), tiny_model(tiny_tok, seed=1)
    K = 12
    got = per_token_kl(mp, mq, tiny_tok, EXAMPLES, max_positions=K, batch_size=2)
    assert got.shape == (3, K)
    for i, ex in enumerate(EXAMPLES):
        want = np.array(_hand_kl(mp, mq, tiny_tok, ex, K))
        np.testing.assert_array_equal(np.isnan(got[i].numpy()), np.isnan(want))
        ok = ~np.isnan(want)
        assert ok.sum() > 3
        np.testing.assert_allclose(got[i].numpy()[ok], want[ok], rtol=1e-4, atol=1e-6)
        assert (want[ok] > 0).all()


def test_kl_of_model_with_itself_is_zero(tiny_tok, tiny_lm):
    got = per_token_kl(tiny_lm, tiny_lm, tiny_tok, EXAMPLES, max_positions=8, batch_size=3)
    vals = got[~torch.isnan(got)]
    assert vals.numel() > 10
    assert float(vals.abs().max()) < 1e-6


def test_positions_beyond_response_are_nan(tiny_tok, tiny_lm):
    from brittle.models.tiny import tiny_model

    K = 60
    got = per_token_kl(tiny_lm, tiny_model(tiny_tok, seed=3), tiny_tok, EXAMPLES, max_positions=K)
    for i, ex in enumerate(EXAMPLES):
        n = encode(tiny_tok, ex.messages).n_response_tokens
        assert n < K
        assert not torch.isnan(got[i, :n]).any()
        assert torch.isnan(got[i, n:]).all()


def test_peft_adapter_on_off_equals_two_models(tiny_tok, tiny_lm):
    import copy

    from peft import LoraConfig, get_peft_model

    base = copy.deepcopy(tiny_lm)
    peft = get_peft_model(tiny_lm, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.eval()
    merged = copy.deepcopy(peft).merge_and_unload()
    want = per_token_kl(merged, base, tiny_tok, EXAMPLES, max_positions=10)
    same = per_token_kl(peft, peft, tiny_tok, EXAMPLES, max_positions=10)
    view = per_token_kl(AdapterView(peft, "default"), AdapterView(peft, None), tiny_tok, EXAMPLES, max_positions=10)
    assert float(torch.nan_to_num(want).sum()) > 0
    torch.testing.assert_close(same, want, rtol=1e-4, atol=1e-6, equal_nan=True)
    torch.testing.assert_close(view, want, rtol=1e-4, atol=1e-6, equal_nan=True)


def test_summaries_are_pure_and_correct():
    kl = np.array([[1.0, 1.0, 0.0, np.nan], [3.0, 1.0, 2.0, 4.0]])
    df = kl_position_summary(kl, n_boot=200)
    assert df["mean"].tolist() == [2.0, 1.0, 1.0, 4.0]
    assert df["n"].tolist() == [2, 2, 2, 1]
    assert (df["lo"] <= df["mean"]).all() and (df["hi"] >= df["mean"]).all()
    # means 2,1,1,4 -> share in first 2 = 3/8
    assert first_tokens_share(kl, first=2) == pytest.approx(3 / 8)
    assert first_tokens_share(np.zeros((2, 3))) != first_tokens_share(np.zeros((2, 3)))  # nan
