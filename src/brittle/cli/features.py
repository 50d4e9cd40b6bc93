"""`brittle features …`"""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def register(app: typer.Typer) -> None:
    @app.command("features")
    def features(
        kind: str = typer.Option(None, "--kind", help="repr (last-token hidden state) or grad (projected gradient)."),
        model: str = typer.Option(None, "--model", help="Model spec (default embedded:smollm2-135m)."),
        adapter: Path = typer.Option(None, "--adapter", help="PEFT adapter of the aligned model."),
        data: str = typer.Option(None, "--data", help="Dataset name or data file (default benign)."),
        split: str = typer.Option(None, "--split", help="Split of a named dataset (default train)."),
        limit: int = typer.Option(None, "--limit", help="Use only the first n examples."),
        run_dir: Path = typer.Option(None, "--run-dir", help="Output directory."),
        config: Path = typer.Option(None, "--config", help="YAML FeaturesConfig."),
        batch_size: int = typer.Option(None, "--batch-size"),
        k: int = typer.Option(None, "--k", help="Projection dimension (default 8192)."),
        projection: str = typer.Option(None, "--projection", help="kronecker|dense."),
        lora_rank: int = typer.Option(None, "--lora-rank"),
        lora_targets: str = typer.Option(None, "--lora-targets", help="Comma-separated layer names."),
        optimizer: str = typer.Option(None, "--optimizer", help="sgd|adam (adam needs --adam-moments)."),
        adam_moments: Path = typer.Option(None, "--adam-moments"),
        candidate_tokens: int = typer.Option(None, "--candidate-tokens"),
        max_length: int = typer.Option(None, "--max-length"),
        device: str = typer.Option(None, "--device"),
        dtype: str = typer.Option(None, "--dtype"),
        json_: bool = JSON_OPT,
    ) -> None:
        """Per-example features of a pool into a resumable, fingerprinted feature store.

        Multi-GPU: `accelerate launch -m brittle.cli features ...` (each rank writes its shards).
        """
        from brittle.features.run import FeaturesConfig, run_features

        cfg = FeaturesConfig.load(
            config, kind=kind, model=model, adapter=adapter, data=data, split=split, limit=limit,
            run_dir=run_dir, batch_size=batch_size, k=k, projection=projection, lora_rank=lora_rank,
            lora_targets=split_csv(lora_targets) or None, optimizer=optimizer, adam_moments=adam_moments,
            candidate_tokens=candidate_tokens, max_length=max_length, device=device, dtype=dtype)
        s = run_features(cfg)
        emit(s, json_, f"{s['kind']} features of {s['n']} examples -> {s['store']}"
             + ("" if s["complete"] else " (other ranks pending)"))
