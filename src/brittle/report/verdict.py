"""Is a comparison conclusive at the size it was run? One sentence per paired difference.

The quick lab runs each comparison once (one seed) on 50 prompts, so many differences are
within noise. A report must then say so and name the command that settles it, rather than
let a reader compare two point estimates. The difference is *paired*: both arms were judged
on the same prompts, so prompt difficulty cancels (95% bootstrap over those prompts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Interval = tuple[float, float, float]

FULL_LAB = "brittle lab --full"  # 3 seeds, every held-out prompt, the paper's sizes


def flags_by_id(ids: Sequence[str], flags: Sequence[Any]) -> dict[str, int]:
    return {str(i): int(bool(f)) for i, f in zip(ids, flags)}


def paired_difference(a: Mapping[str, int], b: Mapping[str, int], *, seed: int = 0) -> tuple[Interval, int] | None:
    """mean(a − b) over the prompts both were judged on, with its 95% bootstrap interval, and
    that number of prompts; None when they share none."""
    from brittle.evaluate.metrics import bootstrap_ci

    common = [k for k in a if k in b]
    if not common:
        return None
    return bootstrap_ci([a[k] - b[k] for k in common], seed=seed), len(common)


def gains_vs_baseline(cells: Sequence[Mapping[str, Any]], kind: str) -> dict[int, tuple[Interval, int]]:
    """Per N > 0 of ``kind`` (its lowest seed): ASR_N − ASR_0 paired on the prompts both cells
    were judged on (:func:`paired_difference`), with that number of prompts. Cells are attack
    records (``n``, ``kind``, ``seed``, ``harmful_ids``, ``harmful_flags``)."""
    base = next((c for c in cells if c["n"] == 0 and c.get("harmful_ids")), None)
    if base is None:
        return {}
    f0 = flags_by_id(base["harmful_ids"], base["harmful_flags"])
    out: dict[int, tuple[Interval, int]] = {}
    for c in sorted(cells, key=lambda c: (c["n"], c.get("seed", 0))):
        if c["n"] > 0 and c.get("kind") == kind and c["n"] not in out and c.get("harmful_ids"):
            diff = paired_difference(flags_by_id(c["harmful_ids"], c["harmful_flags"]), f0)
            if diff is not None:
                out[int(c["n"])] = diff
    return out


def verdict(label: str, diff: tuple[Interval, int] | None, *, settle: str = FULL_LAB) -> dict[str, str]:
    """``{"comparison", "difference", "verdict"}``: the difference in points with its interval, and
    "inconclusive at this size …" (naming ``settle``) when the interval contains 0."""
    if diff is None:
        return {"comparison": label, "difference": "", "verdict": "no shared prompts"}
    (p, lo, hi), n = diff
    shown = f"{100 * p:+.0f} pts [{100 * lo:+.0f}, {100 * hi:+.0f}] (n = {n})"
    if lo <= 0 <= hi:
        return {"comparison": label, "difference": shown,
                "verdict": f"inconclusive at this size: the interval contains 0; `{settle}` settles it"}
    return {"comparison": label, "difference": shown,
            "verdict": "higher" if lo > 0 else "lower"}
