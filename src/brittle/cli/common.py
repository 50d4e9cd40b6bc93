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


def int_list(value: str | None, option: str, *, minimum: int | None = 0) -> list[int]:
    """``"0, 1,2"`` -> ``[0, 1, 2]``; an empty list, a non-integer or a value below
    ``minimum`` is a usage error (exit 2) raised *before* any work starts."""
    items = split_csv(value)
    if not items:
        raise typer.BadParameter("needs at least one integer, e.g. 0,1,2", param_hint=option)
    out = []
    for s in items:
        try:
            v = int(s)
        except ValueError:
            raise typer.BadParameter(f"{s!r} is not an integer", param_hint=option) from None
        if minimum is not None and v < minimum:
            raise typer.BadParameter(f"{v} is below {minimum}", param_hint=option)
        out.append(v)
    return list(dict.fromkeys(out))
