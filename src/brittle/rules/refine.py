"""`brittle rules refine`: prompt-based rule refinement (He et al. 2025, §rule refinement),
chosen on one half of the scenarios and reported on the other.

For each target rule (given, or the ``top_rules`` most ambiguous in ``judgments.parquet``):

1. the scenario pool = scenarios with a response that were *not* judged in
   ``judgments.parquet`` (those picked the rule); it is split per rule into a **selection**
   half and a **report** half (seeded, stratified by category: :mod:`brittle.rules.split`);
2. a proposer model writes ``k`` rewrites (sampled, seeds 0..k−1) from the shipped refine prompt;
3. the panel (readers × answer-order permutations, :mod:`brittle.rules.panel`) judges the
   original and every rewrite on both halves, strategy "none"; H = mean panel entropy between
   readers over a half (``mode``: 'mean_p' by default — smooth and defined for a one-reader
   panel — or 'votes'), ΔH = H(original) − H(rewrite);
4. meaning preservation, all on the selection half: embedding shift 1 − cos(e(original),
   e(rewrite)) (MiniLM, :mod:`brittle.rules.embed`); a judge's P("same meaning"); and the
   *unanimous agreement* — the share of selection scenarios where the original's readers were
   unanimous that the rewrite's panel classifies the same way
   (:func:`brittle.rules.metrics.unanimous_agreement`). A rewrite is a **meaning shift** when
   cos < ``min_similarity`` or agreement < ``min_agreement``;
5. a rewrite is *kept* when ΔH_selection > ε (1e-6 bits) and it is not a meaning shift; the *chosen*
   rewrite is the kept one with the lowest selection entropy. Only then is the report half
   read: ``entropy_before`` / ``entropy_after`` are report-half numbers, and ``heldout``
   says whether the selection gain held there (``generalises`` / ``does not generalise``).

Writes ``refinements.json`` (with the split: seed, sizes, ids) and ``form.html`` (a person
marks "meaning shifted?").
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from brittle.config import StageConfig
from brittle.errors import BrittleError
from brittle.rules.judge import (
    DEFAULT_PANEL,
    PANEL_HELP,
    PERMUTATIONS_HELP,
    RUN_DIR_HELP,
    JudgeMember,
    OptionScorer,
    RulesJudgeConfig,
    _scorer,
)
from brittle.rules.panel import DEFAULT_PERMUTATIONS, expand_panel

log = logging.getLogger(__name__)


class RulesRefineConfig(StageConfig):
    run_dir: Path = Field(Path("runs/rules"), description=RUN_DIR_HELP)
    rules: Path | None = Field(None, description="Rules YAML (default: shipped).")
    rule_ids: list[str] | None = Field(None, description="Rules to refine, comma-separated (default: the most ambiguous in judgments).")
    judgments: Path | None = Field(None, description="judgments.parquet used to pick rules (default: run_dir/judgments.parquet).")
    top_rules: int = Field(2, description="How many of the most ambiguous rules to refine.")
    k: int = Field(3, description="Rewrites proposed per rule.")
    proposer: str = Field("embedded:smollm2-135m", description="Model spec that writes the rewrites.")
    panel: list[str] = Field(default_factory=lambda: list(DEFAULT_PANEL), description=PANEL_HELP)
    permutations: list[str] = Field(default_factory=lambda: list(DEFAULT_PERMUTATIONS), description=PERMUTATIONS_HELP)
    scenarios: str = Field("shipped", description="Scenario source (as in `rules judge`).")
    n_selection: int = Field(8, description="Scenarios per rule in the selection half (choose the rewrite).")
    n_report: int = Field(8, description="Scenarios per rule in the report half (state its entropy).")
    split_seed: int = Field(0, description="Seed of the per-rule selection/report split.")
    mode: str = Field("mean_p", description="Entropy variant: 'mean_p' or 'votes'.")
    min_similarity: float = Field(0.6, description="Meaning shift when embedding cosine < this.")
    min_agreement: float = Field(
        1.0, description="Meaning shift when the share of unanimous selection scenarios classified the same way < this."
    )
    temperature: float = Field(0.8, description="Sampling temperature of the proposer.")
    max_new_tokens: int = Field(64, description="Max tokens per rewrite.")
    embedder: str = Field("auto", description="'minilm', 'model' (judge hidden states) or 'auto'.")
    batch_size: int = Field(8, description="Judge batch size.")


_PREFIXES = re.compile(r"^\s*(rewritten rule|revised rule|new rule|rule)\s*[:\-]\s*", re.IGNORECASE)


def clean_rewrite(text: str, max_chars: int = 400) -> str:
    """First non-empty line, without a 'Rewritten rule:' label or surrounding quotes."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = _PREFIXES.sub("", line).strip().strip('"\u201c\u201d\'').strip()
    return line[:max_chars]


