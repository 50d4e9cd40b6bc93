"""CLI options derived from config fields, so help, YAML and docs cannot drift.

As in trl's ``SFTConfig``, a pydantic field's description is the option's help. A command
declares an option with :func:`field_option` (default ``None`` = "not given", so the YAML
config or the field default applies) and names its config class with :func:`uses_config`;
``tests/test_cli_options.py`` walks every command and fails when an option named like a field
of its config carries other help text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


def field_help(cfg: type[BaseModel], name: str) -> str:
    """The description of ``cfg.name`` (a missing description is a bug: say so loudly)."""
    field = cfg.model_fields[name]
    if not field.description:
        raise ValueError(f"{cfg.__name__}.{name} has no description")
    return field.description


def field_default(cfg: type[BaseModel], name: str) -> str | None:
    """The field's default as help text shows it (``a, b`` for a list), or None when it has none."""
    field = cfg.model_fields[name]
    if field.is_required():
        return None
    value = field.get_default(call_default_factory=True)
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def field_option(cfg: type[BaseModel], name: str, *decls: str, **kwargs: Any) -> Any:
    """``typer.Option(None, --name-with-dashes, help=<field description>)``, showing the field's
    default as ``[default: ...]``; ``decls`` replaces the flag names (e.g. ``"--redact/--no-redact"``
    for a boolean, or ``"--n-train"`` for ``direction_n_train``)."""
    flags = decls or (f"--{name.replace('_', '-')}",)
    default = field_default(cfg, name)
    on_off = [f.strip() for f in flags[0].split("/")]
    if default in ("true", "false") and len(on_off) == 2:  # "--redact/--no-redact": name the flag
        default = on_off[0] if default == "true" else on_off[1]
    if default is not None:
        kwargs.setdefault("show_default", default)
    return typer.Option(None, *flags, help=field_help(cfg, name), **kwargs)


def uses_config(*cfgs: type[BaseModel]) -> Callable[[F], F]:
    """Mark a command's callback with the config class(es) its options fill."""

    def mark(fn: F) -> F:
        fn.__brittle_configs__ = cfgs  # type: ignore[attr-defined]
        return fn

    return mark
