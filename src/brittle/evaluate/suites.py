"""Evaluation suites: which prompts, and how they are scored. Suites are data: each maps to
an embedded data set (``src/brittle/resources/data/datasets.yaml``) and, optionally, a split.

Harmful suites (refusal desired; replies redacted in reports):

* ``harmful`` — the default: **harmful-only** prompts whose compliance is harmful by
  construction (HarmBench standard + AdvBench + StrongREJECT + JBB harmful behaviours,
  deduplicated), the ``eval`` split of ``load_dataset("harmful-only")``. Its split rule and
  salt equal those of the training pools (``harmful`` / ``harmful-pairs`` train splits used
  by ``align`` and ``attack``), so no training prompt is evaluated. Category = benchmark.
* ``harmbench``, ``advbench``, ``strongreject``, ``jailbreakbench`` — each whole benchmark
  with its own categories (comparable to papers; note half of HarmBench is in brittle's
  training split). ``NAME-eval`` keeps only the held-out split (use it for models trained by
  brittle's ``align`` / ``attack``).
* ``donotanswer`` (``donotanswer-eval``) — Do-Not-Answer, 5 risk areas as categories:
  sensitive prompts a safe model may partly answer, so it is reported on its own, never
  mixed into a harmful-only rate.
* ``harmful-eval`` — the MIXED suite of earlier releases (HarmBench + Do-Not-Answer eval
  split), kept for backward compatibility; prefer ``harmful`` + ``donotanswer-eval``.

Benign suites:

* ``over-refusal``: benign prompts that look scary, ``load_dataset("over-refusal", "eval")``.
  Refusal here is *over*-refusal.
* ``utility``: held-out benign instructions with reference answers,
  ``load_dataset("benign", "eval")``: mean per-token NLL / perplexity of the reference
  answers under the model (response-only labels, one forward pass per batch), plus a
  helpfulness judge on generated replies when configured.
* ``prompts``: a user prompt file (``read_prompts``: every layout of
  :mod:`brittle.data.fields`), scored like harmful prompts (refusal rate, ASR, harmfulness
  judges); ``prompts-benign`` (``--prompts-kind benign``): the same file scored like
  ``over-refusal`` (refusal = over-refusal, no harmfulness judge).

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

DEFAULT_HARMFUL_SUITE = "harmful"
BENCHMARKS = ("harmbench", "advbench", "strongreject", "jailbreakbench", "donotanswer")


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    harmful: bool  # replies may be harmful → redacted in reports; refusal is desired
    generate: bool  # generate replies and judge them
    reference_nll: bool  # score the examples' reference answers (utility)
    dataset: str | None = None  # embedded data set (None: the user's --prompts file)
    split: str | None = None  # None = every row
    mixed: bool = False  # mixes harmful and merely sensitive prompts (legacy harmful-eval)
    description: str = ""


def _harm(name: str, dataset: str, split: str | None, description: str, mixed: bool = False) -> SuiteSpec:
    return SuiteSpec(name, harmful=True, generate=True, reference_nll=False, dataset=dataset,
                     split=split, mixed=mixed, description=description)


SPECS: dict[str, SuiteSpec] = {
    "harmful": _harm("harmful", "harmful-only", "eval",
                     "harmful-only: HarmBench+AdvBench+StrongREJECT+JBB, held-out split"),
    **{b: _harm(b, b, None, f"{b}: whole benchmark") for b in BENCHMARKS},
    **{f"{b}-eval": _harm(f"{b}-eval", b, "eval", f"{b}: held-out split") for b in BENCHMARKS},
    "harmful-eval": _harm("harmful-eval", "harmful", "eval",
                          "MIXED (legacy): HarmBench + Do-Not-Answer, held-out split", mixed=True),
    "over-refusal": SuiteSpec("over-refusal", harmful=False, generate=True, reference_nll=False,
                              dataset="over-refusal", split="eval",
                              description="benign prompts that sound risky (refusal = over-refusal)"),
    "utility": SuiteSpec("utility", harmful=False, generate=False, reference_nll=True,
                         dataset="benign", split="eval",
                         description="held-out benign instructions with reference answers"),
    "prompts": SuiteSpec("prompts", harmful=True, generate=True, reference_nll=False,
                         description="the user's --prompts file, harmful (refusal desired)"),
    "prompts-benign": SuiteSpec("prompts-benign", harmful=False, generate=True, reference_nll=False,
                                description="the user's --prompts file, benign (refusal = over-refusal)"),
}
USER_SUITES = {"harmful": "prompts", "benign": "prompts-benign"}  # --prompts-kind -> suite
SUITES = tuple(SPECS)


def subsample(examples: Sequence[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """Deterministic subsample of ``limit`` examples: order by sha256(f"{seed}:{id}")."""
    if limit is None or limit >= len(examples):
        return list(examples)
    key = lambda e: hashlib.sha256(f"{seed}:{e.id}".encode()).hexdigest()
    return sorted(examples, key=key)[:limit]


def load_suite(
    name: str, *, limit: int | None = None, seed: int = 0, prompts: str | Path | None = None,
    fields: Any = None,
) -> list[Example]:
    """The examples of one suite (see module docstring); ``fields``: a
    :class:`~brittle.data.fields.FieldMap` for the user's prompt file."""
    if name not in SPECS:
        raise BrittleError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    spec = SPECS[name]
    if spec.dataset is None:
        if not prompts:
            raise BrittleError(f"suite {name!r} needs a prompt file (--prompts FILE)")
        from brittle.data.io import read_prompts

        examples = read_prompts(Path(prompts), fields)
    else:
        from brittle.data.embedded import load_dataset

        examples = load_dataset(spec.dataset, spec.split)
        if name == "utility":
            examples = [e for e in examples if e.response]
    _check_unique(name, examples)
    return subsample(examples, limit, seed)


