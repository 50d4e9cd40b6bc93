"""Judge panel: P(complies) for every (rule, scenario, strategy, judge) from next-token
probabilities of the answer letters.

Local HF judges (:class:`OptionScorer`): one forward pass per batch, no generation. For a
prompt x and option letters {A, B}, with V(L) the token ids that spell letter L as the next
token (``"A"`` and ``" A"`` are different tokens in most BPE vocabularies),

    p(L | x)  = Σ_{v ∈ V(L)} softmax(logits(x))_v          (sum over spellings)
    p_comply  = p(A)^(1/T) / (p(A)^(1/T) + p(B)^(1/T))      (renormalised over the options)

``T`` is the member's temperature (1 = the model's own distribution). ``option_mass`` =
p(A) + p(B) records how much of the next-token distribution fell on the options at all (a
weak judge spreads it elsewhere). Summing the spellings is the probability that the reply
*starts with* that letter in either spelling; taking the max instead would undercount a
judge that splits its mass between the two.

Batches are grouped by (rule, strategy): the chat-rendered (system + rule + strategy) text is
a prefix shared by every scenario of the group, so its KV cache is computed once and
repeated over the batch; the scenario suffixes run right-padded on top of it and the
logits are read at each row's last real token. Without prefix sharing, batches are
left-padded with explicit position ids and read at the last column. Both give the same
numbers as one-at-a-time scoring (tested).

The panel is readers × answer-order permutations (:mod:`brittle.rules.panel`): every
record carries its ``judge`` (member: model + template) and its ``reader`` (the model), so
metrics can pool permutations per reader before measuring disagreement between readers.

Endpoint judges (``openai:<model>@<url>``) use the backend's ``choice_logprobs``; when the
server returns no log-probs they fall back to sampling ``n`` one-letter answers
(p_comply = share of "comply" letters among parseable answers; none parseable -> unscored).
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from brittle.config import StageConfig
from brittle.errors import BrittleError
from brittle.fingerprint import fingerprint
from brittle.rules.panel import (
    DEFAULT_PERMUTATIONS,
    INSTALLED,
    JudgeMember,
    expand_panel,
    resolve_readers,
)
from brittle.rules.prompts import JudgePrompt, judge_prompt, render_split, template_hash

log = logging.getLogger(__name__)

DEFAULT_PANEL = [INSTALLED]
PANEL_HELP = (
    "Comma-separated readers (judge models): 'installed' (SmolLM2-135M, + Qwen2.5-Coder-0.5B after "
    "`make qwen`), model specs [?T=2] or openai:<model>@<url>, e.g. installed,openai:gpt-x@http://host/v1; "
    "each is judged under every permutation."
)
PERMUTATIONS_HELP = "Comma-separated answer-order permutations (judge templates) every reader is judged under."
RUN_DIR_HELP = "Run directory (inputs and outputs of every `rules` stage)."


# --------------------------------------------------------------------------- HF scorer
def option_token_ids(tokenizer: Any, letter: str) -> list[int]:
    """Token ids spelling ``letter`` as a next token: ``"A"`` and ``" A"`` when each is a
    single token; else the first token of ``"A"`` (documented fallback)."""
    ids: list[int] = []
    for text in (letter, " " + letter):
        enc = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(enc[0])
    if not ids:
        ids = [tokenizer(letter, add_special_tokens=False)["input_ids"][0]]
    return ids


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for k in range(n):
        if any(s[k] != first[k] for s in seqs[1:]):
            return k
    return n


class OptionScorer:
    """Batched next-token option probabilities for a local causal LM."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8, share_prefix: bool = True):
        self.model = model.eval()
        self.tok = tokenizer
        self.batch_size = max(1, batch_size)
        self.share_prefix = share_prefix
        if tokenizer.pad_token_id is None:
            raise BrittleError("judge tokenizer has no pad token; load it with brittle.models.load_model")

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def encode(self, prompts: Sequence[JudgePrompt]) -> list[tuple[str, list[int]]]:
        """(prefix text, full token ids) per prompt; the full text is tokenised in one go."""
        out = []
        for p in prompts:
            head, tail = render_split(self.tok, p)
            out.append((head, self.tok(head + tail, add_special_tokens=False)["input_ids"]))
        return out

    def score(self, prompts: Sequence[JudgePrompt], *, temperature: float = 1.0) -> list[tuple[float, float]]:
        """``[(p_first_option, option_mass)]``: p of ``prompt.options[0]`` renormalised over
        both options (see module docstring), and the raw mass on the options."""
        import torch

        if not prompts:
            return []
        enc = self.encode(prompts)
        letters = sorted({o for p in prompts for o in p.options})
        opt_ids = {L: option_token_ids(self.tok, L) for L in letters}
        logp_last: list[Any] = [None] * len(prompts)
        groups: dict[str, list[int]] = {}
        for i, (head, _) in enumerate(enc):
            groups.setdefault(head if self.share_prefix else "", []).append(i)
        with torch.inference_mode():
            for head, idx in groups.items():
                idx = sorted(idx, key=lambda i: -len(enc[i][1]))
                for b in range(0, len(idx), self.batch_size):
                    batch = idx[b : b + self.batch_size]
                    seqs = [enc[i][1] for i in batch]
                    rows = self._shared(seqs) if (self.share_prefix and head) else self._left_padded(seqs)
                    for i, row in zip(batch, rows):
                        logp_last[i] = row
        out = []
        for p, lp in zip(prompts, logp_last):
            la = torch.logsumexp(lp[opt_ids[p.options[0]]], 0).item()
            lb = torch.logsumexp(lp[opt_ids[p.options[1]]], 0).item()
            mass = math.exp(la) + math.exp(lb)
            t = max(temperature, 1e-6)
            p_first = 1.0 / (1.0 + math.exp((lb - la) / t))
            out.append((p_first, mass))
        return out

    def _left_padded(self, seqs: list[list[int]]) -> list[Any]:
        import torch

        width = max(len(s) for s in seqs)
        pad = int(self.tok.pad_token_id)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s)
            mask[r, width - len(s) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.device
        logits = self.model(
            input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev), logits_to_keep=1
        ).logits[:, -1]
        return list(torch.log_softmax(logits.float(), -1).cpu())

    def _shared(self, seqs: list[list[int]]) -> list[Any]:
        """Prefix KV computed once (batch 1), repeated over the batch; suffixes right-padded."""
        import torch

        n_pre = min(_common_prefix_len(seqs), min(len(s) for s in seqs) - 1)
        if n_pre < 1 or len(seqs) == 1:
            return self._left_padded(seqs)
        dev = self.device
        pre = torch.tensor([seqs[0][:n_pre]], device=dev)
        cache = self.model(input_ids=pre, use_cache=True).past_key_values
        cache = copy.deepcopy(cache)
        cache.batch_repeat_interleave(len(seqs))
        sufs = [s[n_pre:] for s in seqs]
        width = max(len(s) for s in sufs)
        pad = int(self.tok.pad_token_id)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), n_pre + width), dtype=torch.long)
        mask[:, :n_pre] = 1
        for r, s in enumerate(sufs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, n_pre : n_pre + len(s)] = 1
        pos = (n_pre + torch.arange(width)).expand(len(seqs), width)
        last = [len(s) - 1 for s in sufs]
        keep = sorted(set(last))  # project only the positions some row ends at
        logits = self.model(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            position_ids=pos.to(dev),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=torch.tensor(keep, device=dev),
        ).logits
        if logits.shape[1] != len(keep):  # logits_to_keep ignored by this architecture
            logits = logits[:, keep]
        col = torch.tensor([keep.index(x) for x in last], device=dev)
        rows = logits[torch.arange(len(seqs), device=dev), col]
        return list(torch.log_softmax(rows.float(), -1).cpu())


