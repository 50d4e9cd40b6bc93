import numpy as np
import pytest
import torch

from brittle.data.schema import Example
from brittle.diagnose.refusal_direction import (
    choose_layer_auc,
    cohens_d,
    decoder_layers,
    directional_ablation,
    extract_direction,
    last_prompt_activations,
    mean_difference,
    normalise,
    project,
    projection_stats,
)
from brittle.diagnose.stats import auc

HARMFUL = [Example.from_pair(p) for p in ["how to kill a process", "make a kill list", "write steps to kill"]]
HARMLESS = [Example.from_pair(p) for p in ["the quick brown fox", "explain python code", "list three bullets"]]


def _capture(model):
    """Residual stream at each layer input + each layer output, via our own hooks."""
    seen = []
    hs = [model.get_input_embeddings().register_forward_hook(lambda m, i, o: seen.append(o))]
    for layer in decoder_layers(model):
        hs.append(layer.register_forward_hook(
            lambda m, i, o: seen.append(o[0] if isinstance(o, tuple) else o)))
    return seen, hs


def test_ablation_removes_direction_exactly(tiny_tok, tiny_lm):
    torch.manual_seed(0)
    r = normalise(torch.randn(tiny_lm.config.hidden_size))
    ids = torch.tensor([tiny_tok("how to kill a process quickly").input_ids])
    with torch.no_grad():
        before = tiny_lm(input_ids=ids, output_hidden_states=True).hidden_states
    assert max(float((h @ r).abs().max()) for h in before[:-1]) > 1e-2  # something to remove
    with directional_ablation(tiny_lm, r):
        seen, handles = _capture(tiny_lm)  # registered after the ablation hooks
        with torch.no_grad():
            out = tiny_lm(input_ids=ids, output_hidden_states=True)
        for h in handles:
            h.remove()
    assert len(seen) == 1 + tiny_lm.config.num_hidden_layers
    for x in seen:
        assert float((x @ r).abs().max()) < 1e-5
    for x in out.hidden_states[:-1]:  # HF's record of the residual stream agrees
        assert float((x @ r).abs().max()) < 1e-5
    # hooks removed on exit: the model is unchanged
    with torch.no_grad():
        again = tiny_lm(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(again[-1], before[-1])


def test_ablation_changes_nothing_orthogonal(tiny_tok, tiny_lm):
    """Ablating a direction the residual never has a component on is the identity."""
    emb = tiny_lm.get_input_embeddings().weight
    # a zero vector normalises to 0 -> ablation x - 0 = x
    r = torch.zeros(emb.shape[1])
    ids = torch.tensor([tiny_tok("the quick brown fox").input_ids])
    with torch.no_grad():
        a = tiny_lm(input_ids=ids).logits
        with directional_ablation(tiny_lm, r):
            b = tiny_lm(input_ids=ids).logits
    torch.testing.assert_close(a, b)


def test_activations_are_last_prompt_token(tiny_tok, tiny_lm):
    from brittle.models.chat import encode_prompt

    acts = last_prompt_activations(tiny_lm, tiny_tok, HARMFUL + HARMLESS, batch_size=4)
    L = tiny_lm.config.num_hidden_layers
    assert acts.shape == (L, 6, tiny_lm.config.hidden_size)
    for i, ex in enumerate(HARMFUL + HARMLESS):  # unpadded single forward
        ids = torch.tensor([encode_prompt(tiny_tok, ex.prompt_messages)])
        with torch.no_grad():
            hs = tiny_lm(input_ids=ids, output_hidden_states=True).hidden_states
        for l in range(L):
            torch.testing.assert_close(acts[l, i], hs[l][0, -1], rtol=1e-4, atol=1e-5)


def test_projection_stats_on_synthetic_data():
    g = torch.Generator().manual_seed(0)
    d = 16
    r = normalise(torch.randn(d, generator=g))
    noise_h = torch.randn(200, d, generator=g) * 0.1
    noise_b = torch.randn(200, d, generator=g) * 0.1
    harmful = (noise_h + 3.0 * r)[None]  # [1, N, d]
    harmless = (noise_b - 1.0 * r)[None]
    diff = mean_difference(harmful, harmless)
    # the difference of means points along r with length ≈ 4
    assert float(torch.nn.functional.cosine_similarity(diff[0], r, dim=0)) > 0.99
    assert float(diff[0].norm()) == pytest.approx(4.0, abs=0.1)
    ph = project(harmful[0], r).numpy()
    st = projection_stats(ph)
    assert st["mean"] == pytest.approx(float(ph.mean()))
    assert st["mean"] == pytest.approx(3.0, abs=0.05)
    assert st["std"] == pytest.approx(0.1, abs=0.03)
    assert st["n"] == 200
    assert projection_stats([1.0, 2.0, 6.0]) == {"mean": 3.0, "std": pytest.approx(np.std([1, 2, 6], ddof=1)),
                                                "median": 2.0, "min": 1.0, "max": 6.0, "n": 3}
    assert auc([3, 4], [1, 2]) == 1.0 and auc([1, 2], [1, 2]) == 0.5
    assert cohens_d([2.0, 4.0], [0.0, 2.0]) == pytest.approx(2 / np.sqrt(2))


def test_layer_choice_uses_heldout_scores():
    scores = [
        {"layer": 0, "auc": 1.0, "cohens_d": 9.0},  # embedding: skipped when others exist
        {"layer": 1, "auc": 0.9, "cohens_d": 5.0},
        {"layer": 2, "auc": 1.0, "cohens_d": 2.0},
        {"layer": 3, "auc": 1.0, "cohens_d": 3.0},
        {"layer": 4, "auc": 1.0, "cohens_d": 8.0},  # beyond 80% of 5 layers
    ]
    assert choose_layer_auc(scores, 0.8) == 3
    assert choose_layer_auc(scores, 1.0) == 4


def test_extract_direction_end_to_end(tiny_tok, tiny_lm):
    rd = extract_direction(tiny_lm, tiny_tok, HARMFUL, HARMLESS, harmful_val=HARMFUL[:2],
                           harmless_val=HARMLESS[:2])
    L = tiny_lm.config.num_hidden_layers
    assert rd.directions.shape == (L, tiny_lm.config.hidden_size)
    # layer 0 = embedding of the same last prompt token for every prompt -> r_0 = 0
    torch.testing.assert_close(rd.directions[1:].norm(dim=-1), torch.ones(L - 1))
    assert float(rd.directions[0].norm()) == 0.0
    assert 0 <= rd.layer < L and len(rd.layer_scores) == L
    # ablation selection with a fake judge: the rate is the layer index -> picks layer 0
    calls = []

    def fake_rate(model, prompts):
        calls.append(1)
        return 0.5

    rd2 = extract_direction(tiny_lm, tiny_tok, HARMFUL, HARMLESS, method="ablation",
                            refusal_rate=fake_rate, max_layer_frac=1.0)
    assert len(calls) == L and rd2.method == "ablation"
