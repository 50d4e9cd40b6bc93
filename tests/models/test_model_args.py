"""-M/--model-args: the pure parser, and each key reaching the backend that understands it."""

from __future__ import annotations

import copy
import sys
import types

import pytest
import torch

from brittle.errors import BrittleError
from brittle.models.backends import make_backend
from brittle.models.load import load_model
from brittle.models.model_args import (
    ModelArgs,
    current_model_args,
    parse_model_args,
    split_top_level,
    use_model_args,
)


def test_parser_types_values_and_keeps_json_commas():
    a = parse_model_args('dtype=bfloat16, device_map=auto,max_memory=0:70GiB;cpu:200GiB,'
                         'tensor_parallel_size=4,gpu_memory_utilization=0.85,max_concurrency=16,'
                         'extra_body={"top_k": 1, "stop": ["a", "b"]},allow_pickle=true,trust_remote_code=no,'
                         'revision=main')
    assert a.dtype == "bfloat16" and a.device_map == "auto" and a.revision == "main"
    assert a.max_memory == {"0": "70GiB", "cpu": "200GiB"}
    assert a.tensor_parallel_size == 4 and a.gpu_memory_utilization == 0.85 and a.max_concurrency == 16
    assert a.extra_body == {"top_k": 1, "stop": ["a", "b"]}
    assert a.allow_pickle is True and a.trust_remote_code is False
    assert parse_model_args('device_map={"": "cpu"}').device_map == {"": "cpu"}
    assert parse_model_args("") == ModelArgs() and parse_model_args(None).given() == {}
    assert split_top_level('a=1,b={"x": 1, "y": [1,2]},c="p,q"') == ['a=1', 'b={"x": 1, "y": [1,2]}', 'c="p,q"']


@pytest.mark.parametrize("text, match", [
    ("colour=red", r"unknown model arg 'colour'; valid: dtype, device_map, revision"),
    ("dtype=int7", "dtype must be one of"),
    ("tensor_parallel_size=0", "tensor_parallel_size"),
    ("gpu_memory_utilization=1.5", "gpu_memory_utilization"),
    ("max_concurrency=lots", "max_concurrency"),
    ("extra_body={bad json", "invalid JSON"),
    ("max_memory=0", "DEVICE:SIZE"),
    ("dtype", "key=value"),
    ("dtype=bf16,dtype=fp16", "given twice"),
])
def test_parser_errors_are_one_line(text, match):
    with pytest.raises(BrittleError, match=match) as e:
        parse_model_args(text)
    assert "\n" not in str(e.value)


def test_hf_device_map_loading_on_cpu_uses_accelerate(tmp_path, tiny_lm, tiny_tok, monkeypatch):
    tiny_lm.save_pretrained(tmp_path, safe_serialization=True)
    tiny_tok.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    seen = {}
    real = AutoModelForCausalLM.from_pretrained

    def spy(*a, **k):
        seen.update(copy.deepcopy(k))  # transformers rewrites max_memory in place
        return real(*a, **k)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    moved = []
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: moved.append(a) or self)
    for dm in ('{"": "cpu"}', "auto"):
        model, _ = load_model(str(tmp_path), device="cpu",
                              model_args=parse_model_args(f"device_map={dm},dtype=float32,max_memory=cpu:2GiB"))
        assert seen["device_map"] == ({"": "cpu"} if dm != "auto" else "auto")
        assert seen["max_memory"] == {"cpu": "2GiB"} and seen["dtype"] == torch.float32
        assert {p.device.type for p in model.parameters()} == {"cpu"}  # placed by transformers/accelerate
        assert moved == []  # never .to(device) after a device map
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(model(input_ids=ids).logits, tiny_lm(input_ids=ids).logits)


def test_cli_context_reaches_load_model_and_explicit_args_win(tmp_path, tiny_lm, tiny_tok, monkeypatch):
    tiny_lm.save_pretrained(tmp_path, safe_serialization=True)
    tiny_tok.save_pretrained(tmp_path)
    with use_model_args("dtype=float16,device_map=cpu"):
        assert current_model_args().dtype == "float16"
        m, _ = load_model(str(tmp_path))
        assert m.dtype == torch.float16
        m2, _ = load_model(str(tmp_path), model_args=ModelArgs(dtype="float32"))
        assert m2.dtype == torch.float32
    assert current_model_args() == ModelArgs()


