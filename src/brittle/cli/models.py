"""`brittle models …`"""

from __future__ import annotations

import typer

from brittle.cli.common import JSON_OPT, emit


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="Inspect model specs (embedded:…, tiny:llama, dir, .gguf, hub id).")
    app.add_typer(models, name="models")

    @models.command("info")
    def info(spec: str = typer.Argument("embedded:smollm2-135m"), json_: bool = JSON_OPT) -> None:
        """Parameters, architecture and source of a model spec."""
        from brittle.models.load import model_info

        d = model_info(spec)
        emit(d, json_, "\n".join(f"{k:>16}: {v}" for k, v in d.items()))

    @models.command("list")
    def list_(json_: bool = JSON_OPT) -> None:
        """Embedded models (offline, from PyPI packages)."""
        from brittle.models.load import EMBEDDED

        rows = [{"spec": f"embedded:{k}", "description": v.description} for k, v in EMBEDDED.items()]
        emit(rows, json_, "\n".join(f"{r['spec']:<28} {r['description']}" for r in rows))
