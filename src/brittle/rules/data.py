"""Rules, interpretive strategies and scenarios (all data files, validated on load).

* rules: YAML ``{rules: [{id, text, source}]}`` — shipped ``rules/rules.yaml`` (56 rules in the
  paper's "Your response must …" form, each citing its source principle).
* strategies: YAML ``{strategies: [{id, name, leaning, instruction}]}`` — 12 law-inspired
  strategies plus ``none``; ``leaning`` in {narrow, broad, neutral}.
* scenarios: conversations ending with the assistant response to judge. Shipped
  ``rules/scenarios.jsonl`` (48 hand-written benign snippets) or a user JSONL / Parquet file
  in WildChat style (``conversation``: [{role, content}], or ``messages``). Rows whose last
  turn is from the user are *prompts*: their response is generated at run time
  (:func:`fill_responses`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from brittle.data.schema import Example
from brittle.errors import DataError
from brittle.resources import shipped

LEANINGS = ("narrow", "broad", "neutral")
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}


@dataclass(frozen=True)
class Rule:
    id: str
    text: str
    source: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Strategy:
    id: str
    name: str
    leaning: str
    instruction: str


def _check_file(path: Path) -> None:
    """DataError ``path:0: reason`` for a missing file, a directory, a FIFO (never opened:
    it would block) or a symlink loop."""
    from brittle.paths import PathError, check_input_file

    try:
        check_input_file(path, line="0")
    except PathError as e:
        raise DataError(str(e)) from None


def _read_yaml_list(path: Path, key: str) -> list[Any]:
    _check_file(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"{path}:1: cannot read YAML: {e}") from None
    items = data.get(key) if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise DataError(f"{path}:1: expected a non-empty list under `{key}:`")
    return items


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """Rules from YAML (default: the shipped 56). Errors name the file and the rule index."""
    path = Path(path) if path else shipped("rules/rules.yaml")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(_read_yaml_list(path, "rules")):
        if isinstance(item, str):
            item = {"id": f"rule{i + 1:02d}", "text": item}
        if not isinstance(item, dict) or not str(item.get("text", "")).strip():
            raise DataError(f"{path}: rule #{i + 1}: needs a non-empty `text`")
        rid = str(item.get("id") or f"rule{i + 1:02d}")
        if rid in seen:
            raise DataError(f"{path}: rule #{i + 1}: duplicate id {rid!r}")
        seen.add(rid)
        rules.append(Rule(rid, " ".join(str(item["text"]).split()), dict(item.get("source") or {})))
    return rules


def load_strategies(path: str | Path | None = None, ids: Sequence[str] | None = None) -> list[Strategy]:
    """Strategies from YAML (default: shipped 12 + ``none``), optionally only ``ids`` (in that order)."""
    path = Path(path) if path else shipped("rules/strategies.yaml")
    out: dict[str, Strategy] = {}
    for i, item in enumerate(_read_yaml_list(path, "strategies")):
        if not isinstance(item, dict) or "id" not in item:
            raise DataError(f"{path}: strategy #{i + 1}: needs an `id`")
        leaning = str(item.get("leaning", "neutral"))
        if leaning not in LEANINGS:
            raise DataError(f"{path}: strategy #{i + 1}: leaning must be one of {LEANINGS}")
        sid = str(item["id"])
        instruction = " ".join(str(item.get("instruction") or "").split())
        if sid != "none" and not instruction:
            raise DataError(f"{path}: strategy {sid!r}: needs an `instruction`")
        out[sid] = Strategy(sid, str(item.get("name", sid)), leaning, instruction)
    if "none" not in out:
        out = {"none": Strategy("none", "No strategy", "neutral", ""), **out}
    if ids:
        missing = [s for s in ids if s not in out]
        if missing:
            raise DataError(f"{path}: unknown strategies {missing}; known: {sorted(out)}")
        return [out[s] for s in ids]
    return list(out.values())


def _messages(raw: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise DataError(f"{where}: `conversation`/`messages` must be a non-empty list")
    msgs = []
    for turn in raw:
        if not isinstance(turn, dict):
            raise DataError(f"{where}: each turn must be an object with role and content")
        role = str(turn.get("role") or turn.get("from") or "").lower()
        role = ROLE_ALIASES.get(role, role)
        content = turn.get("content", turn.get("value"))
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise DataError(f"{where}: bad turn (role {role!r}); need role user/assistant/system and string content")
        msgs.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in msgs):
        raise DataError(f"{where}: conversation has no user turn")
    return msgs


def _row_to_example(row: dict[str, Any], where: str, n: int) -> Example:
    raw = row.get("conversation", row.get("messages"))
    if raw is None and "prompt" in row:
        raw = [{"role": "user", "content": row["prompt"]}]
        if row.get("response"):
            raw.append({"role": "assistant", "content": row["response"]})
    if hasattr(raw, "tolist"):  # parquet list column -> numpy array of dicts
        raw = raw.tolist()
    msgs = _messages(raw, where)
    sid = str(row.get("id") or row.get("conversation_hash") or row.get("conversation_id") or f"scn{n:05d}")
    return Example(messages=msgs, id=sid, category=row.get("category"), source=row.get("source") or "user")


def read_scenarios(path: str | Path | None = None, *, limit: int | None = None) -> list[Example]:
    """Scenarios from JSONL or Parquet (WildChat-style). Bad rows -> ``DataError('path:line: …')``."""
    path = Path(path) if path else shipped("rules/scenarios.jsonl")
    _check_file(path)
    out: list[Example] = []
    if path.suffix == ".parquet":
        import pandas as pd

        for i, row in enumerate(pd.read_parquet(path).to_dict("records"), 1):
            out.append(_row_to_example(row, f"{path}:row {i}", i))
            if limit and len(out) >= limit:
                break
    else:
        with open(path, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{i}: invalid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{i}: expected a JSON object")
                out.append(_row_to_example(row, f"{path}:{i}", i))
                if limit and len(out) >= limit:
                    break
    ids = [e.id for e in out]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise DataError(f"{path}:0: duplicate scenario id {dup!r}")
    return out


def scenarios_from_dataset(name: str, *, limit: int | None = None, split: str | None = None) -> list[Example]:
    """Prompt-only scenarios from an embedded data set (responses come from :func:`fill_responses`)."""
    from brittle.data.embedded import load_dataset  # owned by the data stage

    return [
        Example(messages=e.prompt_messages, id=f"{name}:{e.id}", category=e.category, source=e.source or name)
        for e in load_dataset(name, split, limit=limit)
    ]


def fill_responses(scenarios: list[Example], backend: Any, *, max_new_tokens: int = 96) -> list[Example]:
    """Generate the assistant response for scenarios whose last turn is the user's."""
    from brittle.models.backend import GenerationConfig

    todo = [i for i, s in enumerate(scenarios) if s.messages[-1]["role"] != "assistant"]
    if not todo:
        return scenarios
    replies = backend.generate(
        [scenarios[i].messages for i in todo], config=GenerationConfig(max_new_tokens=max_new_tokens)
    )
    out = list(scenarios)
    for i, reply in zip(todo, replies):
        out[i] = out[i].with_response(reply.strip(), responder=backend.name)
    return out
