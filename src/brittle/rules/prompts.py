"""Judge prompts: (rule, strategy) as a shared prefix, the scenario as the suffix.

The templates are data (``resources/rules/judge_prompt.yaml``). A judge prompt is one
user turn ``prefix + suffix`` (plus a system turn), rendered by the judge's own chat
template, followed by the assistant ``prefill`` (e.g. ``"Answer:"``); the judge's
next-token distribution over the option letters is the judgment.

Conversation text is untrusted: chat-template markers inside it (``<|im_start|>``,
``[/INST]`` …) are defused before pasting so a completion cannot forge the judge's turn
structure (HarmBench #91).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from brittle.errors import BrittleError
from brittle.fingerprint import fingerprint
from brittle.resources import shipped
from brittle.rules.data import Rule, Strategy

SPLIT = "\u27e6SPLIT\u27e7"
_MARKERS = re.compile(r"<\|[^|<>\n]{0,40}\|>|\[/?INST\]|</?s>|<start_of_turn>|<end_of_turn>|<</?SYS>>")


@lru_cache(maxsize=1)
def prompt_config() -> dict[str, Any]:
    """The shipped judge / refine / same-meaning templates."""
    return yaml.safe_load(shipped("rules/judge_prompt.yaml").read_text(encoding="utf-8"))


def template(name: str) -> dict[str, Any]:
    templates = prompt_config()["templates"]
    if name not in templates:
        raise BrittleError(f"unknown judge template {name!r}; known: {sorted(templates)}")
    return templates[name]


def template_hash(name: str) -> str:
    return fingerprint(template(name), length=12)


def defuse(text: str) -> str:
    """Break chat-template control markers so they are read as plain text."""
    return _MARKERS.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


def format_conversation(messages: list[dict[str, str]], *, max_turns: int = 4, max_chars: int = 1200) -> str:
    """The last ``max_turns`` turns as ``User: …`` / ``Assistant: …`` lines, each cut to
    ``max_chars`` characters (the final response keeps its *start*, which is what matters)."""
    turns = [m for m in messages if m["role"] != "system"][-max_turns:]
    lines = []
    for m in turns:
        body = m["content"].strip()
        if len(body) > max_chars:
            body = body[: max_chars - 1] + "…"
        lines.append(f"{m['role'].capitalize()}: {defuse(body)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt as chat messages, with the shared-prefix split point marked."""

    system: str
    prefix: str  # the (rule, strategy) part of the user turn
    suffix: str  # the scenario + question part
    prefill: str
    options: tuple[str, str]  # (letter meaning "complies", letter meaning "violates")

    def messages(self, *, marked: bool = False) -> list[dict[str, str]]:
        user = self.prefix + (SPLIT if marked else "") + self.suffix
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": user}]


def judge_prompt(
    rule: Rule | str,
    strategy: Strategy | None,
    messages: list[dict[str, str]],
    *,
    template_name: str = "default",
    max_turns: int = 4,
    max_chars: int = 1200,
) -> JudgePrompt:
    t = template(template_name)
    block = ""
    if strategy is not None and strategy.id != "none":
        block = t["strategy_block"].format(name=strategy.name, instruction=strategy.instruction)
    rule_text = rule.text if isinstance(rule, Rule) else rule
    return JudgePrompt(
        system=t.get("system", ""),
        prefix=t["prefix"].format(rule=defuse(rule_text), strategy_block=block),
        suffix=t["suffix"].format(conversation=format_conversation(messages, max_turns=max_turns, max_chars=max_chars)),
        prefill=t.get("prefill", ""),
        options=(str(t["options"]["comply"]), str(t["options"]["violate"])),
    )


def same_meaning_prompt(original: str, revised: str) -> JudgePrompt:
    t = prompt_config()["same_meaning"]
    return JudgePrompt(
        system=t.get("system", ""),
        prefix=t["prefix"].format(rule=defuse(original)),
        suffix=t["suffix"].format(revised=defuse(revised)),
        prefill=t.get("prefill", ""),
        options=("A", "B"),
    )


def refine_messages(rule_text: str) -> list[dict[str, str]]:
    t = prompt_config()["refine"]
    return [
        {"role": "system", "content": t["system"]},
        {"role": "user", "content": t["user"].format(rule=defuse(rule_text))},
    ]


def render_split(tokenizer: Any, prompt: JudgePrompt) -> tuple[str, str]:
    """Render with the tokenizer's chat template; return ``(prefix_text, rest_text)`` where
    ``prefix_text + rest_text`` is the full prompt (generation prompt + prefill included)."""
    from brittle.models.chat import render_prompt

    text = render_prompt(tokenizer, prompt.messages(marked=True), prompt.prefill)
    if text.count(SPLIT) != 1:
        return "", text.replace(SPLIT, "")
    head, tail = text.split(SPLIT)
    return head, tail
