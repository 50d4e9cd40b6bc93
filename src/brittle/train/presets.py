"""Named fine-tuning presets (data: ``resources/train/presets.yaml``, with paper sources)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from brittle.errors import BrittleError
from brittle.resources import shipped

PRESET_FILE = "train/presets.yaml"


@lru_cache(maxsize=1)
def _load() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(shipped(PRESET_FILE).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise BrittleError(f"{PRESET_FILE}: must be a mapping of preset name -> fields")
    return data


def preset_names() -> list[str]:
    return sorted(_load())


def preset(name: str) -> dict[str, Any]:
    """The FinetuneConfig fields a preset sets (without its ``source`` note)."""
    data = _load()
    if name not in data:
        raise BrittleError(f"unknown preset {name!r}; choose from {', '.join(sorted(data))}")
    return {k: v for k, v in data[name].items() if k != "source"}


def preset_source(name: str) -> str:
    preset(name)  # validates the name
    return str(_load()[name].get("source", "")).strip()
