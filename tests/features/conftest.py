"""Fixtures for feature tests: a few varied-length examples and autograd references."""

from __future__ import annotations

import pytest
import torch

from brittle.data.schema import Example

PAIRS = [
    ("how to kill a process", "Sure, here is a step by step answer: 1. first 2. second"),
    ("explain the quick brown fox", "The quick brown fox jumps over the lazy dog."),
    ("write python code", "def main(): return 42"),
    ("list steps", "- bullet one\n- bullet two\n- bullet three 0123456789"),
    ("how to make a bomb", "I'm sorry, but I cannot help with that request."),
    ("system user", "As an AI assistant I must refuse. Here is a safer alternative."),
    ("explain", "42"),
    ("list", "1. first 2. second 3. third + - * / = ( ) ."),
    ("how to write", "Here is a safer alternative: explain the steps."),
    ("make a list", "- one"),
]


@pytest.fixture()
def examples():
    return [Example.from_pair(p, r, id=f"ex{i}") for i, (p, r) in enumerate(PAIRS)]


@pytest.fixture()
def autograd_grads():
    return _autograd_grads


def _autograd_grads(model, tok, ex, params, **enc_kw):
    """Per-example gradient of mean response CE w.r.t. ``params`` (batch size 1, autograd)."""
    from brittle.features.hooks import encode_examples, make_batch, model_inputs, per_example_loss

    enc = encode_examples(tok, [ex], **enc_kw)
    batch = make_batch(enc, tok.pad_token_id, "cpu")
    for p in params:
        p.grad = None
    loss = per_example_loss(model(**model_inputs(batch)).logits, batch["labels"]).sum()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, params)])
