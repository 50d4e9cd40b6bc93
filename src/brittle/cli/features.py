"""`brittle features …`"""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv
from brittle.cli.model_args import MODEL_ARGS_OPT


def register(app: typer.Typer) -> None:
    from brittle.cli.options import field_option, uses_config
    from brittle.features.run import FeaturesConfig as _FC

    @app.command("features")
    @uses_config(_FC)
    def features(
        kind: str | None = field_option(_FC, "kind"),
        model: str | None = field_option(_FC, "model"),
        adapter: Path | None = field_option(_FC, "adapter"),
        data: str | None = field_option(_FC, "data"),
        split: str | None = field_option(_FC, "split"),
        limit: int | None = field_option(_FC, "limit", "--max-examples"),
        run_dir: Path | None = field_option(_FC, "run_dir"),
        config: Path | None = typer.Option(None, "--config", help="YAML FeaturesConfig."),
        batch_size: int | None = field_option(_FC, "batch_size"),
        k: int | None = field_option(_FC, "k", "--grad-dim"),
        projection: str | None = field_option(_FC, "projection"),
        lora_rank: int | None = field_option(_FC, "lora_rank"),
        lora_targets: str | None = field_option(_FC, "lora_targets"),
        optimizer: str | None = field_option(_FC, "optimizer"),
        adam_moments: Path | None = field_option(_FC, "adam_moments"),
        candidate_tokens: int | None = field_option(_FC, "candidate_tokens"),
        max_length: int | None = field_option(_FC, "max_length"),
        device: str | None = field_option(_FC, "device"),
        dtype: str | None = field_option(_FC, "dtype"),
        model_args: str | None = MODEL_ARGS_OPT,
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
