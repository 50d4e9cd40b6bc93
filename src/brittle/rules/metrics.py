"""Ambiguity metrics on a judgment table (pure pandas; no models).

Input: a DataFrame with columns ``rule_id, scenario_id, strategy, judge, p_comply`` and
``verdict`` ("comply" / "violate" / None = unscored). Unscored rows are dropped, never
counted as either verdict.

Definitions (H = binary entropy in bits, H(q) = −q·log2 q − (1−q)·log2(1−q), H(0)=H(1)=0):

* panel entropy of one (rule, scenario) under strategy s, **votes** variant (the paper's
  judgment distribution): q = share of panel judges whose verdict is "comply"; H(q).
  **mean_p** variant: q = mean of the judges' p_comply; H(q). The mean_p variant also
  works with a single judge (it is then the judge's own uncertainty) and is smooth, which
  the RL reward needs; the votes variant is 0 whenever the panel agrees.
* across strategies: the same, pooling all (judge, strategy) judgments of the pair.
* no consensus: the panel is not unanimous (0 < q < 1, votes).
* flip rate of strategy s for a judge: share of (rule, scenario) where the judge's verdict
  under s differs from its verdict under "none".
* default leaning: agreement of the "none" verdict with the verdicts under narrow-leaning
  strategies vs broad-leaning ones; leaning = agree_broad − agree_narrow (>0: the default
  reads rules broadly).
* constraint effect: mean panel entropy under "none" minus mean panel entropy under each
  strategy (>0: specifying the strategy lowers ambiguity).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

BASELINE = "none"


def binary_entropy(q: float | np.ndarray) -> float | np.ndarray:
    """H(q) = −q log2 q − (1−q) log2 (1−q), in bits, with 0·log 0 = 0."""
    q = np.clip(np.asarray(q, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(q > 0, q * np.log2(q), 0.0) + np.where(q < 1, (1 - q) * np.log2(1 - q), 0.0))
    return float(h) if h.ndim == 0 else h


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a verdict (unscored judgments are excluded from every metric)."""
    return df[df["verdict"].isin(["comply", "violate"])].copy()


def panel_entropy(
    df: pd.DataFrame,
    *,
    strategies: Sequence[str] | None = (BASELINE,),
    mode: str = "votes",
    by: Sequence[str] = ("rule_id", "scenario_id"),
) -> pd.DataFrame:
    """Per (rule, scenario) [or ``by``]: ``q`` (share/mean comply), ``entropy`` (bits), ``n``.
    ``strategies=None`` pools every strategy (entropy across strategies too)."""
    d = scored(df)
    if strategies is not None:
        d = d[d["strategy"].isin(list(strategies))]
    if mode == "votes":
        d["x"] = (d["verdict"] == "comply").astype(float)
    elif mode == "mean_p":
        d["x"] = d["p_comply"].astype(float)
    else:
        raise ValueError("mode must be 'votes' or 'mean_p'")
    g = d.groupby(list(by), sort=True)["x"].agg(["mean", "size"]).reset_index()
    g = g.rename(columns={"mean": "q", "size": "n"})
    g["entropy"] = binary_entropy(g["q"].to_numpy()) if len(g) else []
    return g


def rule_entropy(df: pd.DataFrame, **kw) -> pd.DataFrame:
    """Per rule: mean panel entropy over its scenarios and share without consensus,
    sorted by entropy (most ambiguous first)."""
    pe = panel_entropy(df, **kw)
    out = pe.groupby("rule_id").agg(
        entropy=("entropy", "mean"),
        no_consensus=("q", lambda q: float(((q > 0) & (q < 1)).mean())),
        scenarios=("q", "size"),
    )
    return out.sort_values("entropy", ascending=False).reset_index()


def no_consensus_share(df: pd.DataFrame, *, strategies: Sequence[str] | None = (BASELINE,)) -> float:
    """Share of (rule, scenario) pairs where the panel is not unanimous."""
    pe = panel_entropy(df, strategies=strategies, mode="votes")
    return float(((pe["q"] > 0) & (pe["q"] < 1)).mean()) if len(pe) else float("nan")