# --------------------------------------------------------------------------- panel members
_LETTER = re.compile(r"^\W*([A-Za-z])\b")


def sampled_p(replies: Sequence[str], options: tuple[str, str]) -> float:
    """Share of parseable replies whose first letter is ``options[0]``; NaN if none parse."""
    letters = [m.group(1).upper() for r in replies if (m := _LETTER.match(r or ""))]
    hits = [L for L in letters if L in options]
    return sum(L == options[0] for L in hits) / len(hits) if hits else float("nan")


def score_endpoint(backend: Any, prompts: Sequence[JudgePrompt], *, n_samples: int = 5) -> list[tuple[float, float]]:
    """p(first option) for an OpenAI-compatible backend: log-probs, else n sampled answers."""
    from brittle.models.backend import GenerationConfig

    convs = [p.messages() for p in prompts]
    lps = None
    if hasattr(backend, "choice_logprobs"):
        lps = backend.choice_logprobs(convs, ["A", "B"])
    if lps is not None:
        out = []
        for p, d in zip(prompts, lps):
            la, lb = d.get(p.options[0], -math.inf), d.get(p.options[1], -math.inf)
            if la == -math.inf and lb == -math.inf:
                out.append((float("nan"), 0.0))
                continue
            m = max(la, lb)
            ea, eb = math.exp(la - m), math.exp(lb - m)
            out.append((ea / (ea + eb), math.exp(la) + math.exp(lb)))
        return out
    log.info("%s: no log-probs; sampling %d answers per item", backend.name, n_samples)
    samples = [
        backend.generate(convs, config=GenerationConfig(max_new_tokens=4, temperature=1.0, seed=k))
        for k in range(n_samples)
    ]
    return [(sampled_p([s[i] for s in samples], p.options), float("nan")) for i, p in enumerate(prompts)]


