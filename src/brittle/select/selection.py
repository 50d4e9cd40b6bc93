"""Selections of K pool examples: top-K / bottom-K by score, random-K, format-K.

A selection is a list of pool indices in rank order. :func:`write_selection` writes it as
JSONL, one example per line (the :class:`~brittle.data.schema.Example` dict, so
``read_examples`` / ``brittle attack --data`` read it back), with the selection name, rank
and score both at the top level and under ``meta["select"]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brittle.data.schema import Example
from brittle.select.scores import _np, top_indices

log = logging.getLogger(__name__)

FORMATS = ("list", "numbered", "math", "code", "short")


@dataclass
class Selection:
    name: str
    indices: list[int]
    scores: list[float] | None = None  # score of each selected example (rank order)
    info: dict[str, Any] = field(default_factory=dict)
    source: Sequence[Example] | None = None  # examples the indices refer to (default: the pool)


def top_k(scores: Any, k: int) -> list[int]:
    """Indices of the k highest scores, best first (ties: lower index first)."""
    return [int(i) for i in top_indices(scores, k)]


def bottom_k(scores: Any, k: int) -> list[int]:
    """Indices of the k lowest scores, lowest first (ties: lower index first)."""
    s = _np(scores)
    return [int(i) for i in top_indices(np.where(np.isnan(s), np.nan, -s), k)]


def random_k(n: int, k: int, seed: int) -> list[int]:
    """k distinct indices of range(n), uniformly at random (``numpy.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.permutation(n)[: max(0, min(k, n))]]


def _detector() -> Callable[[str], set[str]]:
    from brittle.data.formats import detect_formats

    return detect_formats


def formats_of(examples: Sequence[Example], detect: Callable[[str], set[str]] | None = None) -> list[set[str]]:
    """Formats of each example's response (empty set for a prompt-only example)."""
    detect = detect or _detector()
    return [set(detect(e.response)) if e.response else set() for e in examples]


def format_k(
    examples: Sequence[Example],
    fmt: str,
    k: int,
    seed: int,
    detect: Callable[[str], set[str]] | None = None,
) -> list[int]:
    """k examples (seeded random) whose response has format ``fmt`` (e.g. "list", "math");
    fewer when the pool has fewer such examples (logged)."""
    fmts = formats_of(examples, detect)
    eligible = [i for i, f in enumerate(fmts) if fmt in f]
    if len(eligible) < k:
        log.warning("only %d pool examples have format %r (asked for %d)", len(eligible), fmt, k)
    pick = random_k(len(eligible), k, seed)
    return [eligible[j] for j in pick]


def format_makeup(
    examples: Sequence[Example],
    detect: Callable[[str], set[str]] | None = None,
    formats: Iterable[str] = FORMATS,
) -> dict[str, float]:
    """{"n": N, fmt: share of examples whose response has fmt, "mean_words": …}."""
    fmts = formats_of(examples, detect)
    n = len(examples)
    out: dict[str, float] = {"n": n}
    for f in formats:
        out[f] = (sum(f in s for s in fmts) / n) if n else float("nan")
    words = [len((e.response or "").split()) for e in examples]
    out["mean_words"] = float(np.mean(words)) if words else float("nan")
    return out


def selection_records(pool: Sequence[Example], sel: Selection) -> list[dict[str, Any]]:
    """One dict per selected example: Example fields + selection, rank (1 = first), score."""
    recs = []
    for rank, idx in enumerate(sel.indices, start=1):
        ex = pool[idx]
        score = None if sel.scores is None else float(sel.scores[rank - 1])
        tag = {"selection": sel.name, "rank": rank, "score": score, "pool_index": idx}
        d = ex.to_dict()
        d["meta"] = {**d.get("meta", {}), "select": tag}
        d.update({"selection": sel.name, "rank": rank, "score": score})
        recs.append(d)
    return recs


def write_selection(path: str | Path, pool: Sequence[Example], sel: Selection) -> Path:
    """Write a selection as JSONL (atomic: tmp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in selection_records(pool, sel))
    tmp.replace(path)
    return path


def read_selection(path: str | Path) -> list[Example]:
    """Examples of a selection file (rank/score stay in ``meta["select"]``)."""
    from brittle.errors import DataError

    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(Example.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise DataError(f"{path}:{lineno}: not a selection record ({e})") from None
    return out
