"""`brittle rules refine`: prompt-based rule refinement (He et al. 2025, §rule refinement).

For each target rule (given, or the ``top_rules`` most ambiguous in ``judgments.parquet``):

1. a proposer model writes ``k`` rewrites (sampled, seeds 0..k−1) from the shipped refine prompt;
2. the panel judges the original and every rewrite on *held-out* scenarios (ones not used to
   pick the rule), strategy "none"; entropy = mean panel entropy over those scenarios
   (``mode``: 'mean_p' by default — smooth and meaningful for small panels — or 'votes');
3. meaning shift = 1 − cos(embedding(original), embedding(rewrite)) (MiniLM, see
   :mod:`brittle.rules.embed`), plus a judge's P("same meaning") from its next-token
   probabilities;
4. a rewrite is *kept* if it lowers entropy and its similarity ≥ ``min_similarity``.

Writes ``refinements.json`` and ``form.html`` (a person marks "meaning shifted?").
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
from brittle.rules.judge import DEFAULT_PANEL, JudgeMember, OptionScorer, RulesJudgeConfig, _scorer

log = logging.getLogger(__name__)


class RulesRefineConfig(StageConfig):
    rules: Path | None = Field(None, description="Rules YAML (default: shipped).")
    rule_ids: list[str] | None = Field(None, description="Rules to refine (default: the most ambiguous in judgments).")
    judgments: Path | None = Field(None, description="judgments.parquet used to pick rules (default: run_dir/judgments.parquet).")
    top_rules: int = Field(2, description="How many of the most ambiguous rules to refine.")
    k: int = Field(3, description="Rewrites proposed per rule.")
    proposer: str = Field("embedded:smollm2-135m", description="Model spec that writes the rewrites.")
    panel: list[str] = Field(default_factory=lambda: list(DEFAULT_PANEL), description="Judge panel specs.")
    scenarios: str = Field("shipped", description="Scenario source (as in `rules judge`).")
    n_heldout: int = Field(8, description="Held-out scenarios used to score rewrites.")
    mode: str = Field("mean_p", description="Entropy variant: 'mean_p' or 'votes'.")
    min_similarity: float = Field(0.6, description="Keep rewrites with embedding cosine ≥ this.")
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


def heldout_scenarios(cfg: RulesRefineConfig, used: set[str]):
    from brittle.rules.data import read_scenarios

    pool = read_scenarios(None if cfg.scenarios == "shipped" else cfg.scenarios)
    fresh = [s for s in pool if s.id not in used and s.messages[-1]["role"] == "assistant"]
    if not fresh:
        log.warning("no held-out scenarios left; scoring rewrites on all scenarios")
        fresh = pool
    return fresh[: cfg.n_heldout]


def panel_entropy_of(
    rule_texts: Sequence[str],
    scenarios: Sequence[Any],
    members: Sequence[JudgeMember],
    models: dict[str, tuple[Any, Any]],
    *,
    mode: str = "mean_p",
    batch_size: int = 8,
) -> list[float]:
    """Mean panel entropy (strategy "none") over ``scenarios`` for each rule text."""
    import pandas as pd

    from brittle.rules.metrics import rule_entropy
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
            rows.append({"rule_id": rid, "scenario_id": sid, "strategy": "none", "judge": m.name, "p_comply": p, "verdict": v})
    t = rule_entropy(pd.DataFrame(rows), mode=mode).set_index("rule_id")["entropy"]
    return [float(t.get(f"r{i}", float("nan"))) for i in range(len(rule_texts))]


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
    """Prompt-based refinement; returns and writes ``refinements.json`` (+ ``form.html``)."""
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
    scenarios = heldout_scenarios(cfg, used)
    members = [JudgeMember.parse(p) for p in cfg.panel]

    mt = models.get(cfg.proposer)
    backend = make_backend(cfg.proposer, model=mt[0] if mt else None, tokenizer=mt[1] if mt else None)
    if mt is None and hasattr(backend, "model"):
        models[cfg.proposer] = (backend.model, backend.tokenizer)
    rewrites = propose(backend, [r.text for r in targets], cfg.k, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)

    local = next((m for m in members if m.kind == "hf"), None)
    results = []
    for rule, cands in zip(targets, rewrites):
        ent = panel_entropy_of([rule.text, *cands], scenarios, members, models, mode=cfg.mode, batch_size=cfg.batch_size)
        jm = None
        if local is not None:
            if local.load_spec not in models:
                from brittle.models.load import load_model

                models[local.load_spec] = load_model(local.load_spec)
            jm = models[local.load_spec]
        sims = similarity(rule.text, cands, method=cfg.embedder, fallback=jm)
        same = same_meaning_p(jm[0], jm[1], rule.text, cands) if jm else [float("nan")] * len(cands)
        cand_rows = []
        for j, text in enumerate(cands):
            kept = ent[j + 1] < ent[0] and sims[j] >= cfg.min_similarity
            cand_rows.append({
                "id": f"{rule.id}#{j}",
                "text": text,
                "well_formed": text.lower().startswith("your response must"),
                "entropy_after": ent[j + 1],
                "similarity": sims[j],
                "meaning_shift": 1.0 - sims[j],
                "same_meaning_p": same[j],
                "kept": bool(kept),
            })
        kept_rows = [c for c in cand_rows if c["kept"]]
        best = min(kept_rows, key=lambda c: c["entropy_after"]) if kept_rows else None
        results.append({
            "rule_id": rule.id,
            "original": rule.text,
            "entropy_before": ent[0],
            "candidates": cand_rows,
            "best": best,
        })
    out = {
        "method": "prompt",
        "proposer": cfg.proposer,
        "panel": [m.name for m in members],
        "mode": cfg.mode,
        "heldout_scenarios": [s.id for s in scenarios],
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
            })
    return rows
