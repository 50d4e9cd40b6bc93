"""Judge-error correction of a rate from a few human labels (Rogan & Gladen 1978).

A judge flags a reply *positive* (e.g. the refusal-phrase judge: "not refused"); a person
labels a sample of replies *harmful* or not. On the labelled pairs (judge, human):

    Se = P(judge+ | human+) = TP / (TP + FN)      (sensitivity = recall)
    Sp = P(judge− | human−) = TN / (TN + FP)      (specificity)
    precision = P(human+ | judge+) = TP / (TP + FP)

If the judge's raw positive rate on a run's n prompts is p̂ = k / n, the prevalence of the
human label (the harmfulness rate) is estimated by

    π̂ = (p̂ + Sp − 1) / (Se + Sp − 1),  clipped to [0, 1],

which needs Se + Sp − 1 > 0 (a judge better than chance); otherwise there is no estimate.
The assumption: the judge errs on this run's replies as it does on the labelled sample
(labels drawn at random from the same run make that plausible, not certain).

Interval: percentile bootstrap over *both* sources of error. Resampling the m labelled
pairs with replacement is a multinomial draw of the 4 confusion counts with the observed
cell shares; resampling the n verdicts is a binomial draw k* ~ Bin(n, p̂). Each replicate
gives π* = RG(k*/n, Se*, Sp*); replicates where Se* or Sp* is undefined or Se* + Sp* ≤ 1 are
dropped and counted (``n_boot_valid``). Simulated coverage of the 95% interval (200 reps,
tests/evaluate/test_calibration.py; settings in docs/evaluate.md): 0.925–0.955 when the labels
come from the same population as, but not from, the rated prompts (one cell's rate corrected
with labels pooled over a lab), 0.885 at a 10% true rate with 40 labels (a sample with no
harmful label gives no estimate); conservative (0.935–1.0) when the labels are drawn from the
rated prompts themselves, since a sample with extra false positives then raises p̂ and lowers
Sp together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brittle.evaluate.metrics import wilson_interval

METHOD = ("Rogan–Gladen: π = (p̂ + Sp − 1)/(Se + Sp − 1), clipped to [0, 1]; 95% percentile "
          "bootstrap over the labelled pairs (multinomial) and the run's prompts (binomial)")


@dataclass(frozen=True)
class Confusion:
    """Counts of (judge verdict, human label) pairs; positive = judge+/human+ ("harmful")."""

    tp: int
    fn: int
    fp: int
    tn: int

    @classmethod
    def from_pairs(cls, judge: Sequence[bool], human: Sequence[bool]) -> Confusion:
        j = np.asarray(judge, dtype=bool)
        h = np.asarray(human, dtype=bool)
        if j.shape != h.shape:
            raise ValueError(f"{j.size} judge verdicts but {h.size} human labels")
        return cls(int((j & h).sum()), int((~j & h).sum()), int((j & ~h).sum()), int((~j & ~h).sum()))

    @property
    def m(self) -> int:
        return self.tp + self.fn + self.fp + self.tn


def rogan_gladen(p_hat: float, se: float, sp: float) -> float | None:
    """π = (p̂ + Sp − 1)/(Se + Sp − 1) clipped to [0, 1]; None when Se + Sp − 1 ≤ 0."""
    denom = se + sp - 1
    if not denom > 0:
        return None
    return float(min(1.0, max(0.0, (p_hat + sp - 1) / denom)))


def judge_accuracy(c: Confusion) -> dict[str, Any]:
    """Sensitivity (= recall), specificity, precision and accuracy, each (p, lo, hi) with a
    Wilson 95% interval (NaNs where the denominator is 0), plus the raw counts."""
    return {
        "n": c.m, "tp": c.tp, "fn": c.fn, "fp": c.fp, "tn": c.tn,
        "sensitivity": list(wilson_interval(c.tp, c.tp + c.fn)),
        "specificity": list(wilson_interval(c.tn, c.tn + c.fp)),
        "precision": list(wilson_interval(c.tp, c.tp + c.fp)),
        "recall": list(wilson_interval(c.tp, c.tp + c.fn)),
        "accuracy": list(wilson_interval(c.tp + c.tn, c.m)),
    }


def degenerate_reason(c: Confusion) -> str | None:
    """Why no corrected estimate exists for this labelled sample (None if one does)."""
    if c.tp + c.fn == 0:
        return "no labelled reply is harmful: the judge's sensitivity is undefined"
    if c.tn + c.fp == 0:
        return "every labelled reply is harmful: the judge's specificity is undefined"
    se, sp = c.tp / (c.tp + c.fn), c.tn / (c.tn + c.fp)
    if se + sp - 1 <= 0:
        return (f"the judge is no better than chance on the labels (Se {se:.2f} + Sp {sp:.2f} − 1 ≤ 0): "
                "its verdicts carry no information to correct")
    return None


def corrected_rate(
    k: int, n: int, c: Confusion, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
) -> dict[str, Any]:
    """Corrected prevalence from k judge-positives out of n and the labelled confusion ``c``.

    Returns ``{"raw": (p̂, lo, hi) Wilson, "corrected": (π̂, lo, hi) | None, "reason": str | None,
    "se", "sp", "notes": boundary_notes(...), "n_boot_valid"}`` (see the module docstring)."""
    out: dict[str, Any] = {"n": n, "k": k, "raw": list(wilson_interval(k, n)), "corrected": None,
                           "reason": None, "n_boot": n_boot, "n_boot_valid": 0}
    if n <= 0:
        out["reason"] = "no judged replies"
        return out
    reason = degenerate_reason(c)
    if reason:
        out["reason"] = reason
        return out
    se, sp = c.tp / (c.tp + c.fn), c.tn / (c.tn + c.fp)
    out.update(se=se, sp=sp, notes=boundary_notes(k, n, c))
    point = rogan_gladen(k / n, se, sp)
    boots = _bootstrap(k, n, c, n_boot, np.random.default_rng(seed))
    out["n_boot_valid"] = int(boots.size)
    if boots.size == 0:
        out["reason"] = "no bootstrap replicate had Se* + Sp* > 1"
        return out
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    out["corrected"] = [float(point), float(lo), float(hi)]  # type: ignore[arg-type]
    return out


NOTE_CLIPPED = "clipped"
NOTE_RAW_EDGE = "raw at 0/100%"
NOTE_EMPTY_CELL = "empty confusion cell"


def boundary_notes(k: int, n: int, c: Confusion) -> list[str]:
    """Where the percentile bootstrap understates uncertainty or the model does not fit:

    * ``clipped``: p̂ lies outside [1 − Sp, Se], the range the labelled judge errors allow, so
      π was clipped to 0 or 1: the pooled errors do not describe this rate (label it apart);
    * ``raw at 0/100%``: k = 0 or n, resampling the prompts adds no spread;
    * ``empty confusion cell``: a zero TP/FN/FP/TN count, so Se or Sp has no spread."""
    se, sp = c.tp / (c.tp + c.fn), c.tn / (c.tn + c.fp)
    notes = []
    if not (1 - sp) <= k / n <= se:
        notes.append(NOTE_CLIPPED)
    if k in (0, n):
        notes.append(NOTE_RAW_EDGE)
    if 0 in (c.tp, c.fn, c.fp, c.tn):
        notes.append(NOTE_EMPTY_CELL)
    return notes


def _bootstrap(k: int, n: int, c: Confusion, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Valid replicates π* (see module docstring), vectorised over ``n_boot``."""
    cells = np.array([c.tp, c.fn, c.fp, c.tn], dtype=float)
    tp, fn, fp, tn = rng.multinomial(c.m, cells / cells.sum(), size=n_boot).T
    p_star = rng.binomial(n, k / n, size=n_boot) / n
    pos, neg = tp + fn, tn + fp
    ok = (pos > 0) & (neg > 0)
    se = np.where(ok, tp / np.maximum(pos, 1), np.nan)
    sp = np.where(ok, tn / np.maximum(neg, 1), np.nan)
    denom = se + sp - 1
    ok &= denom > 0
    pi = (p_star[ok] + sp[ok] - 1) / denom[ok]
    return np.clip(pi, 0.0, 1.0)

