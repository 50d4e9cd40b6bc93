"""`brittle data …`: list, show, validate, fetch and export data sets."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit

SPLIT_OPT = typer.Option(None, "--split", help="train | eval (default: all rows).")
FILE_ARG = typer.Argument(..., help="Data file (.json, .jsonl, .csv, .parquet).")
SDIST_OPT = typer.Option(None, "--sdist", help="Use a local llamafactory-0.9.5.tar.gz, not PyPI.")
OUT_OPT = typer.Option(..., "--out", help="Output file: .jsonl or .parquet")


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Embedded data sets and data-file validation.")
    app.add_typer(data, name="data")

    @data.command("list")
    def list_(json_: bool = JSON_OPT) -> None:
        """Embedded data sets with sources, licences, rows and split sizes."""
        from brittle.data.embedded import list_datasets

        rows = list_datasets()
        lines = []
        for d in rows:
            splits = " ".join(f"{k}={v}" for k, v in d["splits"].items()) or "-"
            size = d["rows"] if d["available"] else f"missing ({d['install']})"
            lines.append(
                f"{d['name']:<14} {size!s:<6} {splits:<20} {d['licence']:<16} "
                f"{'; '.join(d['sources'])}"
            )
        emit(rows, json_, "\n".join(lines))

    @data.command("show")
    def show(
        name: str = typer.Argument(..., help="Data set name (see `brittle data list`)."),
        split: str | None = SPLIT_OPT,
        limit: int = typer.Option(10, "--rows", "-n", help="Rows to show, the first N (0 = all)."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Print rows of an embedded data set."""
        from brittle.data.embedded import load_dataset
        from brittle.errors import BrittleError

        try:
            exs = load_dataset(name, split, limit=limit or None)
        except BrittleError as e:
            _fail(f"error: {e}")
        human = []
        for ex in exs:
            resp = ex.response
            tail = f"\n    -> {_clip(resp)}" if resp is not None else ""
            human.append(f"[{ex.id}] ({ex.source}/{ex.category}) {_clip(ex.prompt)}{tail}")
        emit([ex.to_dict() for ex in exs], json_, "\n".join(human) or "(no rows)")

    @data.command("validate")
    def validate(
        file: Path = FILE_ARG,
        fmt: str = typer.Option("auto", "--format", help="auto | alpaca | messages | csv"),
        skip_invalid: bool = typer.Option(
            False, "--skip-invalid", help="Skip malformed rows (and count them) instead of failing."
        ),
        json_: bool = JSON_OPT,
    ) -> None:
        """Read a data file; print counts, or `path:line: reason` and exit 1 (with --json,
        a JSON object with "ok": false and the error on stdout too)."""
        from brittle.data.io import read_examples_report
        from brittle.errors import BrittleError

        def fail(message: str) -> None:
            if json_:
                emit({"path": str(file), "ok": False, "error": message}, True)
            _fail(message)

        try:
            rep = read_examples_report(file, fmt, skip_invalid)
        except BrittleError as e:
            fail(str(e))
        except (UnicodeError, OSError, ValueError, RecursionError) as e:  # belt and braces
            fail(f"{file}:0: {type(e).__name__}: {e}")
        summary = {
            "path": str(file),
            "ok": bool(rep.examples),
            "examples": len(rep.examples),
            "skipped": len(rep.skipped),
            "row_formats": dict(rep.kinds),
            "prompt_only": sum(1 for e in rep.examples if e.response is None),
            "response_formats": dict(sorted(rep.formats.items())),
            "errors": rep.skipped[:50],
        }
        human = [
            f"{file}: {summary['examples']} examples"
            + (f", {summary['skipped']} skipped" if rep.skipped else ""),
            "row formats: " + ", ".join(f"{k}={v}" for k, v in rep.kinds.items()),
            "response formats: "
            + (", ".join(f"{k}={v}" for k, v in summary["response_formats"].items()) or "-"),
        ]
        human += rep.skipped[:20]
        if len(rep.skipped) > 20:
            human.append(f"... and {len(rep.skipped) - 20} more")
        if not rep.examples:
            summary["error"] = f"{file}: no valid examples"
        emit(summary, json_, "\n".join(human))
        if not rep.examples:
            _fail(summary["error"])

    @data.command("fetch")
    def fetch(
        force: bool = typer.Option(False, "--force", help="Download again even if cached."),
        sdist: Path | None = SDIST_OPT,
    ) -> None:
        """Download the benign pool (llamafactory==0.9.5 sdist from PyPI) into the cache."""
        from brittle.data.fetch import FILES, fetch_benign
        from brittle.errors import BrittleError

        try:
            dest = fetch_benign(force=force, sdist=sdist)
        except BrittleError as e:
            _fail(f"error: {e}")
        typer.echo(f"benign pool ready in {dest} ({', '.join(FILES)})")

    @data.command("export")
    def export(
        name: str = typer.Argument(..., help="Data set name."),
        out: Path = OUT_OPT,
        split: str | None = SPLIT_OPT,
        limit: int | None = typer.Option(None, "--rows", help="Keep the first N rows."),
    ) -> None:
        """Write an embedded data set (or one split) to JSONL or Parquet."""
        from brittle.data.embedded import load_dataset
        from brittle.data.io import write_jsonl, write_parquet
        from brittle.errors import BrittleError

        suffix = out.suffix.lower()
        if suffix not in (".jsonl", ".parquet"):
            _fail(f"error: --out must end in .jsonl or .parquet, got {out.name}")
        try:
            exs = load_dataset(name, split, limit=limit)
        except BrittleError as e:
            _fail(f"error: {e}")
        (write_parquet if suffix == ".parquet" else write_jsonl)(exs, out)
        typer.echo(f"wrote {len(exs)} rows to {out}")


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
