"""`brittle lab`"""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv
from brittle.cli.model_args import MODEL_ARGS_OPT


def register(app: typer.Typer) -> None:
    from brittle.cli.options import field_option, uses_config
    from brittle.lab import LabConfig as _LC

    @app.command("lab")
    @uses_config(_LC)
    def lab(
        model: str | None = field_option(_LC, "model"),
        quick: bool | None = field_option(_LC, "quick", "--quick/--full"),
        paper: str | None = typer.Option(None, "--paper", help="Paper preset (shipped LabConfig YAML): qi2023 | he2024; see docs/scale.md."),
        stages: str | None = field_option(_LC, "stages"),
        run_dir: Path | None = field_option(_LC, "run_dir"),
        config: Path | None = typer.Option(None, help="YAML LabConfig."),
        redact: bool | None = field_option(_LC, "redact", "--redact/--no-redact"),
        device: str | None = field_option(_LC, "device"),
        reference: Path | None = field_option(_LC, "reference"),
        retrain_alignment: bool | None = field_option(_LC, "retrain_alignment", "--retrain-alignment/--no-retrain-alignment"),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        """Run the end-to-end experiment and write runs/lab/index.html."""
        from brittle.lab import LabConfig, run_lab

        if paper is not None:
            from brittle.errors import BrittleError
            from brittle.lab_papers import paper_config

            if config is not None:
                raise BrittleError("--paper and --config are exclusive (a paper preset is a shipped config)")
            config = paper_config(paper)

        cfg = LabConfig.load(
            config,
            model=model,
            quick=quick,
            stages=split_csv(stages) or None,
            run_dir=run_dir,
            redact=redact,
            device=device,
            reference=reference,
            retrain_alignment=retrain_alignment,
        )
        result = run_lab(cfg)
        failed = [k for k, v in result["stages"].items() if not v["ok"]]
        human = f"report: {result['report']}" + (f"\nfailed stages: {failed}" if failed else "")
        emit(result, json_, human)
        if failed:
            raise typer.Exit(1)
