"""`brittle rules grpo`: RL rule refinement with trl's GRPOTrainer (He et al. 2025).

The policy sees the refine prompt for an ambiguous rule and writes a rewrite r. Reward
(per completion, computed on a fixed batch of scenarios with the frozen judge panel):

    reward(r) = [H_sel(original) − H_sel(r)] − λ · (1 − cos(e(original), e(r)))

H_sel = mean panel entropy between readers over the rule's **selection** half of the
scenarios (``mode`` 'mean_p' by default: smooth, and defined for a one-reader panel), e =
sentence embedding (:mod:`brittle.rules.embed`). The scenario pool excludes the scenarios
in ``judgments.parquet`` (they picked the rule) and is split per rule exactly as in
``rules refine`` (:mod:`brittle.rules.split`). After training, the greedy rewrite is scored
on the **report** half, which training never saw: ``entropy_before`` / ``entropy_after``
are report-half numbers, the selection-half ones are kept separately, ``heldout`` says
whether the selection gain held, and ``unanimous_agreement`` / ``meaning_shifted`` check
the meaning on the selection half as in refine. The judges are separate model objects from
the policy (training must not move them). Writes ``grpo/`` (trainer output) and
``grpo.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from brittle.config import StageConfig
from brittle.errors import BrittleError
from brittle.rules.judge import DEFAULT_PANEL, PANEL_HELP, PERMUTATIONS_HELP, RUN_DIR_HELP
from brittle.rules.panel import DEFAULT_PERMUTATIONS

log = logging.getLogger(__name__)


class RulesGRPOConfig(StageConfig):
    run_dir: Path = Field(Path("runs/rules"), description=RUN_DIR_HELP)
    rules: Path | None = Field(None, description="Rules YAML (default: shipped).")
    rule_ids: list[str] | None = Field(None, description="Rules to refine, comma-separated (default: most ambiguous in judgments).")
    judgments: Path | None = Field(None, description="judgments.parquet (default: run_dir/judgments.parquet).")
    top_rules: int = Field(1, description="Most ambiguous rules to train on when rule_ids is unset.")
    policy: str = Field("embedded:smollm2-135m", description="Model spec of the policy (rewriter).")
    panel: list[str] = Field(default_factory=lambda: list(DEFAULT_PANEL), description="Frozen judge panel. " + PANEL_HELP)
    permutations: list[str] = Field(default_factory=lambda: list(DEFAULT_PERMUTATIONS), description=PERMUTATIONS_HELP)
    scenarios: str = Field("shipped", description="Scenario source for the reward.")
    n_selection: int = Field(4, description="Selection-half scenarios per rule (the reward is computed on them).")
    n_report: int = Field(8, description="Report-half scenarios per rule (the final rewrite is scored on them).")
    split_seed: int = Field(0, description="Seed of the per-rule selection/report split.")
    min_similarity: float = Field(0.6, description="Meaning shift when embedding cosine < this.")
    min_agreement: float = Field(1.0, description="Meaning shift when unanimous agreement on the selection half < this.")
    steps: int = Field(2, description="GRPO optimizer steps.")
    num_generations: int = Field(4, description="Completions per prompt (GRPO group size).")
    max_completion_length: int = Field(32, description="Max tokens per rewrite.")
    learning_rate: float = Field(1e-5, description="Learning rate.")
    shift_penalty: float = Field(1.0, description="λ: weight of the meaning-shift penalty.")
    mode: str = Field("mean_p", description="Entropy variant for the reward.")
    lora: bool = Field(True, description="Train LoRA adapters instead of all weights.")
    embedder: str = Field("auto", description="'minilm', 'model' (judge hidden states) or 'auto'.")
    seed: int = Field(0, description="Seed.")


def _text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return str(completion[-1].get("content", "")) if completion else ""
    return str(completion)


def make_reward(cfg: RulesGRPOConfig, scenarios_by_text: dict[str, list[Any]], members, judge_models) -> Any:
    """The GRPO reward function (trl calls it with ``completions`` and dataset columns);
    ``scenarios_by_text``: original rule text -> its selection-half scenarios."""
    from brittle.rules.embed import similarity
    from brittle.rules.refine import clean_rewrite, panel_entropy_of

    base_cache: dict[str, float] = {}
    fallback = next(iter(judge_models.values()), None)
    history: list[dict[str, float]] = []

    def entropy_reward(completions, original, **_: Any) -> list[float]:
        texts = [clean_rewrite(_text(c)) or "(empty)" for c in completions]
        ent = [float("nan")] * len(texts)
        for orig in sorted(set(original)):
            scn = scenarios_by_text[orig]
            if orig not in base_cache:
                base_cache[orig] = panel_entropy_of([orig], scn, members, judge_models, mode=cfg.mode)[0]
            idx = [i for i, o in enumerate(original) if o == orig]
            for i, h in zip(idx, panel_entropy_of([texts[i] for i in idx], scn, members, judge_models, mode=cfg.mode)):
                ent[i] = h
        sims = [similarity(o, [t], method=cfg.embedder, fallback=fallback)[0] for o, t in zip(original, texts)]
        out = [float((base_cache[o] - h) - cfg.shift_penalty * (1.0 - s)) for o, h, s in zip(original, ent, sims)]
        history.append({"mean_reward": sum(out) / len(out), "mean_entropy": sum(ent) / len(ent), "mean_similarity": sum(sims) / len(sims)})
        return out

    entropy_reward.history = history  # type: ignore[attr-defined]
    return entropy_reward


def run_grpo(
    cfg: RulesGRPOConfig,
    *,
    policy: tuple[Any, Any] | None = None,
    judge_models: dict[str, tuple[Any, Any]] | None = None,
) -> dict[str, Any]:
    """A few GRPO steps on CPU/GPU; returns and writes ``grpo.json``.
    ``policy``: preloaded (model, tokenizer) — must not be one of the judge objects."""
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from brittle.models.backend import GenerationConfig
    from brittle.models.generate import HFBackend
    from brittle.rules.data import load_rules
    from brittle.rules.embed import similarity
    from brittle.rules.panel import expand_panel
    from brittle.rules.prompts import refine_messages
    from brittle.rules.refine import (
        agreements,
        candidate_row,
        clean_rewrite,
        entropies,
        judge_texts,
        pick_rules,
        rule_split,
        scenario_pool,
    )
    from brittle.store import write_json

    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.echo("rules_grpo")
    rules = {r.id: r for r in load_rules(cfg.rules)}
    jpath = cfg.judgments or cfg.run_dir / "judgments.parquet"
    ids = cfg.rule_ids or (pick_rules(Path(jpath), cfg.top_rules) if Path(jpath).exists() else None)
    if not ids:
        raise BrittleError("rules grpo needs rule_ids or a judgments.parquet to pick rules from")
    missing = [i for i in ids if i not in rules]
    if missing:
        raise BrittleError(f"unknown rule ids {missing}")
    targets = [rules[i] for i in ids]
    used: set[str] = set()
    if Path(jpath).exists():
        import pandas as pd

        used = set(pd.read_parquet(jpath, columns=["scenario_id"])["scenario_id"])
    pool = scenario_pool(cfg.scenarios, used)
    by_id = {s.id: s for s in pool}
    splits = {r.id: rule_split(pool, r.id, seed=cfg.split_seed, n_selection=cfg.n_selection, n_report=cfg.n_report)
              for r in targets}
    members = expand_panel(cfg.panel, cfg.permutations)
    if any(m.kind != "hf" for m in members):
        raise BrittleError("rules grpo needs local (hf) judges")
    judge_models = dict(judge_models or {})
    for m in members:
        if m.load_spec not in judge_models:
            from brittle.models.load import load_model

            judge_models[m.load_spec] = load_model(m.load_spec)
    if policy is None:
        from brittle.models.load import load_model

        policy = load_model(cfg.policy)
    model, tok = policy
    if any(model is jm for jm, _ in judge_models.values()):
        raise BrittleError("the GRPO policy must be a separate model object from the judges")

    reward = make_reward(cfg, {r.text: [by_id[i] for i in splits[r.id].selection] for r in targets}, members, judge_models)
    n = cfg.num_generations
    data = Dataset.from_list([{"prompt": refine_messages(r.text), "original": r.text} for r in targets] * max(1, cfg.steps * 2))
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    args = GRPOConfig(
        output_dir=str(cfg.run_dir / "grpo"),
        max_steps=cfg.steps,
        per_device_train_batch_size=n,
        num_generations=n,
        max_completion_length=cfg.max_completion_length,
        learning_rate=cfg.learning_rate,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        seed=cfg.seed,
        disable_tqdm=True,
        gradient_checkpointing=False,
    )
    model.train()
    trainer = GRPOTrainer(
        model=model, reward_funcs=[reward], args=args, train_dataset=data, processing_class=tok, peft_config=peft_config
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # logs go to grpo.json, not stdout
    trainer.train()
    trained = trainer.model.eval()
    backend = HFBackend(trained, tok, name=f"grpo:{cfg.policy}")
    finals = backend.generate([refine_messages(r.text) for r in targets], config=GenerationConfig(max_new_tokens=cfg.max_completion_length))
    fallback = next(iter(judge_models.values()))
    rows = []
    for rule, reply in zip(targets, finals):
        text = clean_rewrite(reply) or "(empty)"
        sp = splits[rule.id]
        df = judge_texts([rule.text, text], [by_id[i] for i in sp.selection + sp.report], members, judge_models)
        h_sel, h_rep = entropies(df, 2, sp.selection, mode=cfg.mode), entropies(df, 2, sp.report, mode=cfg.mode)
        sim = similarity(rule.text, [text], method=cfg.embedder, fallback=fallback)[0]
        c = candidate_row(f"{rule.id}#grpo", text, h_sel=tuple(h_sel), h_rep=tuple(h_rep), similarity=sim,
                          same_meaning=float("nan"), agreement=agreements(df, 2, sp.selection)[0],
                          min_similarity=cfg.min_similarity, min_agreement=cfg.min_agreement)
        rows.append({"rule_id": rule.id, "original": rule.text, "revised": text, "entropy_before": h_rep[0],
                     "entropy_before_selection": h_sel[0],
                     **{k: c[k] for k in ("entropy_after", "entropy_after_selection", "delta_selection", "delta_report",
                                          "heldout", "similarity", "meaning_shift", "unanimous_agreement", "unanimous",
                                          "flipped_unanimous", "meaning_shifted")},
                     "split": sp.to_dict()})
    logs = [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in trainer.state.log_history]
    out = {
        "method": "grpo",
        "policy": cfg.policy,
        "panel": [m.name for m in members],
        "readers": list(dict.fromkeys(m.reader for m in members)),
        "split": {"seed": cfg.split_seed, "n_selection": cfg.n_selection, "n_report": cfg.n_report, "pool": len(pool),
                  "stratified_by": "category", "trained_on": "selection", "reported_on": "report"},
        "steps": int(trainer.state.global_step),
        "reward_history": reward.history,
        "trainer_log": logs,
        "rules": rows,
    }
    write_json(cfg.run_dir / "grpo.json", out)
    return out
