"""The ``brittle`` command line: one sub-command per stage, no logic here.

Stages: data -> models -> eval / align -> finetune / attack -> features -> select / audit
-> diagnose -> rules -> lab (all of them chained into one report).
"""

from __future__ import annotations

import logging
import sys

import typer

from brittle.errors import BrittleError

app = typer.Typer(
    name="brittle",
    help=(
        "Measure, predict and explain how chat-model safety alignment breaks.\n\n"
        "Stages (each writes into a run directory the next one reads): "
        "data → models → eval/align → finetune/attack → features → select/audit → "
        "diagnose → rules. `brittle lab --quick` chains them on the embedded model."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


# one module per stage under brittle/cli/, each exposing register(app)
COMMAND_MODULES = [
    "data", "models", "eval", "train", "features", "select", "diagnose", "rules", "lab",
]


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"brittle.cli.{name}").register(app)


_register()


def main() -> None:
    """Entry point: BrittleError -> one readable line on stderr, exit code 1."""
    try:
        app()
    except BrittleError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)