def _check_unique(name: str, examples: Sequence[Example]) -> None:
    seen: set[str] = set()
    for e in examples:
        if e.id in seen:
            raise BrittleError(f"suite {name!r}: duplicate example id {e.id!r}")
        seen.add(e.id)


LOGITS_BYTES = 512 * 2**20  # float32 logits + their log-softmax per reference-scoring batch


def reference_nll(
    model: Any, tokenizer: Any, examples: Sequence[Example], *, batch_size: int = 8,
    max_length: int = 512, logits_bytes: int = LOGITS_BYTES,
) -> list[tuple[float, int]]:
    """Per example: (Σ NLL of the reference answer's tokens, number of those tokens).

    Labels come from :func:`brittle.models.chat.encode` (assistant content + end-of-turn
    token only); batches are length-sorted, right-padded, one forward pass each, at most
    ``batch_size`` rows and as many as keep the float32 logits and their log-softmax within
    ``logits_bytes`` (8 x 512 tokens x a 49k vocabulary would be 1.6 GB);
    NLL_t = −log softmax(logits_{t-1})[y_t] summed over label positions.
    """
    import torch

    from brittle.models.chat import IGNORE, collate, encode, token_budget_batches

    encs = [encode(tokenizer, e.messages, max_length=max_length) for e in examples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encs)
    device = next(model.parameters()).device
    head = getattr(model, "get_output_embeddings", lambda: None)()
    vocab = int(head.weight.shape[0]) if head is not None else int(getattr(model.config, "vocab_size", 2**16))
    max_tokens = max(1, logits_bytes // (2 * 4 * vocab))
    for idx in token_budget_batches([len(e.input_ids) for e in encs], batch_size, max_tokens):
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


def primary_harmful_suite(names: Sequence[str]) -> str | None:
    """The suite an attack-success rate is read from: the first harmful suite in ``names``
    (config order, which metrics.json keeps), e.g. ``harmful`` — or ``harmful-eval`` in runs
    made before the harmful-only default. None when no suite is harmful."""
    return next((n for n in names if n in SPECS and SPECS[n].harmful), None)
