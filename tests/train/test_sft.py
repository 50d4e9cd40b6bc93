"""finetune(): loss goes down, labels are response-only, adapter round-trips, presets apply."""

from __future__ import annotations

import json

import pytest
import torch

from brittle.data.schema import Example
from brittle.errors import BrittleError
from brittle.models.chat import IGNORE, collate
from brittle.train.sft import FinetuneConfig, encode_examples, finetune, make_collator, train_model


def _examples(n: int = 8) -> list[Example]:
    return [
        Example.from_pair(f"how to list steps {i}", "Sure, here is a step by step answer: 1. first 2. second")
        for i in range(n)
    ]


def _cfg(tmp_path, **kw) -> FinetuneConfig:
    base = {"run_dir": tmp_path / "ft", "model": "tiny:llama", "epochs": 5, "lr": 5e-3, "batch_size": 4,
                "device": "cpu", "lora_dropout": 0.0}
    return FinetuneConfig(**{**base, **kw})


def test_finetune_lowers_loss_and_writes_outputs(tmp_path, tiny_tok, tiny_lm):
    path = finetune(_cfg(tmp_path), _examples(), model=tiny_lm, tokenizer=tiny_tok)
    log = [json.loads(x) for x in (tmp_path / "ft" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 10  # 8 examples / batch 4 × 5 epochs, one record per step
    assert [r["step"] for r in log] == list(range(1, 11))
    assert log[-1]["loss"] < log[0]["loss"] - 0.5
    assert (path / "adapter_model.safetensors").exists()
    assert not list(path.glob("*.bin"))
    assert (tmp_path / "ft" / "loss.png").stat().st_size > 1000
    assert (tmp_path / "ft" / "finetune_config.yaml").exists()
    stats = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert stats["n_trained"] == 8 and stats["n_dropped"] == 0 and stats["steps"] == 10


def test_same_seed_same_trajectory(tmp_path, tiny_tok):
    from brittle.models.tiny import tiny_model

    runs = []
    for i in range(2):
        res = train_model(_cfg(tmp_path / str(i), epochs=2), _examples(), model=tiny_model(tiny_tok),
                          tokenizer=tiny_tok)
        runs.append([json.loads(x)["loss"] for x in (tmp_path / str(i) / "ft" / "train_log.jsonl").read_text().splitlines()])
        assert res.stats["steps"] == 4
    assert runs[0] == runs[1]


def test_adapter_reloads_with_apply_adapter(tmp_path, tiny_tok, tiny_lm):
    from brittle.models.load import apply_adapter
    from brittle.models.tiny import tiny_model

    res = train_model(_cfg(tmp_path), _examples(), model=tiny_lm, tokenizer=tiny_tok)
    batch = collate(encode_examples(tiny_tok, _examples(2), 256)[0], tiny_tok.pad_token_id)
    with torch.no_grad():
        trained = res.model(**batch).logits
        reloaded = apply_adapter(tiny_model(tiny_tok), res.path).eval()(**batch).logits
        base = tiny_model(tiny_tok)(**batch).logits
    assert torch.allclose(trained, reloaded, atol=1e-5)
    assert not torch.allclose(trained, base, atol=1e-3)


def test_label_mask_prompt_tokens_contribute_nothing(tiny_tok, tiny_lm):
    """Labels are IGNORE on prompt tokens; the training loss equals a manual CE over the
    response tokens only, and its gradient w.r.t. prompt-position logits is exactly 0."""
    exs = [Example.from_pair("explain a process", "I'm sorry, but I cannot help with that request.",
                             system="You are helpful.")]
    enc, _ = encode_examples(tiny_tok, exs, None)
    ids, labels = enc[0].input_ids, enc[0].labels
    resp_ids = tiny_tok(exs[0].response, add_special_tokens=False)["input_ids"]
    n_resp = sum(label != IGNORE for label in labels)
    assert n_resp == len(resp_ids) + 1  # response + end-of-turn token
    first = labels.index(next(label for label in labels if label != IGNORE))
    assert all(label == IGNORE for label in labels[:first])
    assert labels[first:first + len(resp_ids)] == resp_ids

    batch = make_collator(tiny_tok.pad_token_id)([{"input_ids": ids, "labels": labels}])
    out = tiny_lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(
        logits[0, :-1], batch["labels"][0, 1:], ignore_index=IGNORE
    )
    hf_loss = tiny_lm(**batch).loss
    assert torch.allclose(loss, hf_loss, atol=1e-5)
    logp = torch.log_softmax(logits[0, :-1].double(), -1)
    tgt = torch.tensor(ids[1:])
    keep = torch.tensor([label != IGNORE for label in labels[1:]])
    manual = -(logp[torch.arange(len(tgt)), tgt][keep]).mean()
    full = -(logp[torch.arange(len(tgt)), tgt]).mean()
    assert abs(manual.item() - loss.item()) < 1e-4
    assert abs(full.item() - loss.item()) > 1e-3  # the mask changes the loss
    loss.backward()
    g = logits.grad[0]
    prompt_positions = [t for t in range(len(ids) - 1) if labels[t + 1] == IGNORE]
    assert prompt_positions and g[prompt_positions].abs().max().item() == 0.0
    assert g[first - 1].abs().max().item() > 0


def test_zero_response_examples_dropped_and_counted(tmp_path, tiny_tok, tiny_lm):
    long_prompt = "explain " * 200
    exs = _examples(4) + [Example.from_pair(long_prompt, "Sure.")]
    res = train_model(_cfg(tmp_path, max_length=64, epochs=1), exs, model=tiny_lm, tokenizer=tiny_tok)
    assert res.stats["n_dropped"] == 1 and res.stats["n_trained"] == 4
    with pytest.raises(BrittleError, match="no trainable examples"):
        train_model(_cfg(tmp_path, max_length=64), exs[-1:], model=tiny_lm, tokenizer=tiny_tok)


def test_starting_adapter_is_merged_and_a_fresh_adapter_trained(tmp_path, tiny_tok):
    """A starting (safety) adapter is merged into the weights and never trained further: the
    trained model has one fresh adapter of the config's shape, and the starting adapter's
    files are untouched."""
    from peft import PeftModel
    from pydantic import ValidationError

    from brittle.fingerprint import file_sha256
    from brittle.models.tiny import tiny_model

    start = finetune(_cfg(tmp_path / "a", epochs=1), _examples(), model=tiny_model(tiny_tok), tokenizer=tiny_tok)
    sha = file_sha256(start / "adapter_model.safetensors")
    res = train_model(_cfg(tmp_path / "b", adapter=str(start), lora_r=4, lora_alpha=8, epochs=1),
                      _examples(), model=tiny_model(tiny_tok), tokenizer=tiny_tok)
    assert isinstance(res.model, PeftModel) and list(res.model.peft_config) == ["default"]
    saved = json.loads((res.path / "adapter_config.json").read_text())
    assert (saved["r"], saved["lora_alpha"]) == (4, 8)  # the config's shape, not the start's r=16
    trainable = {n: p for n, p in res.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A.default." in n or ".lora_B.default." in n for n in trainable)
    assert all(p.shape[0] == 4 for n, p in trainable.items() if "lora_A" in n)
    assert res.stats["trainable_params"] == sum(p.numel() for p in trainable.values())
    assert file_sha256(start / "adapter_model.safetensors") == sha
    with pytest.raises(ValidationError):
        FinetuneConfig(start="continue")  # the 'continue the safety adapter' path is gone


def test_echo_is_the_recipe_without_output_dir(tmp_path):
    import yaml

    a = FinetuneConfig(run_dir=tmp_path / "a", model="m1", preset="lora-attack").echo("finetune_config")
    b = FinetuneConfig(run_dir=tmp_path / "b", model="m2 merged:/x", preset="lora-attack").echo("finetune_config")
    da, db = yaml.safe_load(a.read_text()), yaml.safe_load(b.read_text())
    assert "run_dir" not in da and {k for k in da if da[k] != db[k]} == {"model"}
    assert (da["lora_r"], da["lora_alpha"], da["lora_dropout"], da["lr"], da["epochs"]) == (8, 16, 0.0, 1e-4, 5)


def test_merged_start_label_loads_and_merges(tmp_path, tiny_tok, monkeypatch):
    """``model: "SPEC merged:DIR"`` loads SPEC in fp32 and merges DIR before training."""
    from brittle.models import load
    from brittle.models.tiny import tiny_model

    start = finetune(_cfg(tmp_path / "a", epochs=1), _examples(), model=tiny_model(tiny_tok), tokenizer=tiny_tok)
    seen = []
    real = load.load_model

    def spy(spec, **kw):
        seen.append((spec, kw.get("dtype")))
        return real(spec, **kw)

    monkeypatch.setattr(load, "load_model", spy)
    res = train_model(_cfg(tmp_path / "b", model=f"tiny:llama merged:{start}", epochs=1, max_steps=1), _examples(4))
    assert seen == [("tiny:llama", "float32")]
    assert list(res.model.peft_config) == ["default"] and res.stats["steps"] == 1


def test_gradient_checkpointing_trains_and_saves_only_adapter_files(tmp_path, tiny_tok, tiny_lm):
    res = train_model(_cfg(tmp_path, gradient_checkpointing=True, epochs=2), _examples(4),
                      model=tiny_lm, tokenizer=tiny_tok)
    assert res.stats["final_loss"] < res.stats["first_loss"]
    assert res.model.get_base_model().is_activation_checkpointing
    assert sorted(p.name for p in res.path.iterdir()) == ["README.md", "adapter_config.json",
                                                          "adapter_model.safetensors"]


def test_full_finetune_saves_model(tmp_path, tiny_tok, tiny_lm):
    path = finetune(_cfg(tmp_path, method="full", epochs=1, lr=1e-3), _examples(4),
                    model=tiny_lm, tokenizer=tiny_tok)
    assert path.name == "model" and list(path.glob("*.safetensors"))
    assert (path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists()


def test_presets_fill_unset_fields_only():
    c = FinetuneConfig(preset="qi2023-full")
    assert (c.method, c.epochs, c.lr, c.batch_size) == ("full", 5, 5e-5, 10)
    c = FinetuneConfig(preset="qi2023-full", lr=1e-5)
    assert c.lr == 1e-5 and c.epochs == 5
    c = FinetuneConfig.load(None, preset="lora-attack", epochs=None)
    assert (c.method, c.lora_r, c.lr) == ("lora", 8, 1e-4)
    with pytest.raises(BrittleError, match="unknown preset"):
        FinetuneConfig(preset="nope")


def test_presets_have_sources():
    from brittle.train.presets import preset_names, preset_source

    assert {"qi2023-full", "he2024-full", "lora-attack", "align-lora"} <= set(preset_names())
    assert "2310.03693" in preset_source("qi2023-full")
    assert "2404.01099" in preset_source("he2024-full")
    for name in preset_names():
        FinetuneConfig(preset=name)  # every preset validates


def test_micro_batches_keep_the_examples_per_step():
    from brittle.train.sft import micro_batches

    assert micro_batches(10, 1, 256, 768) == (2, 5)  # 2 x 256 fits, 5 x 256 does not
    assert micro_batches(8, 1, 96, 768) == (8, 1)  # fits: unchanged
    assert micro_batches(8, 2, 512, 768) == (1, 16)
    assert micro_batches(7, 1, 2048, 768) == (1, 7)  # nothing fits: one example at a time
    for b, a, L, t in [(10, 1, 256, 768), (12, 3, 100, 500), (9, 1, 64, 200)]:
        micro, accum = micro_batches(b, a, L, t)
        assert micro * accum == b * a and b % micro == 0


def test_cpu_micro_batches_give_the_same_update(tmp_path, tiny_tok):
    """A batch of 4 split into 4 accumulated micro-batches of 1 (``cpu_micro_tokens``) trains
    the same adapter as one batch of 4 (unequal lengths, so the token normalisation matters)."""
    from safetensors.torch import load_file

    from brittle.models.tiny import tiny_model

    exs = [Example.from_pair(f"q{i}", "word " * (3 + 5 * i)) for i in range(8)]
    weights = []
    for name, tokens in (("whole", None), ("micro", 40)):
        cfg = _cfg(tmp_path / name, epochs=1, max_length=40, cpu_micro_tokens=tokens)
        res = train_model(cfg, exs, model=tiny_model(tiny_tok), tokenizer=tiny_tok)
        assert res.stats["steps"] == 2
        weights.append(load_file(str(res.path / "adapter_model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    moved = 0.0
    for k in weights[0]:
        torch.testing.assert_close(weights[0][k], weights[1][k], rtol=1e-4, atol=1e-5)
        moved += float(weights[0][k].abs().sum())
    assert moved > 0