def test_model_args_reach_vllm(monkeypatch):
    got = {}

    class FakeLLM:
        def __init__(self, **kw):
            got.update(kw)

        def get_tokenizer(self):
            return None

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM
    monkeypatch.setitem(sys.modules, "vllm", fake)
    make_backend("vllm:org/model", model_args=parse_model_args(
        "tensor_parallel_size=8,gpu_memory_utilization=0.8,dtype=bfloat16,revision=v1,max_concurrency=3"))
    assert got["tensor_parallel_size"] == 8 and got["gpu_memory_utilization"] == 0.8
    assert got["dtype"] == "bfloat16" and got["revision"] == "v1" and got["model"] == "org/model"
    assert "max_concurrency" not in got  # an openai key is not passed to vLLM
    got.clear()
    make_backend("vllm:org/model", dtype="float16")
    assert got["dtype"] == "float16" and "tensor_parallel_size" not in got


def test_model_args_reach_openai():
    b = make_backend("openai:m@http://127.0.0.1:9",
                     model_args=parse_model_args('max_concurrency=3,extra_body={"top_k": 2},dtype=bf16'))
    assert b.max_concurrency == 3 and b.extra_body == {"top_k": 2}


def test_cli_option_parses_once_and_errors_list_valid_keys(monkeypatch):
    from typer.testing import CliRunner

    from brittle.cli import app

    seen = []
    import brittle.features.run as fr

    monkeypatch.setattr(fr, "run_features", lambda cfg: seen.append(current_model_args()) or {
        "kind": "grad", "n": 0, "store": "x", "complete": True})
    res = CliRunner().invoke(app, ["features", "-M", "device_map=auto,dtype=bf16"])
    assert res.exit_code == 0, res.output
    assert seen[0].device_map == "auto" and seen[0].dtype == "bf16"
    assert current_model_args() == ModelArgs()  # cleared when the command ends
    bad = CliRunner().invoke(app, ["select", "-M", "colour=red"])
    assert isinstance(bad.exception, BrittleError) and "valid: dtype, device_map" in str(bad.exception)
    assert current_model_args() == ModelArgs()  # nothing left over from a failed parse


def _fake_vllm(monkeypatch, got: dict, calls: list):
    class FakeLLM:
        def __init__(self, **kw):
            got.update(kw)

        def get_tokenizer(self):
            from brittle.models.tiny import tiny_tokenizer

            return tiny_tokenizer()

        def generate(self, prompts, params, lora_request=None):
            calls.append((len(prompts), lora_request))
            out = types.SimpleNamespace(text="ok")
            return [types.SimpleNamespace(outputs=[out]) for _ in prompts]

    class LoRARequest:
        def __init__(self, name, lora_id, path):
            self.name, self.lora_int_id, self.path = name, lora_id, path

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, lambda **kw: kw
    lora, req = types.ModuleType("vllm.lora"), types.ModuleType("vllm.lora.request")
    req.LoRARequest = LoRARequest
    for name, mod in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", req)):
        monkeypatch.setitem(sys.modules, name, mod)


def test_vllm_one_engine_many_adapters(monkeypatch, tmp_path):
    from brittle.models.vllm_backend import VLLMBackend

    got, calls = {}, []
    _fake_vllm(monkeypatch, got, calls)
    dirs = []
    for i in range(2):
        d = tmp_path / f"a{i}"
        d.mkdir()
        (d / "adapter_config.json").write_text(f'{{"r": {i + 1}}}')
        (d / "adapter_model.safetensors").write_bytes(bytes([i]))
        dirs.append(d)
    base = VLLMBackend("org/model", enable_lora=True, max_loras=4)
    assert got["enable_lora"] and got["max_loras"] == 4 and got["enable_prefix_caching"]
    a, b, a2 = base.with_adapter(dirs[0]), base.with_adapter(dirs[1]), base.with_adapter(dirs[0])
    assert a.llm is base.llm is b.llm  # one engine
    assert a.name != b.name and a.name == a2.name and "+adapter:" in a.name
    convs = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]
    assert a.generate(convs) == ["ok"] * 5 and b.generate(convs[:2]) == ["ok"] * 2
    assert base.generate(convs[:1]) == ["ok"]
    (n_a, req_a), (n_b, req_b), (_, req_base) = calls
    assert (n_a, n_b) == (5, 2)  # all prompts of a cell in one call
    assert req_a.lora_int_id == a2._lora.lora_int_id != req_b.lora_int_id and req_base is None
    with pytest.raises(BrittleError, match="without LoRA"):
        VLLMBackend("org/model").with_adapter(dirs[0])