def pick_rules(judgments: Path, top: int, mode: str = "votes") -> list[str]:
    """Ids of the ``top`` rules with the highest mean panel entropy (strategy "none")."""
    import pandas as pd

    from brittle.rules.metrics import rule_entropy

    re_ = rule_entropy(pd.read_parquet(judgments), mode=mode)
    if mode == "votes" and (re_["entropy"] == 0).all():  # unanimous panel: fall back to mean_p
        re_ = rule_entropy(pd.read_parquet(judgments), mode="mean_p")
    return re_["rule_id"].head(top).tolist()


def scenario_pool(source: str, used: set[str]):
    """Scenarios with a response that were not used to pick the rules (all, if none are left)."""
    from brittle.rules.data import read_scenarios

    pool = [s for s in read_scenarios(None if source == "shipped" else source) if s.messages[-1]["role"] == "assistant"]
    fresh = [s for s in pool if s.id not in used]
    if not fresh:
        log.warning("no scenarios left outside judgments.parquet; splitting all %d", len(pool))
        return pool
    return fresh


def rule_split(pool: Sequence[Any], rule_id: str, *, seed: int, n_selection: int, n_report: int):
    """This rule's :class:`~brittle.rules.split.ScenarioSplit` of ``pool`` (by category)."""
    from brittle.rules.split import split_scenarios

    sp = split_scenarios([(s.id, s.category) for s in pool], rule_id, seed=seed, n_selection=n_selection, n_report=n_report)
    if len(sp.selection) < n_selection or len(sp.report) < n_report:
        log.warning("%s: only %d selection + %d report scenarios (asked %d + %d)", rule_id, len(sp.selection),
                    len(sp.report), n_selection, n_report)
    if not sp.selection or not sp.report:
        raise BrittleError(f"{rule_id}: too few scenarios for a selection/report split ({len(pool)} in the pool)")
    return sp


def judge_texts(
    rule_texts: Sequence[str],
    scenarios: Sequence[Any],
    members: Sequence[JudgeMember],
    models: dict[str, tuple[Any, Any]],
    *,
    batch_size: int = 8,
):
    """Judgments (strategy "none") of every rule text on every scenario by every member:
    a DataFrame with ``rule_id`` = ``r<i>`` (index into ``rule_texts``) and the
    ``judgments.parquet`` columns used by :mod:`brittle.rules.metrics`."""
    import pandas as pd

    from brittle.rules.prompts import judge_prompt

    jcfg = RulesJudgeConfig(batch_size=batch_size, panel=[m.name for m in members])
    rows = []
    for m in members:
        fn = _scorer(m, jcfg, models)
        prompts, meta = [], []
        for i, text in enumerate(rule_texts):
            for s in scenarios:
                prompts.append(judge_prompt(text, None, s.messages, template_name=m.template))
                meta.append((f"r{i}", s.id))
        for (rid, sid), (p, _) in zip(meta, fn(prompts)):
            v = None if math.isnan(p) else ("comply" if p >= 0.5 else "violate")
            rows.append({"rule_id": rid, "scenario_id": sid, "strategy": "none", "judge": m.name, "reader": m.reader,
                         "p_comply": p, "verdict": v})
    return pd.DataFrame(rows)


def entropies(df: Any, n_texts: int, scenario_ids: Sequence[str] | None = None, *, mode: str = "mean_p") -> list[float]:
    """Mean panel entropy of each text ``r0..r<n−1>`` of :func:`judge_texts` over ``scenario_ids``."""
    from brittle.rules.metrics import rule_entropy

    d = df if scenario_ids is None else df[df["scenario_id"].isin(list(scenario_ids))]
    t = rule_entropy(d, mode=mode).set_index("rule_id")["entropy"] if len(d) else {}
    return [float(t.get(f"r{i}", float("nan"))) for i in range(n_texts)]


