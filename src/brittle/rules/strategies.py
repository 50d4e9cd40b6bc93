"""Strategy helpers: leaning groups used by the analysis (data lives in strategies.yaml)."""

from __future__ import annotations

from brittle.rules.data import Strategy, load_strategies

__all__ = ["Strategy", "by_leaning", "leanings", "load_strategies"]


def leanings(strategies: list[Strategy] | None = None) -> dict[str, str]:
    """``{strategy id: leaning}`` (narrow / broad / neutral)."""
    return {s.id: s.leaning for s in (strategies or load_strategies())}


def by_leaning(leaning: str, strategies: list[Strategy] | None = None) -> list[str]:
    """Ids of the strategies with this leaning, in file order."""
    return [s.id for s in (strategies or load_strategies()) if s.leaning == leaning]
