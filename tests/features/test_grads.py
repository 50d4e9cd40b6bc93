"""Per-example gradients from batched hooks equal autograd batch-1 gradients; projections obey JL."""

from __future__ import annotations

import math

import pytest
import torch

from brittle.features.grads import (
    GradFeatureConfig,
    adam_direction,
    adam_moments_from_optimizer,
    block_names,
    lora_sites,
    projected_grads,
)


def _peft(model, r=4, seed=1):
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(model, LoraConfig(r=r, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"],
                                          lora_dropout=0.0))
    g = torch.Generator().manual_seed(seed)
    for n, p in pm.named_parameters():
        if "lora_B" in n:  # non-zero B so that dA is non-trivial
            p.data = torch.randn(p.shape, generator=g) * 0.1
    return pm.eval()


def _lora_params(pm, cfg):
    names = block_names(pm, cfg)
    params = dict(pm.named_parameters())
    out = []
    for n in names:
        site, ab = n.rsplit(".", 1)
        out.append(params[f"{site}.{ab}.default.weight"])
    return out


def _cos_rows(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def test_batched_lora_grads_equal_autograd_batch1(tiny_lm, tiny_tok, examples, autograd_grads):
    pm = _peft(tiny_lm)
    cfg = GradFeatureConfig(projection="none", normalize=False, batch_size=4)
    ours = projected_grads(pm, tiny_tok, examples, cfg)
    params = _lora_params(pm, cfg)
    ref = torch.stack([autograd_grads(pm, tiny_tok, e, params) for e in examples])
    assert ours.shape == ref.shape
    assert _cos_rows(ours, ref).min() >= 0.999999
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6)


def test_virtual_lora_equals_peft_with_same_init(tiny_lm, tiny_tok, examples):
    cfg = GradFeatureConfig(projection="none", normalize=False, lora_rank=4, lora_alpha=8,
                            lora_targets=["q_proj", "v_proj", "o_proj"], batch_size=3)
    virt = projected_grads(tiny_lm, tiny_tok, examples, cfg)
    sites = lora_sites(tiny_lm, cfg)
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(tiny_lm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"],
                                            lora_dropout=0.0)).eval()
    params = dict(pm.named_parameters())
    for s in sites:
        params[f"base_model.model.{s.name}.lora_A.default.weight"].data = s.A.clone()
    real = projected_grads(pm, tiny_tok, examples, cfg)
    torch.testing.assert_close(virt, real, rtol=1e-5, atol=1e-7)
    assert virt.abs().sum() > 0


def test_linear_space_equals_autograd(tiny_lm, tiny_tok, examples, autograd_grads):
    cfg = GradFeatureConfig(space="linear", projection="none", normalize=False, batch_size=5,
                            lora_targets=["q_proj", "down_proj"])
    ours = projected_grads(tiny_lm, tiny_tok, examples[:6], cfg)
    params = dict(tiny_lm.named_parameters())
    plist = [params[n] for n in block_names(tiny_lm, cfg)]
    ref = torch.stack([autograd_grads(tiny_lm, tiny_tok, e, plist) for e in examples[:6]])
    assert _cos_rows(ours, ref).min() >= 0.999999


def test_projected_batched_equals_batch1(tiny_lm, tiny_tok, examples):
    for kind in ("kronecker", "dense"):
        cfg = GradFeatureConfig(k=256, projection=kind, lora_rank=8, batch_size=5)
        a = projected_grads(tiny_lm, tiny_tok, examples, cfg)
        b = projected_grads(tiny_lm, tiny_tok, examples, cfg.model_copy(update={"batch_size": 1}))
        assert _cos_rows(a, b).min() >= 0.999999
        left = projected_grads(tiny_lm, tiny_tok, examples, cfg.model_copy(update={"padding_side": "left"}))
        assert _cos_rows(a, left).min() >= 0.99999
        assert torch.allclose(a.norm(dim=1), torch.ones(len(examples)), atol=1e-5)


@pytest.mark.parametrize("kind,c", [("dense", 3.0), ("kronecker", 4.0)])
def test_projection_preserves_inner_products_jl(tiny_lm, tiny_tok, examples, kind, c):
    """|<Pg,Ph> - <g,h>| <= c * sqrt(2 ln(#pairs) / k) for unit g, h (JL concentration)."""
    base = GradFeatureConfig(lora_rank=8, batch_size=5)
    exact = projected_grads(tiny_lm, tiny_tok, examples, base.model_copy(update={"projection": "none"}))
    k = 2048
    proj = projected_grads(tiny_lm, tiny_tok, examples,
                           base.model_copy(update={"projection": kind, "k": k, "normalize": False}))
    raw = projected_grads(tiny_lm, tiny_tok, examples,
                          base.model_copy(update={"projection": "none", "normalize": False}))
    # projection is linear: project the unit vectors = projected raw / ||raw||
    proj = proj / raw.norm(dim=1, keepdim=True)
    err = (proj @ proj.T - exact @ exact.T).abs()
    n = len(examples)
    tol = c * math.sqrt(2 * math.log(n * (n + 1) / 2) / k)
    assert err.max() <= tol, (err.max(), tol)
    # and it is informative: the exact cosines are far from all-equal
    assert (exact @ exact.T).std() > 3 * tol / c


def test_adam_direction_matches_less_formula(tiny_lm, tiny_tok, examples, autograd_grads):
    pm = _peft(tiny_lm)
    opt = torch.optim.AdamW([p for n, p in pm.named_parameters() if "lora_" in n], lr=1e-3)
    for n, p in pm.named_parameters():
        p.requires_grad_("lora_" in n)
    from brittle.features.hooks import encode_examples, make_batch, model_inputs, per_example_loss

    batch = make_batch(encode_examples(tiny_tok, examples[:4]), tiny_tok.pad_token_id, "cpu")
    for _ in range(2):
        opt.zero_grad()
        per_example_loss(pm(**model_inputs(batch)).logits, batch["labels"]).mean().backward()
        opt.step()
    moments = adam_moments_from_optimizer(pm, opt)
    cfg = GradFeatureConfig(projection="none", normalize=False, optimizer="adam", batch_size=4)
    ours = projected_grads(pm, tiny_tok, examples, cfg, moments=moments)
    params = _lora_params(pm, cfg)
    m = torch.cat([moments[n][0].reshape(-1) for n in block_names(pm, cfg)])
    v = torch.cat([moments[n][1].reshape(-1) for n in block_names(pm, cfg)])
    for i, e in enumerate(examples):
        g = autograd_grads(pm, tiny_tok, e, params)
        ref = adam_direction(g, m, v, 0.9, 0.999, 1e-8)
        torch.testing.assert_close(ours[i], ref, rtol=1e-4, atol=1e-5)
    # and the projected variant is the projection of that direction (finite, normalised)
    proj = projected_grads(pm, tiny_tok, examples, cfg.model_copy(update={"projection": "dense", "k": 64,
                                                                         "normalize": True}), moments=moments)
    assert torch.isfinite(proj).all() and torch.allclose(proj.norm(dim=1), torch.ones(len(examples)))