def _paired(df: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Each non-baseline judgment joined with the same judge's baseline verdict."""
    d = scored(df)
    base = d[d["strategy"] == baseline][["judge", "rule_id", "scenario_id", "verdict"]]
    other = d[d["strategy"] != baseline]
    return other.merge(base, on=["judge", "rule_id", "scenario_id"], suffixes=("", "_base"))


def flip_rates(df: pd.DataFrame, *, baseline: str = BASELINE) -> pd.DataFrame:
    """Judge × strategy table of flip rates (share of (rule, scenario) whose verdict under
    the strategy differs from the judge's verdict under ``baseline``)."""
    p = _paired(df, baseline)
    p["flip"] = (p["verdict"] != p["verdict_base"]).astype(float)
    return p.pivot_table(index="judge", columns="strategy", values="flip", aggfunc="mean")


def overall_flip_rate(df: pd.DataFrame, *, baseline: str = BASELINE) -> float:
    """Share of all (judge, rule, scenario, strategy ≠ baseline) judgments that flip."""
    p = _paired(df, baseline)
    return float((p["verdict"] != p["verdict_base"]).mean()) if len(p) else float("nan")


def default_leaning(
    df: pd.DataFrame,
    leanings: dict[str, str],
    *,
    by: str = "judge",
    baseline: str = BASELINE,
) -> pd.DataFrame:
    """Per ``by`` (judge or rule_id): ``agree_narrow``, ``agree_broad`` = share of judgments
    under narrow-/broad-leaning strategies whose verdict equals the baseline verdict;
    ``leaning = agree_broad − agree_narrow``; ``label`` broad / narrow / even."""
    p = _paired(df, baseline)
    p["lean"] = p["strategy"].map(leanings)
    p = p[p["lean"].isin(["narrow", "broad"])]
    p["agree"] = (p["verdict"] == p["verdict_base"]).astype(float)
    t = p.pivot_table(index=by, columns="lean", values="agree", aggfunc="mean")
    for col in ("narrow", "broad"):
        if col not in t:
            t[col] = np.nan
    out = pd.DataFrame({"agree_narrow": t["narrow"], "agree_broad": t["broad"]})
    out["leaning"] = out["agree_broad"] - out["agree_narrow"]
    out["label"] = np.select([out["leaning"] > 0, out["leaning"] < 0], ["broad", "narrow"], "even")
    out.loc[out["leaning"].isna(), "label"] = "n/a"
    return out.reset_index()


def constraint_effect(df: pd.DataFrame, *, mode: str = "votes", baseline: str = BASELINE) -> pd.DataFrame:
    """Per strategy: mean panel entropy and its reduction vs the baseline
    (``delta = H_baseline − H_strategy``; > 0 means the constraint lowers ambiguity)."""
    rows = []
    strategies: Iterable[str] = sorted(set(scored(df)["strategy"]))
    h_base = panel_entropy(df, strategies=[baseline], mode=mode)["entropy"].mean()
    for s in strategies:
        h = panel_entropy(df, strategies=[s], mode=mode)["entropy"].mean()
        rows.append({"strategy": s, "entropy": float(h), "delta": float(h_base - h)})
    return pd.DataFrame(rows, columns=["strategy", "entropy", "delta"])


def summary(df: pd.DataFrame, leanings: dict[str, str], *, mode: str = "votes") -> dict:
    """Every headline number in one JSON-able dict (used by analyze and the report)."""
    pe_none = panel_entropy(df, strategies=[BASELINE], mode=mode)
    pe_all = panel_entropy(df, strategies=None, mode=mode)
    ce = constraint_effect(df, mode=mode)
    constrained = ce[ce["strategy"] != BASELINE]
    fr = flip_rates(df)
    return {
        "mode": mode,
        "n_judgments": len(df),
        "n_unscored": int(len(df) - len(scored(df))),
        "judges": sorted(df["judge"].unique().tolist()),
        "mean_entropy_none": float(pe_none["entropy"].mean()) if len(pe_none) else None,
        "mean_entropy_mean_p_none": float(panel_entropy(df, mode="mean_p")["entropy"].mean()) if len(pe_none) else None,
        "mean_entropy_across_strategies": float(pe_all["entropy"].mean()) if len(pe_all) else None,
        "mean_entropy_constrained": float(constrained["entropy"].mean()) if len(constrained) else None,
        "no_consensus_share": no_consensus_share(df),
        "overall_flip_rate": overall_flip_rate(df),
        "rule_entropy": rule_entropy(df, mode=mode).to_dict("records"),
        "flip_rates": {j: {s: _nan_none(v) for s, v in row.items()} for j, row in fr.iterrows()},
        "leaning_by_judge": _records(default_leaning(df, leanings, by="judge")),
        "leaning_by_rule": _records(default_leaning(df, leanings, by="rule_id")),
        "constraint_effect": _records(ce),
    }


def _nan_none(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def _records(t: pd.DataFrame) -> list[dict]:
    return [{k: (_nan_none(v) if isinstance(v, float) else v) for k, v in r.items()} for r in t.to_dict("records")]
