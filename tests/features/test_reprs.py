"""Last-token representations: batched == batch-1, left == right padding, right position."""

from __future__ import annotations

import torch

from brittle.data.schema import Example
from brittle.features.hooks import encode_examples
from brittle.features.reprs import last_token_reprs


def test_batched_equals_batch1_and_padding_sides(tiny_lm, tiny_tok, examples):
    a = last_token_reprs(tiny_lm, tiny_tok, examples, batch_size=4)
    b = last_token_reprs(tiny_lm, tiny_tok, examples, batch_size=1)
    c = last_token_reprs(tiny_lm, tiny_tok, examples, batch_size=4, padding_side="left")
    assert a.shape == (len(examples), tiny_lm.config.hidden_size)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)
    assert (a[0] - a[1]).abs().max() > 1e-3


def test_last_token_is_end_of_turn_after_final_norm(tiny_lm, tiny_tok, examples):
    enc = encode_examples(tiny_tok, examples[:1])[0]
    assert enc.input_ids[-1] == tiny_tok.convert_tokens_to_ids("<|im_end|>")
    ids = torch.tensor([enc.input_ids])
    with torch.no_grad():
        h = tiny_lm.model(input_ids=ids).last_hidden_state[0, -1]  # after the final norm
    torch.testing.assert_close(last_token_reprs(tiny_lm, tiny_tok, examples[:1])[0], h, rtol=1e-4, atol=1e-5)


def test_prompt_only_examples_allowed(tiny_lm, tiny_tok):
    r = last_token_reprs(tiny_lm, tiny_tok, [Example.from_pair("how to kill a process")])
    assert r.shape == (1, tiny_lm.config.hidden_size) and torch.isfinite(r).all()
