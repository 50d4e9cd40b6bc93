"""Chat formatting with response-only label masks.

Every training and gradient-feature path goes through :func:`encode`: the conversation
is rendered by the tokenizer's own chat template, tokenised once with character offsets,
and a token is a *label* (loss-bearing) iff its characters lie inside an assistant turn
(the content plus the template's end-of-turn marker). All other labels are ``IGNORE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from brittle.errors import BrittleError

IGNORE = -100
Messages = list[dict[str, str]]


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE on non-response tokens

    @property
    def n_response_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def render(tokenizer: Any, messages: Messages, *, add_generation_prompt: bool = False) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise BrittleError("tokenizer has no chat template; pass a chat model")
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def render_prompt(tokenizer: Any, messages: Messages, prefill: str | None = None) -> str:
    """Text that asks the model for the next assistant turn, optionally prefilled."""
    text = render(tokenizer, messages, add_generation_prompt=True)
    return text + (prefill or "")


def assistant_spans(tokenizer: Any, messages: Messages, which: str = "last") -> tuple[str, list[tuple[int, int]]]:
    """Render ``messages`` and return ``(text, [(start, end), ...])`` character spans of
    assistant turns (``which='last'`` or ``'all'``).

    Span of turn i = [len(render(msgs[:i], gen_prompt)), len(render(msgs[:i+1])).rstrip()),
    i.e. the assistant content plus the end-of-turn marker, without trailing newlines.
    """
    text = render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        if which == "last" and i != len(messages) - 1:
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1]).rstrip()
        if not text.startswith(before) or not text.startswith(upto):
            raise BrittleError(
                "chat template is not prefix-stable; cannot locate the assistant turn "
                "(render of a prefix conversation is not a prefix of the full render)"
            )
        spans.append((len(before), len(upto)))
    return text, spans


def encode(
    tokenizer: Any,
    messages: Messages,
    *,
    max_length: int | None = None,
    max_response_tokens: int | None = None,
    train_on: str = "last",
) -> Encoded:
    """Tokenise a conversation with a response-only label mask.

    * ``train_on``: ``'last'`` assistant turn (default) or ``'all'`` assistant turns.
    * ``max_response_tokens``: keep only the first n label tokens (e.g. the 10-token
      anchor cut-off of He et al. 2024) and cut the sequence after them — later tokens
      cannot influence earlier logits in a causal LM, so this is exact and cheaper.
    * ``max_length``: truncate from the right; the result may have 0 response tokens
      (check :attr:`Encoded.n_response_tokens`).
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise BrittleError("encode() needs a conversation ending with an assistant turn")
    text, spans = assistant_spans(tokenizer, messages, which=train_on)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    for k, (s, e) in enumerate(enc["offset_mapping"]):
        if e <= s:
            continue
        mid = s  # a token belongs to a span if it starts inside it
        if any(a <= mid < b for a, b in spans):
            labels[k] = ids[k]
    if max_response_tokens is not None:
        seen = 0
        for k, label in enumerate(labels):
            if label != IGNORE:
                seen += 1
                if seen == max_response_tokens:
                    ids, labels = ids[: k + 1], labels[: k + 1]
                    break
    if max_length is not None and len(ids) > max_length:
        ids, labels = ids[:max_length], labels[:max_length]
    return Encoded(ids, labels)


def encode_prompt(tokenizer: Any, messages: Messages, prefill: str | None = None) -> list[int]:
    """Token ids of a generation prompt (no labels)."""
    return tokenizer(render_prompt(tokenizer, messages, prefill), add_special_tokens=False)[
        "input_ids"
    ]


def collate(
    batch: Sequence[Encoded], pad_id: int, *, padding_side: str = "right"
) -> dict[str, Any]:
    """Pad a batch into tensors ``input_ids``, ``attention_mask``, ``labels``."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, e in enumerate(batch):
        n = len(e.input_ids)
        sl = slice(0, n) if padding_side == "right" else slice(width - n, width)
        ids[b, sl] = torch.tensor(e.input_ids, dtype=torch.long)
        labels[b, sl] = torch.tensor(e.labels, dtype=torch.long)
        mask[b, sl] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first) to cut padding."""
    return token_budget_batches(lengths, batch_size, max_tokens=None)


def token_budget_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None) -> list[list[int]]:
    """Indices in batches of similar length (longest first) of at most ``batch_size`` rows, each
    batch's padded size (rows x its longest length) within ``max_tokens`` (None: no token
    bound; a batch always holds at least one row)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    while order:
        fit = batch_size if max_tokens is None else max_tokens // max(1, lengths[order[0]])
        rows = max(1, min(batch_size, fit))
        batches.append(order[:rows])
        order = order[rows:]
    return batches
