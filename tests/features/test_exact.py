"""Ghost (batched, hook-based) full-parameter inner products equal autograd per-example ones."""

from __future__ import annotations

import pytest
import torch

from brittle.errors import BrittleError
from brittle.features.exact import (
    ExactAnchorConfig,
    exact_anchor_result,
    exact_anchor_scores,
    per_example_stats,
)


def _tied(model):
    model.lm_head.weight = model.model.embed_tokens.weight
    model.config.tie_word_embeddings = True
    return model


def _reference(model, tok, cands, anchors, cfg, autograd_grads):
    params = [p for _, p in model.named_parameters()]
    def unit(e, n):
        g = autograd_grads(model, tok, e, params, max_response_tokens=n)
        return g / g.norm(), g.norm()
    out = {}
    gc = [unit(e, cfg.candidate_tokens) for e in cands]
    for name, exs in anchors.items():
        v = torch.stack([unit(a, cfg.anchor_tokens)[0] for a in exs]).mean(0)
        out[name] = torch.stack([u @ v for u, _ in gc])
    return out, torch.stack([n for _, n in gc])


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("mode", ["ghost", "materialize", "auto"])
def test_exact_scores_match_autograd(tiny_lm, tiny_tok, examples, autograd_grads, tied, mode):
    model = (_tied(tiny_lm) if tied else tiny_lm).double()  # float64: test the math, not rounding
    cands, anchors = examples[:6], {"harm": examples[6:8], "safe": examples[8:]}
    cfg = ExactAnchorConfig(anchor_tokens=3, batch_size=4, mode=mode, materialize_mb=0.05)
    res = exact_anchor_result(model, tiny_tok, cands, anchors, cfg)
    ref, norms = _reference(model, tiny_tok, cands, anchors, cfg, autograd_grads)
    torch.testing.assert_close(res.norms, norms, rtol=1e-6, atol=0)
    for k in anchors:
        torch.testing.assert_close(res.scores[k], ref[k], rtol=1e-6, atol=1e-9)
    assert ref["harm"].abs().min() > 1e-3  # non-trivial numbers
    # model left as found: params are Parameters again, nothing requires grad changed
    assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_batched_equals_batch1_and_left_padding(tiny_lm, tiny_tok, examples):
    anchors = {"a": examples[:3]}
    cfg = ExactAnchorConfig(batch_size=5)
    a = exact_anchor_scores(tiny_lm, tiny_tok, examples, anchors, cfg)["a"]
    b = exact_anchor_scores(tiny_lm, tiny_tok, examples, anchors, cfg.model_copy(update={"batch_size": 1}))["a"]
    c = exact_anchor_scores(tiny_lm, tiny_tok, examples, anchors,
                            cfg.model_copy(update={"padding_side": "left"}))["a"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_anchor_token_cutoff_changes_scores(tiny_lm, tiny_tok, examples):
    anchors = {"a": examples[:3]}
    s10 = exact_anchor_scores(tiny_lm, tiny_tok, examples[3:], anchors, ExactAnchorConfig(anchor_tokens=2))["a"]
    sall = exact_anchor_scores(tiny_lm, tiny_tok, examples[3:], anchors, ExactAnchorConfig(anchor_tokens=None))["a"]
    assert (s10 - sall).abs().max() > 1e-3


def test_peft_model_rejected(tiny_lm, tiny_tok, examples):
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(tiny_lm, LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(BrittleError, match="merge"):
        per_example_stats(pm, tiny_tok, examples[:2], ExactAnchorConfig())


def test_linear_embedding_cross_term_matches_materialised():
    """⟨G_bᵀX_b, scatter(E_b)⟩ = Σ_t' Σ_t G[t, i_t'](x_t·e_t'), with repeated ids."""
    from brittle.features.exact import _materialize_embedding, linear_embedding_cross

    gen = torch.Generator().manual_seed(0)
    B, T, V, d = 3, 7, 11, 5
    g = torch.randn(B, T, V, generator=gen, dtype=torch.float64)
    x = torch.randn(B, T, d, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, 4, (B, T), generator=gen)  # few distinct ids -> repeats
    e = torch.randn(B, T, d, generator=gen, dtype=torch.float64)
    head = torch.bmm(g.transpose(1, 2), x)  # (B, V, d)
    emb = _materialize_embedding(ids, e, (V, d))
    want = (head * emb).sum(dim=(1, 2))
    torch.testing.assert_close(linear_embedding_cross(g, x, ids, e), want, rtol=1e-12, atol=1e-12)
    assert want.abs().min() > 1e-2


def test_tied_ghost_uses_cross_term_and_never_materialises(tiny_lm, tiny_tok, examples, autograd_grads,
                                                           monkeypatch):
    import brittle.features.exact as ex

    model = _tied(tiny_lm).double()
    params = [p for _, p in model.named_parameters()]
    want = torch.stack([autograd_grads(model, tiny_tok, e, params).pow(2).sum() for e in examples[:4]])

    def boom(*a, **k):
        raise AssertionError("per-example vocab x d tensor materialised")

    monkeypatch.setattr(ex, "_materialize_embedding", boom)
    cfg = ExactAnchorConfig(batch_size=4, mode="ghost")
    sq, _ = per_example_stats(model, tiny_tok, examples[:4], cfg)
    torch.testing.assert_close(sq, want, rtol=1e-8, atol=0)
    # the lm_head x embedding cross term is really needed: zeroing it breaks the norms
    real = ex.linear_embedding_cross
    monkeypatch.setattr(ex, "linear_embedding_cross", lambda *a: 0 * real(*a))
    sq0, _ = per_example_stats(model, tiny_tok, examples[:4], cfg)
    assert ((sq0 - want).abs() / want).max() > 1e-4
