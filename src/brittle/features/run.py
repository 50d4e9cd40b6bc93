"""``brittle features``: compute repr / grad features of a pool into a FeatureStore.

Reads top to bottom: config -> examples -> model -> fingerprint -> shard plan ->
compute each pending shard -> merge -> summary JSON in the run directory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from brittle.config import StageConfig
from brittle.errors import BrittleError
from brittle.features.grads import LESS_TARGETS, GradFeatureConfig
from brittle.fingerprint import file_sha256, fingerprint

log = logging.getLogger(__name__)


class FeaturesConfig(StageConfig):
    """Per-example features of a data pool under the (aligned) model."""

    kind: Literal["repr", "grad"] = Field("grad", description="repr: last-token hidden state; grad: projected gradient.")
    model: str = Field("embedded:smollm2-135m", description="Model spec.")
    adapter: Path | None = Field(None, description="PEFT adapter of the aligned model (merged before features).")
    lora_from_adapter: bool = Field(
        False, description="Use the adapter's own LoRA A/B as the gradient space (LESS warm-up adapter).")
    adam_moments: Path | None = Field(None, description="safetensors with '<block>.exp_avg'/'.exp_avg_sq' (optimizer=adam).")
    data: str = Field("benign", description="Dataset name (brittle.data) or a data file.")
    split: str | None = Field("train", description="Split of a named dataset.")
    limit: int | None = Field(None, description="Use only the first n examples.")
    batch_size: int = Field(16, ge=1, description="Examples per forward/backward batch.")
    k: int = Field(8192, ge=1, description="Projection dimension of the gradient features (kind grad).")
    projection: Literal["kronecker", "dense"] = Field("kronecker", description="Gradient projection: kronecker | dense.")
    proj_dist: Literal["rademacher", "gaussian"] = "rademacher"
    seed: int = 0
    space: Literal["lora", "linear"] = "lora"
    lora_rank: int = Field(128, description="Rank of the LoRA gradient space (space=lora).")
    lora_alpha: float = 512.0
    lora_targets: list[str] = Field(
        default_factory=lambda: list(LESS_TARGETS), description="Layer names of the LoRA gradient space (comma-separated)."
    )
    optimizer: Literal["sgd", "adam"] = Field(
        "sgd", description="Gradient features as sgd or adam updates (adam needs adam_moments)."
    )
    max_length: int | None = Field(512, description="Truncate sequences to this many tokens.")
    candidate_tokens: int | None = Field(None, description="Use only the first n response tokens.")
    shard_size: int = Field(256, ge=1, description="Examples per shard (unit of resume).")
    device: str = Field("auto", description="auto | cpu | cuda | mps")
    dtype: str = Field("auto", description="auto | float32 | bfloat16 | float16")
    rank: int | None = Field(None, description="Process rank (default: env RANK or 0).")
    world_size: int | None = Field(None, description="Processes (default: env WORLD_SIZE or 1).")

    def grad_config(self) -> GradFeatureConfig:
        return GradFeatureConfig(
            space=self.space, lora_rank=self.lora_rank, lora_alpha=self.lora_alpha,
            lora_targets=self.lora_targets, k=self.k, projection=self.projection,
            proj_dist=self.proj_dist, seed=self.seed, optimizer=self.optimizer,
            batch_size=self.batch_size, max_length=self.max_length,
            max_response_tokens=self.candidate_tokens)


def load_examples(data: str, split: str | None = None, limit: int | None = None) -> list[Any]:
    """A data file (via brittle.data.io.read_examples) or a named embedded dataset."""
    if Path(data).exists():
        from brittle.data.io import read_examples

        exs = read_examples(Path(data))
        return exs[:limit] if limit else exs
    from brittle.data.embedded import load_dataset

    return load_dataset(data, split, limit=limit)


def features_fingerprint(cfg: FeaturesConfig, examples: Sequence[Any]) -> str:
    """fingerprint(model spec, adapter hash, example ids + content, feature config)."""
    adapter = None
    if cfg.adapter is not None:
        w = Path(cfg.adapter) / "adapter_model.safetensors"
        adapter = file_sha256(w) if w.exists() else str(cfg.adapter)
    moments = file_sha256(cfg.adam_moments) if cfg.adam_moments else None
    data = [(e.id, fingerprint(e.messages)) for e in examples]
    feat = cfg.model_dump(mode="json", include={
        "kind", "lora_from_adapter", "batch_size", "k", "projection", "proj_dist", "seed", "space",
        "lora_rank", "lora_alpha", "lora_targets", "optimizer", "max_length", "candidate_tokens",
        "shard_size", "dtype"})
    from brittle.models.identity import model_identity

    return fingerprint("features/v1", cfg.model, adapter, moments, data, feat, model_identity(cfg.model))


def _load_moments(path: Path) -> dict[str, tuple[Any, Any]]:
    from safetensors.torch import load_file

    t = load_file(str(path))
    blocks = {k.rsplit(".", 1)[0] for k in t}
    return {b: (t[f"{b}.exp_avg"], t[f"{b}.exp_avg_sq"]) for b in blocks}


def run_features(
    cfg: FeaturesConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    examples: Sequence[Any] | None = None,
    on_shard: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Compute this rank's pending shards, merge when complete; return a summary dict."""
    from brittle.features.grads import projected_grads
    from brittle.features.hooks import encode_examples
    from brittle.features.reprs import last_token_reprs
    from brittle.features.store import FeatureStore
    from brittle.store import write_json

    examples = list(examples) if examples is not None else load_examples(cfg.data, cfg.split, cfg.limit)
    if not examples:
        raise BrittleError(f"{cfg.data}: no examples")
    by_id = {e.id: e for e in examples}
    if len(by_id) != len(examples):
        raise BrittleError(f"{cfg.data}: duplicate example ids")
    if model is None:
        from brittle.models.load import load_model

        model, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device=cfg.device, adapter=cfg.adapter)
    if hasattr(model, "merge_and_unload") and not (cfg.kind == "grad" and cfg.lora_from_adapter):
        model = model.merge_and_unload()
    rank = cfg.rank if cfg.rank is not None else int(os.environ.get("RANK", "0"))
    world = cfg.world_size if cfg.world_size is not None else int(os.environ.get("WORLD_SIZE", "1"))
    fp = features_fingerprint(cfg, examples)
    store = FeatureStore(cfg.run_dir / "features", fp, rank=rank, world_size=world)

    encs = encode_examples(tokenizer, examples, max_length=cfg.max_length,
                           max_response_tokens=cfg.candidate_tokens, require_response=cfg.kind == "grad")
    order = sorted(range(len(examples)), key=lambda i: (-len(encs[i].input_ids), i))
    ids = [examples[i].id for i in order]
    shards = store.plan([ids[j:j + cfg.shard_size] for j in range(0, len(ids), cfg.shard_size)],
                        meta={"kind": cfg.kind, "model": cfg.model, "data": cfg.data})
    moments = _load_moments(cfg.adam_moments) if cfg.adam_moments else None
    gcfg = cfg.grad_config()
    todo = store.pending()
    log.info("features %s: %d shards, %d pending for rank %d/%d", fp, len(shards), len(todo), rank, world)
    for j in todo:
        exs = [by_id[i] for i in shards[j]]
        if cfg.kind == "repr":
            feats = last_token_reprs(model, tokenizer, exs, cfg.batch_size, max_length=cfg.max_length)
        else:
            feats = projected_grads(model, tokenizer, exs, gcfg, moments=moments)
        store.write_shard(j, shards[j], feats)
        if on_shard is not None:
            on_shard(j)
    summary = {"fingerprint": fp, "store": str(store.dir), "n": len(ids), "shards": len(shards),
               "kind": cfg.kind, "rank": rank, "world_size": world, "complete": store.complete()}
    if summary["complete"]:
        store.merge()
        _, feats = store.load(ids[:1])
        summary["dim"] = int(feats.shape[1])
        if rank == 0:
            cfg.echo("FeaturesConfig")
            write_json(cfg.run_dir / "features.json", summary)
    return summary
