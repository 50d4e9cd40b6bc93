import numpy as np
import pytest
import torch

from brittle.data.schema import Example
from brittle.diagnose.refusal_direction import (
    RefusalDirection,
    ablate,
    activation_addition,
    add_direction,
    cohens_d,
    compare_refusal_direction,
    decoder_layers,
    directional_ablation,
    mean_difference,
    normalise,
    post_instruction_activations,
    post_instruction_length,
    project,
    projection_stats,
)
from brittle.diagnose.stats import auc

HARMFUL = [Example.from_pair(p) for p in ["how to kill a process", "make a kill list now please", "write steps to kill"]]
HARMLESS = [Example.from_pair(p) for p in ["the quick brown fox", "explain python code", "list three bullets"]]


def test_ablate_removes_exactly_the_component():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 16, generator=g, dtype=torch.float64)
    r_hat = normalise(torch.randn(16, generator=g, dtype=torch.float64))
    y = ablate(x, r_hat)
    torch.testing.assert_close(y @ r_hat, torch.zeros(5, 7, dtype=torch.float64))
    torch.testing.assert_close(x - y, (x @ r_hat).unsqueeze(-1) * r_hat)  # only the r̂ part left
    torch.testing.assert_close(ablate(y, r_hat), y)  # idempotent
    r = torch.zeros(16, dtype=torch.float64)
    torch.testing.assert_close(add_direction(x, r_hat, 2.0) - x, (2.0 * r_hat).expand_as(x))
    torch.testing.assert_close(add_direction(x, r), x)


def _capture(model):
    """Residual stream at each layer input + each layer output, via our own hooks."""
    seen = []
    hs = [model.get_input_embeddings().register_forward_hook(lambda m, i, o: seen.append(o))]
    for layer in decoder_layers(model):
        hs.append(layer.register_forward_hook(
            lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o)))
    return seen, hs


