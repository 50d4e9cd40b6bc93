"""Helpers shared by CLI commands: JSON output and tables."""

from __future__ import annotations

import json
from typing import Any

import typer

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON.")


def emit(obj: Any, as_json: bool, human: str | None = None) -> None:
    """Print ``obj`` as JSON when ``as_json`` else the human string (or pretty JSON)."""
    if as_json or human is None:
        typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
    else:
        typer.echo(human)


def split_csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
