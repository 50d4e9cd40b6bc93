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


_STATE = {"debug": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    debug: bool = typer.Option(
        False, "--debug", help="On an unexpected error, print the full traceback (it is always saved to a crash log)."
    ),
    request_timeout: float | None = typer.Option(
        None, "--request-timeout", min=0.001, envvar="BRITTLE_REQUEST_TIMEOUT",
        help="Seconds per HTTP request to an openai: endpoint, models and judges (default 60).",
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", min=0, envvar="BRITTLE_MAX_RETRIES",
        help="Retries of a failed or timed-out request to an openai: endpoint (default 4).",
    ),
) -> None:
    _STATE["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from brittle.redaction import install_log_redaction

    install_log_redaction()  # URL credentials never reach a log line (httpx included)
    if request_timeout is not None or max_retries is not None:
        from brittle.models.openai_backend import set_http_defaults

        set_http_defaults(timeout=request_timeout, max_retries=max_retries)


# one module per stage under brittle/cli/, each exposing register(app)
COMMAND_MODULES = [
    "data", "models", "eval", "train", "features", "select", "diagnose", "rules", "lab", "label", "judges",
]


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"brittle.cli.{name}").register(app)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: BrittleError -> one readable line on stderr, exit code 1.

    Last resort (every known bad input is a BrittleError or a usage error long before
    this; ``tests/test_hostile_cli.py`` fails if one gets here): any other exception is
    one line naming a crash log that holds the traceback (``--debug`` prints it), exit 1.
    """
    if argv is None:
        argv = sys.argv[1:]
    _STATE["debug"] = "--debug" in argv  # also before the callback has run
    try:
        app(args=argv, prog_name="brittle")
    except BrittleError as e:
        from brittle.redaction import redact_url

        typer.echo(f"error: {redact_url(str(e))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the last resort, see docstring
        sys.exit(_crash(e, argv))


def _crash(e: BaseException, argv: list[str]) -> int:
    """Write the traceback to a crash log; print one line (and the traceback with --debug)."""
    import traceback

    from brittle.redaction import redact_url

    tb = redact_url("".join(traceback.format_exception(e)))
    path = crash_log(tb, argv)
    if _STATE["debug"]:
        typer.echo(tb, err=True)
    first = (redact_url(str(e)).strip().splitlines() or [""])[0][:300]
    where = f"traceback in {path}" if path else "no crash log could be written"
    typer.echo(f"error: unexpected {type(e).__name__}{': ' + first if first else ''} "
               f"(a bug in brittle; {where}; --debug prints it)", err=True)
    return 1


def crash_log(text: str, argv: list[str]) -> str | None:
    """Save ``text`` as ``<cache>/crash/crash-<time>-<pid>.log`` (or in the temp dir)."""
    import os
    import tempfile
    import time
    from pathlib import Path

    from brittle.redaction import redact_url

    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    header = f"brittle {' '.join(redact_url(a) for a in argv)}\n\n"
    roots = [Path(os.environ.get("BRITTLE_CACHE", Path.home() / ".cache" / "brittle")) / "crash",
             Path(tempfile.gettempdir())]
    for root in roots:
        try:
            root.mkdir(parents=True, exist_ok=True)
            path = root / name
            path.write_text(header + text, encoding="utf-8")
            return str(path)
        except OSError:
            continue
    return None
