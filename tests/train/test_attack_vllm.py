"""Attack cells on vLLM (fake ``vllm`` module): one engine on the merged start, one LoRA per cell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from brittle.errors import BrittleError
from brittle.evaluate import run as R
from brittle.models import cell_engine as CE
from brittle.models.model_args import use_model_args
from brittle.train import attack
from brittle.train.attack import AttackConfig, run_attack
from tests.evaluate.eval_fakes import fake_load_suite
from tests.models.test_model_args import _fake_vllm
from tests.train.test_attack import BENIGN, fake_eval_factory


@pytest.fixture()
def start_adapter(tmp_path_factory, tiny_tok):
    """A safety adapter to merge into the start (as in test_attack)."""
    from brittle.models.tiny import tiny_model
    from brittle.train.sft import FinetuneConfig, finetune

    d = tmp_path_factory.mktemp("aligned")
    cfg = FinetuneConfig(run_dir=d, model="tiny:llama", epochs=1, lr=1e-3, batch_size=4, device="cpu")
    return str(finetune(cfg, BENIGN[:4], model=tiny_model(tiny_tok), tokenizer=tiny_tok))


@pytest.fixture(autouse=True)
def _no_live_engine():
    CE.close()
    yield
    CE.close()


def _vllm(monkeypatch) -> tuple[list[dict], list]:
    """Fake vllm; returns (kwargs of every engine started, (n prompts, LoRA request) per generate call)."""
    got, calls, engines = {}, [], []
    _fake_vllm(monkeypatch, got, calls)
    fake = sys.modules["vllm"]
    base = fake.LLM

    class Counting(base):
        def __init__(self, **kw):
            engines.append(kw)
            super().__init__(**kw)

    fake.LLM = Counting
    return engines, calls


def _cfg(run_dir, adapter, **kw) -> AttackConfig:
    base = {"run_dir": run_dir, "model": "tiny:llama", "adapter": adapter, "n": [0, 1, 2], "kinds": ["benign"],
            "seeds": [0], "device": "cpu", "n_boot": 50, "train": {"batch_size": 2, "epochs": 1},
            "eval_suites": ["harmful", "over-refusal", "utility"], "eval_limit": 3, "gen_backend": "vllm"}
    return AttackConfig(**{**base, **kw})


def test_sweep_uses_one_engine_on_the_merged_start_and_a_lora_per_cell(tmp_path, monkeypatch, start_adapter,
                                                                         tiny_tok):
    import brittle.train.attack_data as ad
    from brittle.models.load import apply_adapter
    from brittle.models.tiny import tiny_model

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    monkeypatch.setattr(R, "load_suite", fake_load_suite)
    engines, calls = _vllm(monkeypatch)
    run = tmp_path / "run"
    with use_model_args("tensor_parallel_size=2,device_map=auto"):  # -M reaches the engine
        run_attack(_cfg(run, start_adapter))

    assert len(engines) == 1  # one engine for every cell
    kw = engines[0]
    start_dir = (run / "vllm-start").resolve()
    assert kw["model"] == str(start_dir) and kw["enable_lora"] and kw["enable_prefix_caching"]
    assert kw["max_lora_rank"] == 8  # >= the lora-attack rank (8)
    assert kw["tensor_parallel_size"] == 2 and "device_map" not in kw  # an hf-only key stays out
    assert kw["gpu_memory_utilization"] == CE.COLOCATED_GPU_MEMORY and kw["dtype"] == "bfloat16"

    # the saved start is the merged aligned model (safety adapter merged, no cell LoRA), with its tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    saved = AutoModelForCausalLM.from_pretrained(start_dir, dtype=torch.float32)
    assert not any("lora" in n for n, _ in saved.named_parameters())
    merged = apply_adapter(tiny_model(tiny_tok), start_adapter).merge_and_unload()
    for (n, p), (_, q) in zip(merged.named_parameters(), saved.named_parameters(), strict=True):
        assert torch.equal(p.detach().to(torch.bfloat16).float(), q.detach()), n
    assert AutoTokenizer.from_pretrained(start_dir).chat_template == tiny_tok.chat_template

    # N = 0: no LoRA; each N > 0 cell: a LoRA request naming that cell's adapter; one call per suite
    cells = {r["key"]: r for r in attack.JsonlStore(run / attack.CELLS, key="key").records()}
    adapters = {n: str(Path(cells[f"benign/{n}/0"]["adapter"]).resolve()) for n in (1, 2)}
    assert adapters[1] == str((run / "cells" / "benign-n1-s0" / "train" / "adapter").resolve())
    paths = [None if req is None else req.path for _, req in calls]
    assert paths == [None, None, adapters[1], adapters[1], adapters[2], adapters[2]]  # harmful, over-refusal
    assert [n for n, _ in calls] == [3] * 6  # all prompts of a suite in one generate call
    assert calls[2][1].lora_int_id != calls[4][1].lora_int_id

    # fingerprints and names stay per adapter; the utility NLL is still scored in-process
    metrics = {n: json.loads((run / "cells" / f"{k}-n{n}-s0" / "eval" / "metrics.json").read_text())
               for n, k in ((0, "aligned"), (1, "benign"), (2, "benign"))}
    assert all(m["backend"].startswith("vllm:tiny:llama merged:") for m in metrics.values())
    assert "+adapter:" not in metrics[0]["backend"] and "+adapter:" in metrics[1]["backend"]
    assert len({m["generation_fingerprint"] for m in metrics.values()}) == 3
    assert metrics[1]["adapter"] == cells["benign/1/0"]["adapter"] and metrics[0]["adapter"] == start_adapter
    assert all(c["utility_nll"] is not None and c["asr"] == 1.0 for c in cells.values())  # fake replies "ok"

    # a resumed sweep with a new cell reuses the saved start (same files) and starts one engine in a new process
    mtime = (start_dir / "model.safetensors").stat().st_mtime_ns
    CE.close()
    run_attack(_cfg(run, start_adapter, n=[0, 1, 2, 3]))
    assert len(engines) == 2 and engines[1]["model"] == str(start_dir)
    assert (start_dir / "model.safetensors").stat().st_mtime_ns == mtime


def test_auto_falls_back_to_hf_without_vllm_or_cuda(monkeypatch, tmp_path):
    start = attack.Start(None, None, None, "tiny:llama")
    cfg = AttackConfig(run_dir=tmp_path, model="tiny:llama", adapter=None, device="auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    assert CE.resolve("auto", "cuda") == "hf" and attack._cell_engine(cfg, start) is None
    engines, _ = _vllm(monkeypatch)  # installed now
    assert CE.resolve("auto", "cuda") == "vllm" and CE.resolve("auto", "cpu") == "hf"
    assert CE.resolve("hf", "cuda") == "hf"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert CE.resolve("auto", "cuda") == "hf" and CE.resolve("vllm", "cpu") == "vllm"
    assert engines == []


def test_sweep_on_cpu_with_auto_generates_with_hf(tmp_path, monkeypatch):
    """The default (auto) on the CPU: no engine, _evaluate gets no backend (HF in-process)."""
    import brittle.train.attack_data as ad

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    engines, _ = _vllm(monkeypatch)
    seen = []

    def fake(cfg, out, adapter, model, tok, **kw):
        seen.append(kw)
        return fake_eval_factory([])(cfg, out, adapter, model, tok)

    monkeypatch.setattr(attack, "_evaluate", fake)
    run_attack(_cfg(tmp_path, None, n=[0, 1], gen_backend="auto"))
    assert engines == [] and seen == [{}, {}] and not (tmp_path / "vllm-start").exists()


def test_full_finetuning_falls_back_to_hf(tmp_path, monkeypatch, caplog):
    engines, _ = _vllm(monkeypatch)
    cfg = _cfg(tmp_path, None, preset="qi2023-full")
    with caplog.at_level("INFO", logger="brittle.train.attack"):
        assert attack._cell_engine(cfg, attack.Start(None, None, None, "tiny:llama")) is None
    assert engines == [] and "full fine-tuning cells are evaluated with HF" in caplog.text


def test_vllm_chosen_but_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(BrittleError, match=r"pip install 'brittle\[vllm\]'"):
        CE.engine(tmp_path, max_lora_rank=8)


def test_model_args_reach_the_engine_and_one_engine_lives_at_a_time(tmp_path, monkeypatch):
    engines, _ = _vllm(monkeypatch)
    with use_model_args("tensor_parallel_size=4,gpu_memory_utilization=0.5,dtype=bf16,max_memory=0:70GiB"):
        a = CE.engine(tmp_path / "a", max_lora_rank=16, label="m merged:x", identity="id")
        assert CE.engine(tmp_path / "a", max_lora_rank=16, label="m merged:x", identity="id") is a  # cached
    assert engines[0]["tensor_parallel_size"] == 4 and engines[0]["gpu_memory_utilization"] == 0.5
    assert engines[0]["dtype"] == "bfloat16" and "max_memory" not in engines[0]
    assert engines[0]["max_lora_rank"] == 16 and a.name == "vllm:m merged:x" and a.identity == "id"
    b = CE.engine(tmp_path / "b", max_lora_rank=16)  # another base model: the first is closed
    assert len(engines) == 2 and CE.live() is b is not a
    CE.engine(tmp_path / "b", max_lora_rank=16, identity="re-saved")  # new weights in the same dir
    assert len(engines) == 3
    assert [CE.lora_rank_cap(r) for r in (1, 8, 9, 64, 65)] == [8, 8, 16, 64, 128]


def test_cli_flag_and_model_args_reach_the_sweep(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from brittle.cli import app
    from brittle.models.model_args import current_model_args

    seen = {}

    def fake_run(cfg):
        seen.update(backend=cfg.gen_backend, tp=current_model_args().tensor_parallel_size)
        import pandas as pd

        return pd.DataFrame()

    monkeypatch.setattr(attack, "run_attack", fake_run)
    res = CliRunner().invoke(app, ["attack", "--gen-backend", "vllm", "-M", "tensor_parallel_size=2",
                                   "--run-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    assert seen == {"backend": "vllm", "tp": 2}
    bad = CliRunner().invoke(app, ["attack", "--gen-backend", "tpu"])
    assert bad.exit_code != 0


def test_save_start_refuses_a_model_with_lora_layers_and_reuses_a_saved_one(tmp_path, tiny_lm, tiny_tok):
    from peft import LoraConfig, get_peft_model

    out = CE.save_start(tiny_lm, tiny_tok, tmp_path / "start", label="tiny:llama", identity="a", dtype="float32")
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    assert CE.save_start(tiny_lm, tiny_tok, out, label="tiny:llama", identity="a", dtype="float32") == out
    assert (out / "model.safetensors").stat().st_mtime_ns == mtime and not list(tmp_path.glob("start.tmp*"))
    CE.save_start(tiny_lm, tiny_tok, out, label="tiny:llama", identity="b", dtype="float32")  # other weights
    assert json.loads((out / CE.START_INFO).read_text())["identity"] == "b"
    peft = get_peft_model(tiny_lm, LoraConfig(r=4, target_modules=["q_proj"]))
    with pytest.raises(BrittleError, match="LoRA layers"):
        CE.save_start(peft.base_model.model, tiny_tok, tmp_path / "s2", label="x", identity="c")