def test_ablation_removes_direction_from_every_layer(tiny_tok, tiny_lm):
    torch.manual_seed(0)
    r = 3.0 * normalise(torch.randn(tiny_lm.config.hidden_size))  # unnormalised: the hook normalises
    r_hat = normalise(r)
    ids = torch.tensor([tiny_tok("how to kill a process quickly").input_ids])
    with torch.no_grad():
        before = tiny_lm(input_ids=ids, output_hidden_states=True).hidden_states
    assert max(float((h @ r_hat).abs().max()) for h in before[:-1]) > 1e-2  # something to remove
    with directional_ablation(tiny_lm, r):
        seen, handles = _capture(tiny_lm)  # registered after the ablation hooks
        with torch.no_grad():
            out = tiny_lm(input_ids=ids, output_hidden_states=True)
        for h in handles:
            h.remove()
    assert len(seen) == 1 + tiny_lm.config.num_hidden_layers
    for x in seen:
        assert float((x @ r_hat).abs().max()) < 1e-5
    for x in out.hidden_states[:-1]:  # HF's record of the residual stream agrees
        assert float((x @ r_hat).abs().max()) < 1e-5
    with torch.no_grad():  # hooks removed on exit: the model is unchanged
        again = tiny_lm(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(again[-1], before[-1])


def test_ablation_of_a_zero_direction_is_the_identity(tiny_tok, tiny_lm):
    ids = torch.tensor([tiny_tok("the quick brown fox").input_ids])
    with torch.no_grad():
        a = tiny_lm(input_ids=ids).logits
        with directional_ablation(tiny_lm, torch.zeros(tiny_lm.config.hidden_size)):
            b = tiny_lm(input_ids=ids).logits
    torch.testing.assert_close(a, b)


def _layer_inputs(model, ids):
    got = []
    hs = [blk.register_forward_pre_hook(lambda m, a, k: got.append((a[0] if a else k["hidden_states"]).clone()),
                                        with_kwargs=True) for blk in decoder_layers(model)]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    for h in hs:
        h.remove()
    return got, logits


def test_activation_addition_adds_r_at_its_own_layer_input(tiny_tok):
    from brittle.models.tiny import tiny_model

    model = tiny_model(tiny_tok, layers=3)
    ids = torch.tensor([tiny_tok("the quick brown fox").input_ids])
    r = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    base, base_logits = _layer_inputs(model, ids)
    with activation_addition(model, r, 1):
        added, added_logits = _layer_inputs(model, ids)
    torch.testing.assert_close(added[0], base[0])  # layers before are untouched
    torch.testing.assert_close(added[1], base[1] + r)  # every position of layer 1's input
    assert not torch.allclose(added[2], base[2]) and not torch.allclose(added_logits, base_logits)
    _again, again_logits = _layer_inputs(model, ids)  # removed on exit
    torch.testing.assert_close(again_logits, base_logits)


def test_post_instruction_length_is_the_template_suffix(tiny_tok):
    from brittle.models.chat import encode_prompt

    k = post_instruction_length(tiny_tok)
    ids = encode_prompt(tiny_tok, [{"role": "user", "content": "list three bullets"}])
    assert tiny_tok.decode(ids[-k:]) == "<|im_end|>\n<|im_start|>assistant\n"
    assert not tiny_tok.decode(ids[-k - 1:]).startswith("<|im_end|>")  # one more is the instruction's


def test_activations_at_post_instruction_positions_ignore_padding(tiny_tok, tiny_lm):
    from brittle.models.chat import encode_prompt

    exs = HARMFUL + HARMLESS  # different lengths -> left padding inside a batch
    acts = post_instruction_activations(tiny_lm, tiny_tok, exs, 3, batch_size=4)
    L = tiny_lm.config.num_hidden_layers
    assert acts.shape == (3, L, 6, tiny_lm.config.hidden_size)
    for i, ex in enumerate(exs):  # unpadded single forward
        ids = torch.tensor([encode_prompt(tiny_tok, ex.prompt_messages)])
        with torch.no_grad():
            hs = tiny_lm(input_ids=ids, output_hidden_states=True).hidden_states
        for l in range(L):
            torch.testing.assert_close(acts[:, l, i], hs[l][0, -3:], rtol=1e-4, atol=1e-5)
    one = post_instruction_activations(tiny_lm, tiny_tok, exs, 3, layers=[1], batch_size=2)
    torch.testing.assert_close(one[:, 0], acts[:, 1], rtol=1e-4, atol=1e-5)


def test_mean_difference_and_projection_stats_on_synthetic_data():
    g = torch.Generator().manual_seed(0)
    d = 16
    r = normalise(torch.randn(d, generator=g))
    harmful = (torch.randn(200, d, generator=g) * 0.1 + 3.0 * r)[None]  # [1, N, d]
    harmless = (torch.randn(200, d, generator=g) * 0.1 - 1.0 * r)[None]
    diff = mean_difference(harmful, harmless)
    assert diff.dtype == torch.float64 and diff.shape == (1, d)
    assert float(torch.nn.functional.cosine_similarity(diff[0].float(), r, dim=0)) > 0.99
    assert float(diff[0].norm()) == pytest.approx(4.0, abs=0.1)
    ph = project(harmful[0], r).numpy()
    st = projection_stats(ph)
    assert st["mean"] == pytest.approx(3.0, abs=0.05) and st["std"] == pytest.approx(0.1, abs=0.03)
    assert projection_stats([1.0, 2.0, 6.0]) == {"mean": 3.0, "std": pytest.approx(np.std([1, 2, 6], ddof=1)),
                                                "median": 2.0, "min": 1.0, "max": 6.0, "n": 3}
    assert auc([3, 4], [1, 2]) == 1.0 and auc([1, 2], [1, 2]) == 0.5
    assert cohens_d([2.0, 4.0], [0.0, 2.0]) == pytest.approx(2 / np.sqrt(2))


def test_direction_record_roundtrip(tmp_path):
    cands = torch.randn(2, 3, 4)
    rd = RefusalDirection(cands, -1, 2, [{"position": -1, "layer": 2, "bypass": -1.0}], {"harmful_refusal_score": 1.0},
                          [5, 7])
    torch.testing.assert_close(rd.vector, cands[1, 2])
    torch.testing.assert_close(rd.r_hat.norm(), torch.tensor(1.0))
    rd.save(tmp_path / "d.pt")
    back = RefusalDirection.load(tmp_path / "d.pt")
    assert (back.position, back.layer, back.refusal_tokens, back.chosen) == (-1, 2, [5, 7], {"position": -1, "layer": 2,
                                                                                              "bypass": -1.0})
    torch.testing.assert_close(back.candidates, cands)


def test_compare_reports_wilson_rates_and_paired_effects(tiny_tok, tiny_lm):
    n = 12
    harmful = [Example.from_pair(f"how to kill process {i}") for i in range(n)]
    harmless = [Example.from_pair(f"the quick brown fox {i}") for i in range(n)]
    r = torch.randn(2, tiny_lm.config.num_hidden_layers, tiny_lm.config.hidden_size)
    rd = RefusalDirection(r, -1, 1, refusal_tokens=[5])
    script = iter([[True] * n, [False] * n, [False] * n, [True] * (n - 3) + [False] * 3])  # base, ablated, ...

    def flags(model, tok, prompts):
        return next(script)

    df = compare_refusal_direction({"aligned": (tiny_lm, tiny_tok)}, rd, harmful, harmless, refusal_flags=flags,
                                   batch_size=5)
    row = df.iloc[0]
    z2 = 1.959963984540054 ** 2
    assert row["refusal_rate"] == 1.0 and row["refusal_lo"] == pytest.approx(n / (n + z2)) and row["refusal_hi"] == 1
    assert row["ablated_refusal_rate"] == 0.0 and row["ablated_refusal_lo"] == 0
    assert row["ablated_refusal_hi"] == pytest.approx(z2 / (n + z2))  # Wilson, not a [0, 0] bootstrap
    assert (row["refusal_k"], row["refusal_n"]) == (n, n)
    assert row["ablation_effect"] == -1.0 and row["added_refusal_rate"] == pytest.approx(0.75)
    assert row["addition_effect_lo"] < 0.75 < row["addition_effect_hi"]
    acts = post_instruction_activations(tiny_lm, tiny_tok, harmful, 1, layers=[1])
    assert row["harmful_proj_mean"] == pytest.approx(float(project(acts[0, 0], rd.r_hat).mean()), rel=1e-5)
    assert np.isfinite(row["proj_gap"]) and np.isfinite(row["harmful_refusal_score"])
