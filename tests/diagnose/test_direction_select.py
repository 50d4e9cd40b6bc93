import math

import pytest
import torch

from brittle.data.schema import Example
from brittle.diagnose.direction_select import (
    SelectionRules,
    choose_candidate,
    discard_reason,
    first_layer_pruned,
    kl_divergence,
    mean_refusal_score,
    refusal_score,
    refusal_token_ids,
    score_candidates,
    select_direction,
)
from brittle.diagnose.refusal_direction import (
    activation_addition,
    directional_ablation,
    mean_difference,
    post_instruction_activations,
    post_instruction_length,
)
from brittle.errors import BrittleError


def test_refusal_score_is_log_odds_of_the_refusal_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.05, 0.05, 0.45, 0.45]]))
    s = refusal_score(logits, [0, 1])
    assert s.dtype == torch.float64
    assert s.tolist() == pytest.approx([math.log(3.0), math.log(0.1 / 0.9)], abs=1e-6)
    assert float(refusal_score(logits[:1], [0, 1, 2, 3])[0]) == pytest.approx(math.log(1 / 1e-8), rel=1e-6)


def test_kl_divergence_matches_the_formula():
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    q = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    kl = kl_divergence(p.log(), q.log())
    assert kl[0] == pytest.approx(0.0, abs=1e-9)
    assert float(kl[1]) == pytest.approx(0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5), abs=1e-5)
    assert float(kl_divergence(q.log(), p.log())[1]) != pytest.approx(float(kl[1]))  # KL(P‖Q), not symmetric


def _row(layer, bypass=-1.0, induce=1.0, kl=0.01, position=-1):
    return {"position": position, "layer": layer, "bypass": bypass, "induce": induce, "kl": kl}


def test_filter_rules_follow_the_reference():
    L = 10  # int(10 * 0.8) = 8: layers 8 and 9 are pruned
    assert first_layer_pruned(L, 0.2) == 8 and first_layer_pruned(L, None) == 10
    assert discard_reason(_row(7), L) is None
    assert discard_reason(_row(8), L) == "pruned"
    assert discard_reason(_row(3, kl=0.1), L) is None  # the reference drops KL > threshold only
    assert discard_reason(_row(3, kl=0.1001), L) == "kl"
    assert discard_reason(_row(3, induce=0.0), L) is None  # and induce < threshold only
    assert discard_reason(_row(3, induce=-0.01), L) == "induce"
    assert discard_reason(_row(3, bypass=math.nan), L) == "nan"
    assert discard_reason(_row(9, kl=5.0, induce=-3.0), L) == "pruned"  # reference order
    off = SelectionRules(kl_threshold=None, induce_threshold=None, prune_layer_fraction=None)
    assert discard_reason(_row(9, kl=5.0, induce=-3.0), L, off) is None


def test_choice_is_the_lowest_bypass_among_kept_candidates():
    L = 10
    table = [
        _row(9, bypass=-9.0),  # best bypass, but in the last 20% of layers
        _row(2, bypass=-8.0, kl=0.5),  # disturbs harmless prompts too much
        _row(3, bypass=-7.0, induce=-0.5),  # adding it does not induce refusal
        _row(4, bypass=-2.0, position=-2),
        _row(5, bypass=-3.0, position=-1),  # the answer
        _row(6, bypass=-3.0, position=-1),  # tie: first in table order wins
    ]
    best = choose_candidate(table, L)
    assert (best["layer"], best["position"]) == (5, -1)
    assert choose_candidate(table, L, SelectionRules(None, None, None))["layer"] == 9
    with pytest.raises(BrittleError, match="filtered out"):
        choose_candidate(table[:3], L)


def test_refusal_tokens_are_first_tokens_of_reply_openings(tiny_tok):
    ids = refusal_token_ids(tiny_tok, ["I'm sorry", "I cannot", "illegal", "but I cannot", "As an AI", "Sorry"])
    first = [tiny_tok(p, add_special_tokens=False)["input_ids"][0] for p in ("I'm sorry", "As an AI", "Sorry")]
    assert ids == list(dict.fromkeys(first))  # "I cannot" shares "I"; lower-case fragments skipped
    assert len(refusal_token_ids(tiny_tok)) >= 2  # the refusal judge's default lists
    with pytest.raises(BrittleError):
        refusal_token_ids(tiny_tok, ["illegal"])


H_TRAIN = [Example.from_pair(f"how to kill a process {'now ' * (i % 3)}{i}") for i in range(6)]
B_TRAIN = [Example.from_pair(f"the quick brown fox {'jumps ' * (i % 2)}{i}") for i in range(6)]
H_VAL = [Example.from_pair(f"write steps to kill {'a ' * (i % 2)}{i}") for i in range(5)]
B_VAL = [Example.from_pair(f"explain python code {'please ' * (i % 3)}{i}") for i in range(5)]


def test_scores_do_not_depend_on_padding(tiny_tok, tiny_lm):
    ids = refusal_token_ids(tiny_tok)
    batched = mean_refusal_score(tiny_lm, tiny_tok, H_VAL, ids, batch_size=5)
    single = sum(mean_refusal_score(tiny_lm, tiny_tok, [e], ids, batch_size=1) for e in H_VAL) / len(H_VAL)
    assert batched == pytest.approx(single, abs=1e-4)


