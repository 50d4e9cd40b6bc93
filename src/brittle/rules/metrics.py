"""Ambiguity metrics on a judgment table (pure pandas; no models).

Input: a DataFrame with columns ``rule_id, scenario_id, strategy, judge, p_comply`` and
``verdict`` ("comply" / "violate" / None = unscored). Unscored rows are dropped, never
counted as either verdict.

Readers and permutations. A panel *member* (``judge``) is one model read through one
prompt template (an answer-order permutation: ``default`` / ``swapped``); a *reader* is the
model itself (column ``reader``; derived from the judge spec by dropping ``template=`` when
the column is missing). Entropy measures disagreement between readers, so each reader's
permutations are pooled first: for reader m, item i = (rule, scenario, strategy) and its
scored permutations t ∈ T_m,

    p̄_m(i) = (1/|T_m|) Σ_t p_comply(m, t, i)            v_m(i) = [p̄_m(i) ≥ 0.5]

(averaging p cancels a pure letter bias, which the swapped template exists to expose).

Definitions (H = binary entropy in bits, H(q) = −q·log2 q − (1−q)·log2(1−q), H(0)=H(1)=0):

* panel entropy of one (rule, scenario) under strategy s, **votes** variant (the paper's
  judgment distribution over readers): q = (1/M) Σ_m v_m; H(q). **mean_p** variant:
  q = (1/M) Σ_m p̄_m; H(q). With one reader the votes entropy is 0 by definition (nobody to
  disagree with) and the mean_p entropy is that reader's own uncertainty; mean_p is smooth,
  which the RL reward needs.
* across strategies: the same, pooling all (reader, strategy) verdicts of the pair.
* template sensitivity (disagreement *within* a reader, across permutations), per reader
  m and item i with ≥ 2 scored permutations: u_m(i) = share of permutations whose verdict
  is "comply"; ``template_entropy`` = mean H(u_m(i)); ``template_disagreement`` = share of
  (m, i) with 0 < u_m(i) < 1. Reported separately: it is not ambiguity of the rule.
* unanimous agreement (meaning preservation): U = scenarios where the original rule's
  readers are unanimous (all v_m equal, ≥ 1 reader); for a rewrite with reader verdicts
  v'_m, its panel verdict is the strict majority of the v'_m (a tie is no verdict);
  agreement = |{i ∈ U : majority(v'(i)) = v(i)}| / |U| (NaN when U is empty).
* no consensus: the panel is not unanimous (0 < q < 1, votes).
* flip rate of strategy s for a judge (a member, not pooled): share of (rule, scenario) where the judge's verdict
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
        h = 0.0 - (np.where(q > 0, q * np.log2(q), 0.0) + np.where(q < 1, (1 - q) * np.log2(1 - q), 0.0))
    return float(h) if h.ndim == 0 else h


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with a verdict (unscored judgments are excluded from every metric)."""
    return df[df["verdict"].isin(["comply", "violate"])].copy()


def reader_of(judge: str) -> str:
    """The model behind a judge spec: ``m?template=swapped&T=2`` -> ``m?T=2``."""
    model, _, query = judge.partition("?")
    keep = [kv for kv in query.split("&") if kv and not kv.startswith("template=")]
    return model + ("?" + "&".join(keep) if keep else "")


