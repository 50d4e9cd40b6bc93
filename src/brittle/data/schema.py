"""One example schema for every stage.

An :class:`Example` is a chat conversation (``messages``: role/content dicts). A prompt
to evaluate is an example whose last message is from the user; a training example ends
with an assistant message (the response the loss is computed on).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclass
class Example:
    messages: list[dict[str, str]]
    id: str = ""
    category: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            self.id = content_id(self.messages)

    @classmethod
    def from_pair(
        cls,
        instruction: str,
        response: str | None = None,
        *,
        system: str | None = None,
        **kw: Any,
    ) -> Example:
        """Build from an (instruction, response) pair; ``response=None`` gives a prompt."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": instruction})
        if response is not None:
            messages.append({"role": "assistant", "content": response})
        return cls(messages=messages, **kw)

    @property
    def prompt(self) -> str:
        """Content of the last user message."""
        for m in reversed(self.messages):
            if m["role"] == "user":
                return m["content"]
        return ""

    @property
    def response(self) -> str | None:
        """Content of the final assistant message, or None for a prompt-only example."""
        last = self.messages[-1]
        return last["content"] if last["role"] == "assistant" else None

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation without its final assistant turn (what a model is asked)."""
        return self.messages[:-1] if self.response is not None else list(self.messages)

    def with_response(self, response: str, **meta: Any) -> Example:
        """A copy whose final assistant turn is ``response``."""
        msgs = self.prompt_messages + [{"role": "assistant", "content": response}]
        return Example(
            messages=msgs,
            id=self.id,
            category=self.category,
            source=self.source,
            meta={**self.meta, **meta},
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        return cls(
            messages=[dict(m) for m in d["messages"]],
            id=d.get("id") or "",
            category=d.get("category"),
            source=d.get("source"),
            meta=dict(d.get("meta") or {}),
        )


def content_id(messages: list[dict[str, str]]) -> str:
    """Deterministic id from the conversation text (12 hex chars)."""
    h = hashlib.sha256()
    for m in messages:
        h.update(m["role"].encode())
        h.update(b"\x1f")
        h.update(m["content"].encode())
        h.update(b"\x1e")
    return h.hexdigest()[:12]
