"""Paper presets for ``brittle lab --paper NAME``: shipped LabConfig YAMLs (data, not code).

Each file in ``resources/lab/`` starts with the command that runs it and the paper's
setting; ``--paper NAME`` is ``--config <that file>`` (flags still override it).
"""

from __future__ import annotations

from pathlib import Path

from brittle.errors import BrittleError
from brittle.resources import shipped


def paper_names() -> list[str]:
    return sorted(p.stem for p in shipped("lab").glob("*.yaml"))


def paper_config(name: str) -> Path:
    """The shipped LabConfig YAML of paper preset ``name``."""
    if name not in paper_names():
        raise BrittleError(f"unknown paper preset {name!r}; choose from {', '.join(paper_names())}")
    return shipped(f"lab/{name}.yaml")
