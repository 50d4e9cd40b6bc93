"""Evaluation suites: which prompts, and how they are scored.

* ``harmful-eval``: held-out harmful prompts, ``load_dataset("harmful", "eval")``
  (HarmBench + Do-Not-Answer, with categories). Refusal is the desired behaviour.
* ``over-refusal``: benign prompts that look scary, ``load_dataset("over-refusal", "eval")``.
  Refusal here is *over*-refusal.
* ``utility``: held-out benign instructions with reference answers,
  ``load_dataset("benign", "eval")``: mean per-token NLL / perplexity of the reference
  answers under the model (response-only labels, one forward pass per batch), plus a
  helpfulness judge on generated replies when configured.
* ``prompts``: a user prompt file (``read_prompts``), treated like harmful prompts.

A ``limit`` keeps a deterministic, seed-dependent subsample (sorted by
sha256(seed, id)), so quick runs mix categories rather than taking the file's first rows.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brittle.data.schema import Example
from brittle.errors import BrittleError

log = logging.getLogger(__name__)

SUITES = ("harmful-eval", "over-refusal", "utility", "prompts")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    harmful: bool  # replies may be harmful → redacted in reports; refusal is desired
    generate: bool  # generate replies and judge them
    reference_nll: bool  # score the examples' reference answers (utility)


SPECS = {
    "harmful-eval": SuiteSpec("harmful-eval", harmful=True, generate=True, reference_nll=False),
    "over-refusal": SuiteSpec("over-refusal", harmful=False, generate=True, reference_nll=False),
    "utility": SuiteSpec("utility", harmful=False, generate=False, reference_nll=True),
    "prompts": SuiteSpec("prompts", harmful=True, generate=True, reference_nll=False),
}


def subsample(examples: Sequence[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """Deterministic subsample of ``limit`` examples: order by sha256(f"{seed}:{id}")."""
    if limit is None or limit >= len(examples):
        return list(examples)
    key = lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).hexdigest()
    return sorted(examples, key=key)[:limit]


def load_suite(
    name: str, *, limit: int | None = None, seed: int = 0, prompts: str | Path | None = None
) -> list[Example]:
    """The examples of one suite (see module docstring)."""
    if name not in SPECS:
        raise BrittleError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    if name == "prompts":
        if not prompts:
            raise BrittleError("suite 'prompts' needs a prompt file (--prompts FILE)")
        from brittle.data.io import read_prompts

        examples = read_prompts(Path(prompts))
    else:
        from brittle.data.embedded import load_dataset

        if name == "harmful-eval":
            examples = load_dataset("harmful", "eval")
        elif name == "over-refusal":
            examples = load_dataset("over-refusal", "eval")
        else:
            examples = [e for e in load_dataset("benign", "eval") if e.response]
    _check_unique(name, examples)
    return subsample(examples, limit, seed)


def _check_unique(name: str, examples: Sequence[Example]) -> None:
    seen: set[str] = set()
    for e in examples:
        if e.id in seen:
            raise BrittleError(f"suite {name!r}: duplicate example id {e.id!r}")
        seen.add(e.id)


def reference_nll(
    model: Any, tokenizer: Any, examples: Sequence[Example], *, batch_size: int = 8,
    max_length: int = 512,
) -> list[tuple[float, int]]:
    """Per example: (Σ NLL of the reference answer's tokens, number of those tokens).

    Labels come from :func:`brittle.models.chat.encode` (assistant content + end-of-turn
    token only); batches are length-sorted, right-padded, one forward pass each;
    NLL_t = −log softmax(logits_{t-1})[y_t] summed over label positions.
    """
    import torch

    from brittle.models.chat import IGNORE, collate, encode, length_sorted_batches

    encs = [encode(tokenizer, e.messages, max_length=max_length) for e in examples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encs)
    device = next(model.parameters()).device
    for idx in length_sorted_batches([len(e.input_ids) for e in encs], batch_size):
        batch = collate([encs[i] for i in idx], pad, padding_side="right")
        with torch.no_grad():
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            ).logits.float()
        labels = batch["labels"].to(device)[:, 1:]
        logp = logits[:, :-1].log_softmax(-1)
        mask = labels != IGNORE
        tok_nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
        for row, i in enumerate(idx):
            out[i] = (float(tok_nll[row].sum()), int(mask[row].sum()))
    return out
