"""Held-out evaluation for rule refinement: a selection half and a report half per rule.

Choosing the lowest-entropy rewrite on the same scenarios that report its entropy is a
winner's curse (the minimum of k noisy estimates is biased low). So each rule's scenario
pool is split in two, deterministically:

* **selection** half — prompt refinement chooses its rewrite here, GRPO computes its
  reward here;
* **report** half — the entropy before/after stated for the chosen rewrite.

The split is seeded and stratified: within each stratum (the scenario's ``category``)
scenarios are ordered by ``sha256(seed, rule_id, scenario_id)`` and dealt alternately to
the two halves (the side that gets a stratum's first scenario alternates across strata, so
the halves differ in size by at most one); each half then interleaves the strata round-robin,
so cutting it to its first ``n`` scenarios keeps the categories spread. The rule id is part
of the key, so rules get different (but reproducible) splits.

A rewrite's held-out verdict compares the entropy change on both halves
(ΔH = H(original) − H(rewrite), > ε = the rewrite is less ambiguous; ε = 1e-6 bits so that
float noise on near-1-bit entropies is not a gain):

* ``generalises``          ΔH_selection > ε and ΔH_report > ε
* ``does not generalise``  ΔH_selection > ε and ΔH_report ≤ ε
* ``no gain``              ΔH_selection ≤ ε (never chosen)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest

GENERALISES = "generalises"
DOES_NOT_GENERALISE = "does not generalise"
NO_GAIN = "no gain"
EPS = 1e-6  # bits: smaller entropy changes are not gains


@dataclass(frozen=True)
class ScenarioSplit:
    """One rule's disjoint selection / report scenario ids (in the order they are used)."""

    rule_id: str
    seed: int
    selection: tuple[str, ...]
    report: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"rule_id": self.rule_id, "seed": self.seed, "selection": list(self.selection), "report": list(self.report)}


def _key(seed: int, rule_id: str, scenario_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{rule_id}\x1f{scenario_id}".encode()).hexdigest()


def _interleave(groups: Iterable[Sequence[str]]) -> list[str]:
    return [x for row in zip_longest(*groups) for x in row if x is not None]


def split_scenarios(
    items: Sequence[tuple[str, str | None]],
    rule_id: str,
    *,
    seed: int = 0,
    n_selection: int | None = None,
    n_report: int | None = None,
) -> ScenarioSplit:
    """Split ``items`` = [(scenario_id, category)] into disjoint halves for ``rule_id``
    (see the module docstring); each half is cut to its first ``n_*`` scenarios."""
    strata: dict[str, list[str]] = {}
    for sid, cat in items:
        strata.setdefault(str(cat or "-"), []).append(sid)
    sel: list[list[str]] = []
    rep: list[list[str]] = []
    first_to_selection = True
    for cat in sorted(strata, key=lambda c: _key(seed, rule_id, "stratum:" + c)):
        ids = sorted(strata[cat], key=lambda s: _key(seed, rule_id, s))
        a, b = ids[0::2], ids[1::2]
        if len(ids) % 2:  # odd stratum: the next odd one starts on the other side
            first_to_selection = not first_to_selection
            if first_to_selection:
                a, b = b, a
        sel.append(a)
        rep.append(b)
    selection, report = _interleave(sel), _interleave(rep)
    return ScenarioSplit(
        rule_id=rule_id,
        seed=seed,
        selection=tuple(selection[:n_selection] if n_selection is not None else selection),
        report=tuple(report[:n_report] if n_report is not None else report),
    )


def heldout_verdict(delta_selection: float, delta_report: float) -> str:
    """``generalises`` / ``does not generalise`` / ``no gain`` from ΔH on the two halves
    (ΔH = H(original) − H(rewrite); a gain is ΔH > :data:`EPS`; NaN counts as no gain)."""
    if not delta_selection > EPS:
        return NO_GAIN
    return GENERALISES if delta_report > EPS else DOES_NOT_GENERALISE
