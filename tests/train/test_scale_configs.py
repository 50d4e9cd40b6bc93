"""Full fine-tuning at scale: shipped accelerate configs and shard-gathering saves (CPU checks)."""

from __future__ import annotations

import pytest

from brittle.resources import shipped


@pytest.mark.parametrize("name", ["fsdp", "zero3"])
def test_shipped_accelerate_configs_parse_and_say_how_to_launch(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = shipped(f"train/accelerate/{name}.yaml")
    text = path.read_text()
    header = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("accelerate launch --config_file" in ln for ln in header)  # the header states the command
    cfg = load_config_from_file(str(path))
    assert cfg.mixed_precision == "bf16"  # bf16 compute over fp32 master weights
    if name == "fsdp":
        assert cfg.distributed_type == "FSDP"
        assert cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # save_model gathers shards
    else:
        assert cfg.distributed_type == "DEEPSPEED"
        assert cfg.deepspeed_config["zero_stage"] == 3 and cfg.deepspeed_config["zero3_save_16bit_model"] is True
        assert cfg.deepspeed_config["gradient_accumulation_steps"] == 1  # = the presets' grad_accum


class FakeTrainer:
    """Records save_model calls; ``main`` plays rank 0 or another rank."""

    def __init__(self, main: bool):
        self.main, self.saved = main, []

    def is_world_process_zero(self) -> bool:
        return self.main

    def save_model(self, out: str) -> None:
        from pathlib import Path

        self.saved.append(out)
        if self.main:
            Path(out).mkdir(parents=True)
            (Path(out) / "adapter_model.safetensors").write_bytes(b"x")
            (Path(out) / "training_args.bin").write_bytes(b"pickle")


def test_every_rank_calls_save_model_only_rank0_keeps_files(tmp_path):
    """Trainer.save_model must run on every rank (FSDP / ZeRO-3 gather collectively); rank 0
    renames the result into place and drops the pickled training args."""
    from brittle.train.sft import FinetuneConfig, _save

    cfg = FinetuneConfig(run_dir=tmp_path, model="tiny:llama")
    other = FakeTrainer(main=False)
    assert _save(cfg, other, None, tmp_path) is None and len(other.saved) == 1
    rank0 = FakeTrainer(main=True)
    path = _save(cfg, rank0, None, tmp_path)
    assert path == tmp_path / "adapter" and len(rank0.saved) == 1
    assert sorted(p.name for p in path.iterdir()) == ["adapter_model.safetensors"]


def test_bf16_autocast_is_on_by_default_only_on_cuda():
    from brittle.train.sft import resolve_bf16

    assert resolve_bf16(None, "cpu") is False
    assert resolve_bf16(True, "cpu") is True and resolve_bf16(False, "cuda:0") is False