def test_select_direction_end_to_end(tiny_tok):
    from brittle.models.tiny import tiny_model

    model = tiny_model(tiny_tok, layers=5)
    ids = refusal_token_ids(tiny_tok)
    rules = SelectionRules(kl_threshold=None, induce_threshold=None, prune_layer_fraction=0.2)
    rd = select_direction(model, tiny_tok, H_TRAIN, B_TRAIN, H_VAL, B_VAL, rules=rules, refusal_ids=ids,
                          n_positions=2, batch_size=4)
    k = post_instruction_length(tiny_tok)
    assert k >= 2 and rd.candidates.shape == (2, 5, model.config.hidden_size)
    # candidates come from the train prompts only
    want = mean_difference(post_instruction_activations(model, tiny_tok, H_TRAIN, 2),
                           post_instruction_activations(model, tiny_tok, B_TRAIN, 2)).float()
    torch.testing.assert_close(rd.candidates, want)
    assert [(r["position"], r["layer"]) for r in rd.scores] == [(p, l) for p in (-2, -1) for l in range(5)]
    assert [r["discarded"] for r in rd.scores if r["layer"] == 4] == ["pruned", "pruned"]
    kept = [r for r in rd.scores if r["kept"]]
    assert rd.chosen == min(kept, key=lambda r: r["bypass"]) and rd.layer < 4
    # each score is the intervened model's refusal score / KL on the *validation* prompts
    ch = rd.chosen
    with directional_ablation(model, rd.vector):
        assert mean_refusal_score(model, tiny_tok, H_VAL, ids) == pytest.approx(ch["bypass"], abs=1e-5)
    with activation_addition(model, rd.vector, rd.layer):
        assert mean_refusal_score(model, tiny_tok, B_VAL, ids) == pytest.approx(ch["induce"], abs=1e-5)
    assert rd.baseline["harmful_refusal_score"] == pytest.approx(mean_refusal_score(model, tiny_tok, H_VAL, ids))
    assert ch["kl"] > 0
    # the embedding-layer candidate at a template position is zero (same token for every
    # prompt): ablating or adding it changes nothing
    zero = next(r for r in rd.scores if r["layer"] == 0 and r["position"] == -1)
    assert zero["norm"] == 0.0 and zero["kl"] == pytest.approx(0.0, abs=1e-9)
    assert zero["bypass"] == pytest.approx(rd.baseline["harmful_refusal_score"], abs=1e-9)


def test_pruned_layers_can_skip_their_forwards(tiny_tok, tiny_lm):
    cands = torch.randn(1, tiny_lm.config.num_hidden_layers, tiny_lm.config.hidden_size)
    rows, _base = score_candidates(tiny_lm, tiny_tok, cands, H_VAL[:2], B_VAL[:2], [5], skip_layers_from=1)
    assert not math.isnan(rows[0]["bypass"]) and math.isnan(rows[1]["kl"])
    assert discard_reason(rows[1], 2) == "pruned"  # no forwards for a pruned layer
    with pytest.raises(BrittleError, match="held-out"):
        select_direction(tiny_lm, tiny_tok, H_TRAIN, B_TRAIN, [], B_VAL)


def test_nothing_passing_the_filter_keeps_the_table(tiny_tok, tiny_lm):
    rd = select_direction(tiny_lm, tiny_tok, H_TRAIN[:3], B_TRAIN[:3], H_VAL[:2], B_VAL[:2], n_positions=1,
                          rules=SelectionRules(induce_threshold=1e3))  # log-odds never reach 1000
    assert rd.layer is None and rd.position is None and rd.chosen == {}
    assert len(rd.scores) == tiny_lm.config.num_hidden_layers and not any(r["kept"] for r in rd.scores)
    with pytest.raises(BrittleError, match="no refusal direction"):
        _ = rd.vector


def test_a_layer_stride_scores_every_sth_layer_with_the_same_numbers(tiny_tok):
    from brittle.models.tiny import tiny_model

    model = tiny_model(tiny_tok, layers=5)
    ids = refusal_token_ids(tiny_tok)
    rules = SelectionRules(kl_threshold=None, induce_threshold=None, prune_layer_fraction=0.2)
    args = (model, tiny_tok, H_TRAIN, B_TRAIN, H_VAL, B_VAL)
    every = select_direction(*args, rules=rules, refusal_ids=ids, n_positions=1, batch_size=4)
    strided = select_direction(*args, rules=rules, refusal_ids=ids, n_positions=1, batch_size=4, layer_stride=2)
    assert [r["scored"] for r in strided.scores] == [True, False, True, False, True]
    # layer 4 is pruned whether or not the stride skipped it; 1 and 3 are "not scored"
    assert [r["discarded"] for r in strided.scores] == [None, "not scored", None, "not scored", "pruned"]
    for a, b in zip(every.scores, strided.scores):
        if b["scored"]:  # pruned layer 4 too (score_pruned defaults to True)
            assert b["bypass"] == pytest.approx(a["bypass"]) and b["kl"] == pytest.approx(a["kl"])
        else:
            assert math.isnan(b["bypass"])
    assert strided.layer in (0, 2)
    best_even = min((r for r in every.scores if r["kept"] and r["layer"] % 2 == 0), key=lambda r: r["bypass"])
    assert strided.layer == best_even["layer"]
