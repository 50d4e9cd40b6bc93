"""MAGPIE-style self-synthesis (Xu et al. 2024, arXiv 2406.08464) and a diagnostic.

The model gets only the chat template's *pre-query* text (everything a conversation
renders before the first user message's content, e.g. the default system prompt and
``<|im_start|>user\\n``), derived generically: render ``[{"role": "user", "content":
SENTINEL}]`` and cut at the sentinel. Sampling from there (seeded) makes the model write
a user instruction, ended by the template's end-of-turn marker (the text that follows
the sentinel). The answer is then generated with the ordinary chat template (greedy).
Instructions are de-duplicated (case/whitespace/punctuation-normalised exact match) and
cached under ``cache_dir("synth", fingerprint)`` (resumable JSONL).

Diagnostic: the share of self-written instructions that look harmful, by a keyword list
(``resources/diagnose/harmful_keywords.yaml``): crude — compare models, not absolutes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from brittle.data.schema import Example
from brittle.errors import BrittleError

log = logging.getLogger(__name__)

SENTINEL = "\u2063BRITTLE_SENTINEL_7f3a\u2063"
KEYWORDS_FILE = "diagnose/harmful_keywords.yaml"


@dataclass(frozen=True)
class SynthConfig:
    n: int = 64  # instructions to sample (before de-duplication)
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    max_instruction_tokens: int = 64
    max_response_tokens: int = 128  # 0 = instructions only
    batch_size: int = 16


def pre_query_template(tokenizer: Any) -> tuple[str, str]:
    """``(pre_query, end_of_turn)``: the rendered text before a user message's content and
    the template's marker right after it (e.g. ``"<|im_end|>"``)."""
    from brittle.models.chat import render

    text = render(tokenizer, [{"role": "user", "content": SENTINEL}])
    if text.count(SENTINEL) != 1:
        raise BrittleError("chat template does not render the user message verbatim")
    before, after = text.split(SENTINEL)
    eot = after.strip() or (tokenizer.eos_token or "")
    return before, eot