def panel_entropy_of(
    rule_texts: Sequence[str],
    scenarios: Sequence[Any],
    members: Sequence[JudgeMember],
    models: dict[str, tuple[Any, Any]],
    *,
    mode: str = "mean_p",
    batch_size: int = 8,
) -> list[float]:
    """Mean panel entropy (strategy "none", between readers) over ``scenarios`` for each rule text."""
    df = judge_texts(rule_texts, scenarios, members, models, batch_size=batch_size)
    return entropies(df, len(rule_texts), mode=mode)


def agreements(df: Any, n_texts: int, scenario_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Unanimous agreement of each rewrite ``r1..`` with the original ``r0`` on ``scenario_ids``."""
    from brittle.rules.metrics import unanimous_agreement

    orig = df[df["rule_id"] == "r0"]
    return [unanimous_agreement(orig, df[df["rule_id"] == f"r{i}"], scenario_ids) for i in range(1, n_texts)]


def candidate_row(
    cid: str,
    text: str,
    *,
    h_sel: tuple[float, float],
    h_rep: tuple[float, float],
    similarity: float,
    same_meaning: float,
    agreement: dict[str, Any],
    min_similarity: float,
    min_agreement: float,
) -> dict[str, Any]:
    """One rewrite's record: ``h_*`` = (H original, H rewrite) on the selection / report half.
    ``kept`` uses the selection half only; ``heldout`` compares the two halves."""
    from brittle.rules.split import EPS, heldout_verdict

    d_sel, d_rep = h_sel[0] - h_sel[1], h_rep[0] - h_rep[1]
    agr = agreement["agreement"]
    shifted = similarity < min_similarity or (not math.isnan(agr) and agr < min_agreement)
    return {
        "id": cid,
        "text": text,
        "well_formed": text.lower().startswith("your response must"),
        "entropy_after": h_rep[1],
        "entropy_after_selection": h_sel[1],
        "delta_selection": d_sel,
        "delta_report": d_rep,
        "heldout": heldout_verdict(d_sel, d_rep),
        "similarity": similarity,
        "meaning_shift": 1.0 - similarity,
        "same_meaning_p": same_meaning,
        "unanimous_agreement": agr,
        "unanimous": agreement["unanimous"],
        "flipped_unanimous": agreement["flipped"],
        "meaning_shifted": bool(shifted),
        "kept": bool(d_sel > EPS and not shifted),
    }


def same_meaning_p(model: Any, tok: Any, original: str, revised: Sequence[str]) -> list[float]:
    """A judge's P(A = "same meaning") for each (original, revised) pair (next-token probs)."""
    from brittle.rules.prompts import same_meaning_prompt

    if not revised:
        return []
    return [p for p, _ in OptionScorer(model, tok).score([same_meaning_prompt(original, r) for r in revised])]


def propose(backend: Any, rule_texts: Sequence[str], k: int, *, temperature: float, max_new_tokens: int) -> list[list[str]]:
    """``k`` cleaned rewrites per rule (sampling seeds 0..k−1; duplicates kept once)."""
    from brittle.models.backend import GenerationConfig
    from brittle.rules.prompts import refine_messages

    convs = [refine_messages(t) for t in rule_texts]
    out: list[list[str]] = [[] for _ in rule_texts]
    for seed in range(k):
        gen = GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        for i, reply in enumerate(backend.generate(convs, config=gen)):
            text = clean_rewrite(reply)
            if text and text not in out[i] and text != rule_texts[i]:
                out[i].append(text)
    return out


def run_refine(cfg: RulesRefineConfig, *, models: dict[str, tuple[Any, Any]] | None = None) -> dict[str, Any]:
    """Prompt-based refinement, chosen on the selection half and reported on the report half;
    returns and writes ``refinements.json`` (+ ``form.html``)."""
    import pandas as pd

    from brittle.models.backends import make_backend
    from brittle.rules.data import load_rules
    from brittle.rules.embed import similarity
    from brittle.rules.form import write_form
    from brittle.store import write_json

    models = dict(models or {})
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.echo("rules_refine")
    rules = {r.id: r for r in load_rules(cfg.rules)}
    jpath = cfg.judgments or cfg.run_dir / "judgments.parquet"
    used: set[str] = set()
    if cfg.rule_ids:
        ids = cfg.rule_ids
    elif Path(jpath).exists():
        ids = pick_rules(Path(jpath), cfg.top_rules)
    else:
        raise BrittleError(f"{jpath}: not found; pass rule_ids or run `brittle rules judge` first")
    if Path(jpath).exists():
        used = set(pd.read_parquet(jpath, columns=["scenario_id"])["scenario_id"])
    missing = [i for i in ids if i not in rules]
    if missing:
        raise BrittleError(f"unknown rule ids {missing}")
    targets = [rules[i] for i in ids]
    pool = scenario_pool(cfg.scenarios, used)
    by_id = {s.id: s for s in pool}
    members = expand_panel(cfg.panel, cfg.permutations)

    mt = models.get(cfg.proposer)
    backend = make_backend(cfg.proposer, model=mt[0] if mt else None, tokenizer=mt[1] if mt else None)
    if mt is None and hasattr(backend, "model"):
        models[cfg.proposer] = (backend.model, backend.tokenizer)
    rewrites = propose(backend, [r.text for r in targets], cfg.k, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)

    local = next((m for m in members if m.kind == "hf"), None)
    results = []
    for rule, cands in zip(targets, rewrites):
        sp = rule_split(pool, rule.id, seed=cfg.split_seed, n_selection=cfg.n_selection, n_report=cfg.n_report)
        n = 1 + len(cands)
        df = judge_texts([rule.text, *cands], [by_id[i] for i in sp.selection + sp.report], members, models,
                         batch_size=cfg.batch_size)
        h_sel = entropies(df, n, sp.selection, mode=cfg.mode)
        h_rep = entropies(df, n, sp.report, mode=cfg.mode)
        agr = agreements(df, n, sp.selection)
        jm = None
        if local is not None:
            if local.load_spec not in models:
                from brittle.models.load import load_model

                models[local.load_spec] = load_model(local.load_spec)
            jm = models[local.load_spec]
        sims = similarity(rule.text, cands, method=cfg.embedder, fallback=jm)
        same = same_meaning_p(jm[0], jm[1], rule.text, cands) if jm else [float("nan")] * len(cands)
        cand_rows = [
            candidate_row(
                f"{rule.id}#{j}", text, h_sel=(h_sel[0], h_sel[j + 1]), h_rep=(h_rep[0], h_rep[j + 1]),
                similarity=sims[j], same_meaning=same[j], agreement=agr[j],
                min_similarity=cfg.min_similarity, min_agreement=cfg.min_agreement,
            )
            for j, text in enumerate(cands)
        ]
        kept_rows = [c for c in cand_rows if c["kept"]]
        best = min(kept_rows, key=lambda c: c["entropy_after_selection"]) if kept_rows else None
        results.append({
            "rule_id": rule.id,
            "original": rule.text,
            "entropy_before": h_rep[0],
            "entropy_before_selection": h_sel[0],
            "candidates": cand_rows,
            "best": best,
            "split": sp.to_dict(),
        })
    out = {
        "method": "prompt",
        "proposer": cfg.proposer,
        "panel": [m.name for m in members],
        "readers": list(dict.fromkeys(m.reader for m in members)),
        "mode": cfg.mode,
        "split": {
            "seed": cfg.split_seed, "n_selection": cfg.n_selection, "n_report": cfg.n_report, "pool": len(pool),
            "stratified_by": "category", "excluded": "scenarios judged in judgments.parquet (they picked the rules)",
        },
        "rules": results,
    }
    write_json(cfg.run_dir / "refinements.json", out)
    write_form(revisions_for_form(out), cfg.run_dir / "form.html")
    return out


def revisions_for_form(refinements: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat list of (original, revised) pairs for the human meaning-shift form."""
    rows = []
    for r in refinements.get("rules", []):
        for c in r.get("candidates", []):
            rows.append({
                "id": c["id"],
                "rule_id": r["rule_id"],
                "original": r["original"],
                "revised": c["text"],
                "entropy_before": r["entropy_before"],
                "entropy_after": c["entropy_after"],
                "meaning_shift": c["meaning_shift"],
                "kept": c["kept"],
                "heldout": c.get("heldout"),
            })
    return rows