# --------------------------------------------------------------------------- the grid
class RulesJudgeConfig(StageConfig):
    run_dir: Path = Field(Path("runs/rules"), description=RUN_DIR_HELP)
    rules: Path | None = Field(None, description="Rules YAML (default: the shipped 56).")
    rule_ids: list[str] | None = Field(None, description="Only these rule ids (comma-separated).")
    n_rules: int | None = Field(None, description="Only the first n rules (after rule_ids).")
    scenarios: str = Field(
        "shipped",
        description="'shipped', a JSONL/Parquet path (WildChat-style), or 'dataset:<name>' (embedded prompts; responses generated).",
    )
    n_scenarios: int | None = Field(None, description="Only the first n scenarios.")
    strategies: list[str] | None = Field(None, description="Comma-separated strategy ids (default: all, incl. 'none').")
    strategies_file: Path | None = Field(None, description="Strategies YAML (default: shipped).")
    panel: list[str] = Field(default_factory=lambda: list(DEFAULT_PANEL), description=PANEL_HELP)
    permutations: list[str] = Field(default_factory=lambda: list(DEFAULT_PERMUTATIONS), description=PERMUTATIONS_HELP)
    responder: str | None = Field(None, description="Model that writes missing responses (default: first local judge).")
    batch_size: int = Field(8, description="Judge batch size.")
    share_prefix: bool = Field(True, description="Reuse the KV cache of the (rule, strategy) prefix.")
    max_turns: int = Field(4, description="Conversation turns shown to the judge.")
    max_chars: int = Field(1200, description="Characters kept per turn.")
    n_samples: int = Field(5, description="Sampled answers per item for endpoints without log-probs.")
    device: str = Field("auto", description="Device for local judges.")
    dtype: str = Field("auto", description="dtype for local judges.")


def load_grid(cfg: RulesJudgeConfig, *, models: dict[str, tuple[Any, Any]] | None = None):
    """(rules, scenarios, strategies) for a config; scenarios get their responses here."""
    from brittle.rules.data import (
        fill_responses,
        load_rules,
        load_strategies,
        read_scenarios,
        scenarios_from_dataset,
    )

    rules = load_rules(cfg.rules)
    if cfg.rule_ids:
        by_id = {r.id: r for r in rules}
        missing = [r for r in cfg.rule_ids if r not in by_id]
        if missing:
            raise BrittleError(f"unknown rule ids {missing}")
        rules = [by_id[r] for r in cfg.rule_ids]
    rules = rules[: cfg.n_rules] if cfg.n_rules else rules
    if cfg.scenarios.startswith("dataset:"):
        scenarios = scenarios_from_dataset(cfg.scenarios.split(":", 1)[1], limit=cfg.n_scenarios)
    else:
        scenarios = read_scenarios(None if cfg.scenarios == "shipped" else cfg.scenarios, limit=cfg.n_scenarios)
    if any(s.messages[-1]["role"] != "assistant" for s in scenarios):
        local = [JudgeMember.parse(p) for p in resolve_readers(cfg.panel)]
        responder = cfg.responder or next((m.load_spec for m in local if m.kind == "hf"), None)
        if responder is None:
            raise BrittleError("scenarios need responses: set `responder` to a model spec")
        from brittle.models.backends import make_backend

        mt = (models or {}).get(responder)
        backend = make_backend(responder, model=mt[0] if mt else None, tokenizer=mt[1] if mt else None)
        scenarios = fill_responses(scenarios, backend)
    strategies = load_strategies(cfg.strategies_file, cfg.strategies)
    return rules, scenarios, strategies


def item_key(member: JudgeMember, rule_text: str, messages: list[dict[str, str]], strategy_instruction: str) -> str:
    """Content hash of one judgment: re-running pays only for what changed."""
    return fingerprint(member.name, template_hash(member.template), rule_text, messages, strategy_instruction)


