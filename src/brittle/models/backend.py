"""Generation backends behind one Protocol (hf, vllm, openai).

A backend turns conversations into assistant replies. Capabilities are declared so a
stage can check up front (e.g. per-token KL needs ``token_logprobs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 0  # 0 = sized to memory by the backend (HF: :func:`memory_batch_size`)


@runtime_checkable
class Backend(Protocol):
    name: str  # recorded in outputs (e.g. "hf:embedded:smollm2-135m")
    capabilities: frozenset[str]  # subset of {"generate", "prefill", "token_logprobs"}

    def generate(
        self,
        conversations: Sequence[Messages],
        *,
        prefill: Sequence[str | None] | None = None,
        config: GenerationConfig = GenerationConfig(),
    ) -> list[str]:
        """One reply per conversation. ``prefill[i]`` is text the assistant turn is forced
        to start with; the returned reply *excludes* the prefill."""
        ...


def prefills(prefill: Sequence[str | None] | None, n: int) -> list[str | None]:
    """One prefill (or None) per conversation: ``prefill`` checked against ``n`` conversations
    (a clear error when the lengths differ), or ``n`` Nones."""
    from brittle.errors import BrittleError

    if prefill is None:
        return [None] * n
    if len(prefill) != n:
        raise BrittleError(f"prefill has {len(prefill)} entries for {n} conversations")
    return list(prefill)