def _stop_ids(tokenizer: Any, eot: str) -> list[int]:
    ids = set()
    eot_ids = tokenizer(eot, add_special_tokens=False)["input_ids"] if eot else []
    if len(eot_ids) >= 1:
        ids.add(int(eot_ids[0]))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def normalise_instruction(text: str) -> str:
    """Dedup key: lower-case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def dedupe(texts: Sequence[str]) -> list[int]:
    """Indices of the first occurrence of each normalised, non-empty text."""
    seen, keep = set(), []
    for i, t in enumerate(texts):
        key = normalise_instruction(t)
        if key and key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def _sample_instructions(model: Any, tokenizer: Any, cfg: SynthConfig, batch: int, size: int) -> list[str]:
    import torch

    pre, eot = pre_query_template(tokenizer)
    ids = torch.tensor([tokenizer(pre, add_special_tokens=False)["input_ids"]] * size)
    dev = next(model.parameters()).device
    torch.manual_seed(cfg.seed * 100_003 + batch)  # one seed per batch: resumable, reproducible
    with torch.no_grad():
        out = model.generate(
            input_ids=ids.to(dev), attention_mask=torch.ones_like(ids).to(dev),
            do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
            max_new_tokens=cfg.max_instruction_tokens, eos_token_id=_stop_ids(tokenizer, eot),
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
    return [t.split(eot)[0].strip() if eot else t.strip() for t in texts]


def greedy_replies(model: Any, tokenizer: Any, conversations: Sequence[list[dict[str, str]]],
                   *, max_new_tokens: int = 128, batch_size: int = 16) -> list[str]:
    """Greedy assistant replies (left padding, one ``generate`` per batch; ``batch_size`` 0:
    sized to memory)."""
    import torch

    from brittle.models.chat import encode_prompt, length_sorted_batches
    from brittle.models.generate import auto_generation_batch

    dev = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    _, eot = pre_query_template(tokenizer)
    encoded = [encode_prompt(tokenizer, c) for c in conversations]
    if not encoded:
        return []
    size = batch_size or auto_generation_batch(model, max(map(len, encoded)) + max_new_tokens)
    out: list[str] = [""] * len(encoded)
    for idx in length_sorted_batches([len(p) for p in encoded], size):
        prompts = [encoded[i] for i in idx]
        width = max(map(len, prompts))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        with torch.no_grad():
            gen = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=pad,
                                 eos_token_id=_stop_ids(tokenizer, eot))
        for i, t in zip(idx, tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)):
            out[i] = t.strip()
    return out


def synthesize(
    model: Any,
    tokenizer: Any,
    cfg: SynthConfig = SynthConfig(),
    *,
    fingerprint_parts: Sequence[Any] = (),
    cache: str | Path | None = None,
    progress: bool = False,
) -> list[Example]:
    """Self-written (instruction, answer) examples, de-duplicated, in sampling order.

    ``fingerprint_parts`` (e.g. model spec + adapter) key the cache together with
    ``cfg``; pass ``cache=None`` to use ``cache_dir("synth", fingerprint)``.
    """
    from tqdm import tqdm

    from brittle.fingerprint import fingerprint
    from brittle.resources import cache_dir
    from brittle.store import JsonlStore

    fp = fingerprint("synth-v1", list(fingerprint_parts), cfg, pre_query_template(tokenizer))
    root = Path(cache) if cache else cache_dir("synth", fp)
    inst_store = JsonlStore(root / "instructions.jsonl", key="batch")
    done = inst_store.done()
    n_batches = -(-cfg.n // cfg.batch_size)
    for b in tqdm(range(n_batches), desc="synth instructions", disable=not progress):
        if str(b) in done:
            continue
        size = min(cfg.batch_size, cfg.n - b * cfg.batch_size)
        inst_store.append([{"batch": b, "texts": _sample_instructions(model, tokenizer, cfg, b, size)}])
    by_batch = {int(r["batch"]): r["texts"] for r in inst_store.records()}
    texts = [t for b in range(n_batches) for t in by_batch[b]]
    keep = dedupe(texts)
    log.info("synth: %d sampled, %d unique non-empty", len(texts), len(keep))
    examples = [Example.from_pair(texts[i], source="magpie", meta={"synth_fp": fp, "sample": i})
                for i in keep]
    if cfg.max_response_tokens <= 0:
        return examples
    ans_store = JsonlStore(root / "answers.jsonl", key="id")
    have = {r["id"]: r["response"] for r in ans_store.records()}
    todo = [ex for ex in examples if ex.id not in have]
    for s in tqdm(range(0, len(todo), cfg.batch_size), desc="synth answers", disable=not progress):
        chunk = todo[s : s + cfg.batch_size]
        replies = greedy_replies(model, tokenizer, [ex.messages for ex in chunk],
                                 max_new_tokens=cfg.max_response_tokens, batch_size=cfg.batch_size)
        ans_store.append([{"id": ex.id, "response": r} for ex, r in zip(chunk, replies)])
        have.update({ex.id: r for ex, r in zip(chunk, replies)})
    return [ex.with_response(have[ex.id]) for ex in examples]


def load_keywords(path: str | Path | None = None) -> list[str]:
    from brittle.errors import DataError
    from brittle.resources import shipped

    path = Path(path) if path else shipped(KEYWORDS_FILE)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("keywords"), list):
        raise DataError(f"{path}:1: expected a mapping with a 'keywords' list")
    return [str(k).lower() for k in data["keywords"] if str(k).strip()]


def harmful_looking(text: str, keywords: Sequence[str]) -> str | None:
    """The first keyword that starts a word in ``text`` (case-insensitive), else None."""
    low = text.lower()
    for k in keywords:
        if re.search(r"(?<!\w)" + re.escape(k), low):
            return k
    return None


def harmful_share(instructions: Sequence[str], keywords: Sequence[str] | None = None,
                  *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """share = (1/n) Σ_i [instruction i matches a keyword], with a Wilson 95% interval."""
    from brittle.diagnose.stats import proportion_ci

    kws = list(keywords) if keywords is not None else load_keywords()
    flags = [float(harmful_looking(t, kws) is not None) for t in instructions]
    m, lo, hi = proportion_ci(flags)
    return {"harmful_share": m, "lo": lo, "hi": hi, "n": len(flags)}


def write_examples_jsonl(examples: Sequence[Example], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n" for ex in examples)
    return path
