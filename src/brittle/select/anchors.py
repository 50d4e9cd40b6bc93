"""Anchor sets for bidirectional anchoring.

- ``harmful``: harmful prompts + *compliant* answers (D_harmful),
- ``safe1``: the same prompts + a short canned refusal (style 1),
- ``safe2``: the same prompts + a diverse explanatory refusal (style 2).

As in the reference code (princeton-nlp/benign-data-breaks-safety) the two safe sets are
the *same questions* as the harmful set with two refusal styles. Sources:

- ``"harmful-pairs"`` (default, offline): uncensorbench prompt + compliant answer pairs,
  ``load_dataset("harmful-pairs", "train")``;
- ``"attack"``: the harmful attack data, ``build_attack_data("harmful", n, seed, ...)``
  (train-split harmful prompts answered by the unaligned model at run time).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import yaml

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.resources import shipped

log = logging.getLogger(__name__)

ANCHOR_SOURCES = ("harmful-pairs", "attack")
SAFE_STYLES = {"safe1": "canned", "safe2": "explanatory"}


@lru_cache(maxsize=1)
def refusal_styles() -> dict[str, list[str]]:
    """style name -> refusal templates (``resources/select/refusal_styles.yaml``)."""
    data = yaml.safe_load(shipped("select/refusal_styles.yaml").read_text(encoding="utf-8"))
    return {name: list(v["templates"]) for name, v in data.items()}


def refuse(example: Example, style: str, rng: random.Random) -> Example:
    """A copy of ``example`` whose answer is a refusal drawn (seeded) from ``style``."""
    templates = refusal_styles()[style]
    short = " ".join(example.prompt.split()[:6]).rstrip(".?!,;:")
    text = rng.choice(templates).format(prompt_short=short)
    out = example.with_response(text, anchor_style=style)
    out.id = f"{example.id}-{style}"
    return out


def _load_harmful(source: str, n: int, seed: int, attack_kwargs: dict[str, Any]) -> list[Example]:
    if source == "harmful-pairs":
        from brittle.data.embedded import load_dataset

        return load_dataset("harmful-pairs", "train")
    if source == "attack":
        build = _attack_builder()
        return build("harmful", n, seed, **attack_kwargs)
    raise BrittleError(f"unknown anchor source {source!r}; choose from {list(ANCHOR_SOURCES)}")


def _attack_builder() -> Callable[..., list[Example]]:
    import importlib

    for mod in ("brittle.train.attack_data", "brittle.train.attack", "brittle.train"):
        try:
            fn = getattr(importlib.import_module(mod), "build_attack_data", None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    raise BrittleError("anchor source 'attack' needs brittle.train.build_attack_data")


def build_anchor_sets(
    n: int = 10,
    *,
    source: str = "harmful-pairs",
    category: str | None = None,
    seed: int = 0,
    safe_styles: Sequence[str] = ("canned", "explanatory"),
    use_pair_refusals: bool = False,
    harmful: list[Example] | None = None,
    attack_kwargs: dict[str, Any] | None = None,
) -> dict[str, list[Example]]:
    """{"harmful": [...], "safe1": [...], "safe2": [...]} with ``n`` examples each.

    ``category``: keep only harmful examples of this category (the paper anchors on one
    category, "illegal activities", 10 examples); matched case-insensitively as a substring
    of ``Example.category``. Sampling is seeded; the safe sets reuse the harmful prompts.
    ``use_pair_refusals``: for ``safe2`` use the data set's own refusal
    (``meta["refusal"]``) when present instead of a template. ``harmful`` overrides the
    source (tests, custom anchors)."""
    pool = list(harmful) if harmful is not None else _load_harmful(source, n, seed, attack_kwargs or {})
    pool = [e for e in pool if e.response]
    if category:
        want = category.lower()
        pool = [e for e in pool if e.category and want in e.category.lower()]
        if not pool:
            raise BrittleError(f"no harmful anchor examples in category {category!r} ({source})")
    if not pool:
        raise BrittleError(f"anchor source {source!r} gave no harmful prompt+answer pairs")
    rng = random.Random(seed)
    if len(pool) > n:
        pool = rng.sample(pool, n)
    elif len(pool) < n:
        log.warning("only %d harmful anchor examples available (asked for %d)", len(pool), n)
    sets: dict[str, list[Example]] = {"harmful": pool}
    for i, style in enumerate(safe_styles, start=1):
        srng = random.Random(f"{seed}-{style}")
        safe = []
        for e in pool:
            pair_refusal = e.meta.get("refusal") if use_pair_refusals and i > 1 else None
            if pair_refusal:
                s = e.with_response(str(pair_refusal), anchor_style="pair")
                s.id = f"{e.id}-pair"
            else:
                s = refuse(e, style, srng)
            safe.append(s)
        sets[f"safe{i}"] = safe
    return sets
