"""One short check on the real embedded model (marked `embedded`: loads SmolLM2-135M)."""

from __future__ import annotations

import math

import pytest

from brittle.data.schema import Example


@pytest.mark.embedded
def test_one_lora_step_on_embedded_model(tmp_path):
    from brittle.models.load import load_model
    from brittle.train.sft import FinetuneConfig, train_model

    exs = [Example.from_pair("Say hi.", "I'm sorry, but I can't help with that.")] * 2
    cfg = FinetuneConfig(run_dir=tmp_path, model="embedded:smollm2-135m", preset="align-lora",
                         max_steps=1, batch_size=2, max_length=64, device="cpu")
    res = train_model(cfg, exs)
    assert res.stats["steps"] == 1 and math.isfinite(res.stats["first_loss"])
    model, _ = load_model("embedded:smollm2-135m", device="cpu", adapter=res.path)
    assert type(model).__name__ == "PeftModelForCausalLM"
