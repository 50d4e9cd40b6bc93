"""One combined anchor direction (model dtype) == the three-set combination; trainable-only
scores; sharded resume; activation checkpointing; the byte-aware mode chooser."""

from __future__ import annotations

import pytest
import torch

from brittle.errors import BrittleError
from brittle.features.exact import ExactAnchorConfig, exact_anchor_result, per_example_stats
from brittle.features.exact_combined import exact_combined_scores
from brittle.features.exact_cost import choose_linear_mode
from brittle.features.trainable import trainable_param_names

W = {"harmful": 1.0, "safe1": -1.0, "safe2": -1.0}


def _anchors(examples):
    return {"harmful": examples[6:8], "safe1": examples[8:], "safe2": examples[4:6]}


def _tied(model):
    model.lm_head.weight = model.model.embed_tokens.weight
    model.config.tie_word_embeddings = True
    return model


@pytest.mark.parametrize("tied", [False, True])
def test_combined_direction_equals_three_set_combination(tiny_lm, tiny_tok, examples, tied):
    model = (_tied(tiny_lm) if tied else tiny_lm).double()
    cfg = ExactAnchorConfig(anchor_tokens=3, batch_size=4)
    old = exact_anchor_result(model, tiny_tok, examples[:6], _anchors(examples), cfg)
    want = sum(w * old.scores[k] for k, w in W.items())
    new = exact_combined_scores(model, tiny_tok, examples[:6], _anchors(examples), W, cfg)
    torch.testing.assert_close(new.score, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(new.norms, old.norms, rtol=1e-10, atol=0)
    assert want.abs().min() > 1e-3
    assert all(p.grad is None for p in model.parameters())


def test_trainable_scores_and_share_match_autograd(tiny_lm, tiny_tok, examples, autograd_grads):
    model = tiny_lm.double()
    names = trainable_param_names(model)  # all-linear: every Linear but lm_head
    params = dict(model.named_parameters())
    assert "lm_head.weight" not in names and "model.layers.0.self_attn.q_proj.weight" in names
    assert not any("norm" in n or "embed" in n for n in names)
    cfg = ExactAnchorConfig(anchor_tokens=3, batch_size=4, params="trainable")
    res = exact_combined_scores(model, tiny_tok, examples[:6], _anchors(examples), W, cfg)

    tr = [params[n] for n in sorted(names)]
    allp = list(params.values())

    def unit(e, ps, n=None):
        g = autograd_grads(model, tiny_tok, e, ps, max_response_tokens=n)
        return g / g.norm()

    v = sum(w * torch.stack([unit(a, tr, 3) for a in exs]).mean(0) for (s, exs), w in
            zip(_anchors(examples).items(), W.values()))
    want = torch.stack([unit(z, tr) @ v for z in examples[:6]])
    # (Llama RMSNorm computes in float32 even in a float64 model: batch-vs-batch-1 agree to ~1e-7)
    torch.testing.assert_close(res.score, want, rtol=1e-6, atol=1e-9)
    # share of each anchor's squared gradient norm in the trainable weights
    shares = []
    for exs in _anchors(examples).values():
        for a in exs:
            g_all = autograd_grads(model, tiny_tok, a, allp, max_response_tokens=3)
            g_tr = autograd_grads(model, tiny_tok, a, tr, max_response_tokens=3)
            shares.append(float(g_tr.pow(2).sum() / g_all.pow(2).sum()))
    assert res.info["anchor_trainable_share"] == pytest.approx(sum(shares) / len(shares), rel=1e-6)
    assert 0.0 < res.info["anchor_trainable_share"] < 1.0
    full = exact_combined_scores(model, tiny_tok, examples[:6], _anchors(examples), W,
                                 cfg.model_copy(update={"params": "all"}))
    assert (full.score - res.score).abs().max() > 1e-3  # restricting changes the scores
    assert 0.0 < full.info["direction_trainable_share"] < 1.0


def test_trainable_targets_list_and_errors(tiny_lm):
    names = trainable_param_names(tiny_lm, ["q_proj", "v_proj"])
    assert names == {f"model.layers.{i}.self_attn.{m}.weight" for i in range(2) for m in ("q_proj", "v_proj")}
    with pytest.raises(BrittleError, match="no linear layer"):
        trainable_param_names(tiny_lm, ["nope"])
    with pytest.raises(BrittleError, match="tied"):
        trainable_param_names(_tied(tiny_lm), ["lm_head"])


def test_resumed_run_equals_uninterrupted(tiny_lm, tiny_tok, examples, tmp_path):
    cfg = ExactAnchorConfig(anchor_tokens=3, batch_size=2, shard_size=2)
    ref = exact_combined_scores(tiny_lm, tiny_tok, examples, _anchors(examples), W, cfg, cache_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def crash(j):
        if j == 1:
            raise Stop

    with pytest.raises(Stop):
        exact_combined_scores(tiny_lm, tiny_tok, examples, _anchors(examples), W, cfg, cache_dir=tmp_path / "b",
                              on_shard=crash)
    assert len(list((tmp_path / "b").glob("*/shard-*.json"))) == 2  # shards 0 and 1 were written
    computed: list[int] = []
    res = exact_combined_scores(tiny_lm, tiny_tok, examples, _anchors(examples), W,
                                cfg.model_copy(update={"batch_size": 1}),  # batch size is not in the key
                                cache_dir=tmp_path / "b", on_shard=computed.append)
    assert computed == [2, 3, 4]
    torch.testing.assert_close(res.score, ref.score, rtol=1e-5, atol=1e-6)
    # a changed setting that changes the numbers gets a new key: nothing reused
    again: list[int] = []
    exact_combined_scores(tiny_lm, tiny_tok, examples, _anchors(examples), W,
                          cfg.model_copy(update={"anchor_tokens": 2}), cache_dir=tmp_path / "b",
                          on_shard=again.append)
    assert again == [0, 1, 2, 3, 4]


def test_gradient_checkpointing_same_numbers_and_recomputes(tiny_lm, tiny_tok, examples):
    model = tiny_lm.double()
    calls = []
    h = model.model.layers[0].mlp.down_proj.register_forward_hook(lambda *a: calls.append(1))
    cfg = ExactAnchorConfig(batch_size=10)
    v = {n: torch.randn_like(p).unsqueeze(0) for n, p in model.named_parameters()}
    sq, dots = per_example_stats(model, tiny_tok, examples, cfg, anchors=v)
    n_plain = len(calls)
    sq_c, dots_c = per_example_stats(model, tiny_tok, examples, cfg.model_copy(update={"gradient_checkpointing": True}),
                                     anchors=v)
    h.remove()
    assert len(calls) - n_plain == 2 * n_plain  # each layer ran again in backward
    torch.testing.assert_close(sq_c, sq, rtol=1e-10, atol=0)
    torch.testing.assert_close(dots_c, dots, rtol=1e-10, atol=1e-12)
    assert not model.model.layers[0].training and not model.model.layers[0].gradient_checkpointing


def test_mode_chooser_counts_bytes():
    # Llama-2-7B attention projection, B=4, T=512, one combined direction, bf16
    c = choose_linear_mode(4, 512, 4096, 4096, 1, elem=2, budget_bytes=2**30, flops_per_byte=300)
    assert c.mode == "ghost" and c.materialize > 2 * c.ghost
    # FLOPs alone would materialise here: (T + n + 1)·i·o < n·T·i·o + T²(i + o)
    assert (512 + 2) * 4096 * 4096 < 512 * 4096 * 4096 + 512**2 * 8192
    # several directions on a compute-bound machine: materialising once is cheaper
    assert choose_linear_mode(8, 64, 256, 256, 3, elem=4, budget_bytes=2**30, flops_per_byte=1).mode == "materialize"
    # ... but not when bytes are expensive
    assert choose_linear_mode(8, 64, 256, 256, 3, elem=4, budget_bytes=2**30, flops_per_byte=300).mode == "ghost"
    # a block that does not fit the budget is never materialised
    tight = choose_linear_mode(8, 64, 256, 256, 3, elem=4, budget_bytes=1000, flops_per_byte=1)
    assert tight.mode == "ghost" and tight.materialize == float("inf")


def test_select_score_pool_writes_shards_and_trainable_share(tiny_lm, tiny_tok, examples, tmp_path):
    import json

    from brittle.select.compute import ScoreOptions
    from brittle.select.run import score_pool

    opts = ScoreOptions(batch_size=4, max_length=64, anchor_response_tokens=3, params="trainable",
                        trainable_targets=("q_proj", "v_proj", "down_proj"))
    out = score_pool(["exact-anchor"], examples[:6], _anchors(examples), model_spec="tiny:llama", adapter=None,
                     opts=opts, n_grad=2, n_repr=2, cache_dir=tmp_path, model_tok=(tiny_lm, tiny_tok))
    assert set(out["exact-anchor"]) == {"score", "grad_norm"} and out["exact-anchor"]["score"].shape == (6,)
    (info_path,) = (tmp_path / "exact-anchor.shards").glob("*/info.json")
    info = json.loads(info_path.read_text())
    assert info["params"] == "trainable" and 0 < info["anchor_trainable_share"] < 1
    assert info["trainable_targets"] == ["q_proj", "v_proj", "down_proj"]
    assert list(info_path.parent.glob("shard-*.json"))
