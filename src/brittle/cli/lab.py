"""`brittle lab`"""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def register(app: typer.Typer) -> None:
    @app.command("lab")
    def lab(
        model: str = typer.Option(None, help="Model spec (default embedded:smollm2-135m)."),
        quick: bool = typer.Option(True, "--quick/--full", help="Quick sizes (CPU) or the full grid."),
        stages: str = typer.Option(None, help="Comma-separated subset of stages."),
        run_dir: Path = typer.Option(None, help="Run directory (default runs/lab)."),
        config: Path = typer.Option(None, help="YAML LabConfig."),
        redact: bool = typer.Option(None, "--redact/--no-redact", help="Redact harmful generations."),
        device: str = typer.Option(None, help="cpu | cuda | auto"),
        reference: Path = typer.Option(
            None, help="Finished lab on another model: side-by-side report + selection transfer."
        ),
        json_: bool = JSON_OPT,
    ) -> None:
        """Run the end-to-end experiment and write runs/lab/index.html."""
        from brittle.lab import LabConfig, run_lab

        cfg = LabConfig.load(
            config,
            model=model,
            quick=quick,
            stages=split_csv(stages) or None,
            run_dir=run_dir,
            redact=redact,
            device=device,
            reference=reference,
        )
        result = run_lab(cfg)
        failed = [k for k, v in result["stages"].items() if not v["ok"]]
        human = f"report: {result['report']}" + (f"\nfailed stages: {failed}" if failed else "")
        emit(result, json_, human)
        if failed:
            raise typer.Exit(1)