def with_reader(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``reader`` column (derived from ``judge`` when absent or incomplete)."""
    if "reader" in df and df["reader"].notna().all():
        return df
    out = df.copy()
    out["reader"] = [reader_of(str(j)) for j in out["judge"]]
    return out


def pool_readers(df: pd.DataFrame, keys: Sequence[str] = ("rule_id", "scenario_id", "strategy")) -> pd.DataFrame:
    """One row per (reader, item): ``p`` = p̄ (mean p_comply over the reader's scored
    permutations), ``comply`` = [p̄ ≥ 0.5], ``n_perm``; see the module docstring."""
    d = with_reader(scored(df))
    d["p_comply"] = d["p_comply"].astype(float)
    g = d.groupby(["reader", *keys], sort=True)["p_comply"].agg(["mean", "size"]).reset_index()
    g = g.rename(columns={"mean": "p", "size": "n_perm"})
    g["comply"] = (g["p"] >= 0.5).astype(float)
    return g


def panel_entropy(
    df: pd.DataFrame,
    *,
    strategies: Sequence[str] | None = (BASELINE,),
    mode: str = "votes",
    by: Sequence[str] = ("rule_id", "scenario_id"),
) -> pd.DataFrame:
    """Per (rule, scenario) [or ``by``]: ``q`` (share / mean p̄ of readers saying comply),
    ``entropy`` (bits), ``n`` (reader × strategy verdicts pooled). Permutations are pooled
    per reader first (:func:`pool_readers`). ``strategies=None`` pools every strategy."""
    if mode not in ("votes", "mean_p"):
        raise ValueError("mode must be 'votes' or 'mean_p'")
    d = df if strategies is None else df[df["strategy"].isin(list(strategies))]
    d = pool_readers(d)
    d["x"] = d["comply"] if mode == "votes" else d["p"]
    g = d.groupby(list(by), sort=True)["x"].agg(["mean", "size"]).reset_index()
    g = g.rename(columns={"mean": "q", "size": "n"})
    g["entropy"] = binary_entropy(g["q"].to_numpy()) if len(g) else []
    return g


def template_sensitivity(df: pd.DataFrame, *, strategies: Sequence[str] | None = None) -> dict:
    """Disagreement across permutations *within* each reader (module docstring):
    ``{"template_entropy", "template_disagreement", "items", "by_reader": {reader: {...}}}``;
    only (reader, item) with ≥ 2 scored permutations count (NaN when there are none)."""
    d = with_reader(scored(df))
    if strategies is not None:
        d = d[d["strategy"].isin(list(strategies))]
    d["x"] = (d["verdict"] == "comply").astype(float)
    g = d.groupby(["reader", "rule_id", "scenario_id", "strategy"])["x"].agg(["mean", "size"]).reset_index()
    g = g[g["size"] >= 2].copy()
    g["h"] = binary_entropy(g["mean"].to_numpy()) if len(g) else []
    g["split"] = ((g["mean"] > 0) & (g["mean"] < 1)).astype(float)

    def stats(t: pd.DataFrame) -> dict:
        n = len(t)
        return {
            "template_entropy": float(t["h"].mean()) if n else float("nan"),
            "template_disagreement": float(t["split"].mean()) if n else float("nan"),
            "items": n,
        }

    return {**stats(g), "by_reader": {str(r): stats(t) for r, t in g.groupby("reader")}}


def unanimous_agreement(
    original: pd.DataFrame, rewrite: pd.DataFrame, scenario_ids: Sequence[str] | None = None
) -> dict:
    """Does a rewrite classify the scenarios where the original's readers were unanimous the
    same way? Each table holds one rule text's judgments (strategy "none"); returns
    ``{"agreement", "unanimous", "flipped"}`` (module docstring; agreement NaN if none)."""

    def verdicts(t: pd.DataFrame) -> pd.Series:
        if "strategy" in t:
            t = t[t["strategy"] == BASELINE]
        if scenario_ids is not None:
            t = t[t["scenario_id"].isin(list(scenario_ids))]
        return pool_readers(t.assign(strategy=BASELINE), keys=("scenario_id",)).groupby("scenario_id")["comply"].mean()

    o = verdicts(original)
    o = o[(o == 0) | (o == 1)]
    r = verdicts(rewrite)
    majority = {sid: (1.0 if q > 0.5 else 0.0 if q < 0.5 else None) for sid, q in r.items()}
    same = [majority.get(sid) == v for sid, v in o.items()]
    n = len(same)
    return {"agreement": float(np.mean(same)) if n else float("nan"), "unanimous": n, "flipped": int(n - sum(same))}


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
    ts = template_sensitivity(df)
    return {
        "mode": mode,
        "n_judgments": len(df),
        "n_unscored": int(len(df) - len(scored(df))),
        "judges": sorted(df["judge"].unique().tolist()),
        "readers": sorted(with_reader(df)["reader"].unique().tolist()),
        "template_sensitivity": {
            "template_entropy": _nan_none(ts["template_entropy"]),
            "template_disagreement": _nan_none(ts["template_disagreement"]),
            "items": ts["items"],
            "by_reader": {r: {k: _nan_none(v) if isinstance(v, float) else v for k, v in st.items()}
                          for r, st in ts["by_reader"].items()},
        },
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