def run_judge(cfg: RulesJudgeConfig, *, models: dict[str, tuple[Any, Any]] | None = None):
    """Judge the (rule × scenario × strategy × judge) grid; resumable. Writes
    ``judgments.jsonl`` (append-only store), ``judgments.parquet`` (this grid) and
    ``scenarios.jsonl`` (the judged conversations). ``models``: preloaded ``{spec: (model, tok)}``."""
    import pandas as pd
    from tqdm.auto import tqdm

    from brittle.store import JsonlStore, write_json

    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    cfg.echo("rules_judge")
    models = dict(models or {})
    rules, scenarios, strategies = load_grid(cfg, models=models)
    _write_scenarios(cfg.run_dir / "scenarios.jsonl", scenarios)
    members = expand_panel(cfg.panel, cfg.permutations)
    store = JsonlStore(cfg.run_dir / "judgments.jsonl", key="key")
    done = store.done()
    grid_keys: list[str] = []
    n_new = 0
    for member in members:
        todo = []
        for rule in rules:
            for strat in strategies:
                for scn in scenarios:
                    key = item_key(member, rule.text, scn.messages, strat.instruction)
                    grid_keys.append(key)
                    if key not in done:
                        todo.append((key, rule, strat, scn))
        if not todo:
            continue
        log.info("judge %s: %d of %d items to score", member.name, len(todo), len(rules) * len(strategies) * len(scenarios))
        score_fn = _scorer(member, cfg, models)
        chunk = max(cfg.batch_size * 4, len(scenarios))
        for start in tqdm(range(0, len(todo), chunk), desc=f"judge {member.name}", leave=False):
            part = todo[start : start + chunk]
            prompts = [
                judge_prompt(r, s, c.messages, template_name=member.template, max_turns=cfg.max_turns, max_chars=cfg.max_chars)
                for _, r, s, c in part
            ]
            scores = score_fn(prompts)
            store.append(
                _record(key, r, s, c, member, p, mass) for (key, r, s, c), (p, mass) in zip(part, scores)
            )
            n_new += len(part)
    wanted = set(grid_keys)
    recs = [r for r in store.records() if r["key"] in wanted]
    cols = ["rule_id", "scenario_id", "strategy", "judge", "reader", "p_comply", "verdict", "option_mass", "template", "key"]
    df = pd.DataFrame(recs, columns=cols)
    df["reader"] = df["reader"].fillna(df["judge"].map({m.name: m.reader for m in members}))  # records from before readers
    df.to_parquet(cfg.run_dir / "judgments.parquet", index=False)
    summary = {
        "judgments": len(df),
        "new": n_new,
        "rules": len(rules),
        "scenarios": len(scenarios),
        "strategies": [s.id for s in strategies],
        "panel": [m.name for m in members],
        "readers": list(dict.fromkeys(m.reader for m in members)),
        "permutations": list(dict.fromkeys(m.template for m in members)),
        "unscored": int(df["p_comply"].isna().sum()),
        "mean_option_mass": float(df["option_mass"].mean()) if len(df) else float("nan"),
    }
    write_json(cfg.run_dir / "judge_summary.json", summary)
    return df


def _record(key, rule, strat, scn, member: JudgeMember, p: float, mass: float) -> dict[str, Any]:
    verdict = None if math.isnan(p) else ("comply" if p >= 0.5 else "violate")
    return {
        "key": key,
        "rule_id": rule.id,
        "scenario_id": scn.id,
        "strategy": strat.id,
        "judge": member.name,
        "reader": member.reader,
        "p_comply": p,
        "verdict": verdict,
        "option_mass": mass,
        "template": member.template,
    }


def _write_scenarios(path: Path, scenarios) -> None:
    import json

    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in scenarios)


def _scorer(member: JudgeMember, cfg: RulesJudgeConfig, models: dict[str, tuple[Any, Any]]):
    """A function prompts -> [(p_comply, option_mass)] for one panel member."""
    if member.kind == "openai":
        from brittle.models.backends import make_backend

        backend = make_backend(member.model)

        # p(options[0]) is p(comply) by construction of JudgePrompt.options
        return lambda prompts: score_endpoint(backend, prompts, n_samples=cfg.n_samples)
    if member.load_spec not in models:
        from brittle.models.load import load_model

        models[member.load_spec] = load_model(member.load_spec, device=cfg.device, dtype=cfg.dtype)
    model, tok = models[member.load_spec]
    scorer = OptionScorer(model, tok, batch_size=cfg.batch_size, share_prefix=cfg.share_prefix)

    return lambda prompts: scorer.score(prompts, temperature=member.temperature)
