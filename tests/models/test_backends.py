"""make_backend, adapter-aware names, the generation cache, and the vllm import error."""

from __future__ import annotations

import sys

import pytest
import torch

from brittle.errors import BrittleError
from brittle.models.backend import GenerationConfig
from brittle.models.backends import (
    CachedBackend,
    adapter_fingerprint,
    generation_key,
    make_backend,
)
from brittle.models.generate import HFBackend

CONVS = [[{"role": "user", "content": f"question number {i} " * (i + 1)}] for i in range(5)]


class CountingBackend:
    """Fake backend that records what it was asked."""

    name = "fake:model"
    capabilities = frozenset({"generate", "prefill"})

    def __init__(self):
        self.calls: list[list[str]] = []

    def generate(self, conversations, *, prefill=None, config=GenerationConfig()):
        prompts = [c[-1]["content"] for c in conversations]
        self.calls.append(prompts)
        pre = prefill or [None] * len(conversations)
        return [f"{p}|{q}|{config.max_new_tokens}|{config.seed}" for p, q in zip(prompts, pre)]

    def token_logprobs(self, conversations, continuations):
        return [[-1.0] for _ in conversations]


def _save_adapter(model, path, seed=0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(str(path))
    return path


def test_cache_second_call_skips_inner(tmp_path):
    inner = CountingBackend()
    cb = CachedBackend(inner, tmp_path / "gen.jsonl")
    cfg = GenerationConfig(max_new_tokens=9)
    first = cb.generate(CONVS, config=cfg)
    assert first == inner.generate(CONVS, config=cfg)
    inner.calls.clear()
    assert cb.generate(CONVS, config=cfg) == first
    assert inner.calls == []
    # a fresh wrapper over the same file (a re-run) also pays nothing
    again = CachedBackend(inner, tmp_path / "gen.jsonl")
    assert again.generate(CONVS[::-1], config=cfg) == first[::-1]
    assert inner.calls == [] and again.hits == 5 and again.misses == 0


def test_cache_pays_only_for_what_changed(tmp_path):
    inner = CountingBackend()
    cb = CachedBackend(inner, tmp_path / "gen.jsonl")
    cfg = GenerationConfig(max_new_tokens=9)
    cb.generate(CONVS[:3], config=cfg)
    inner.calls.clear()
    out = cb.generate(CONVS, config=cfg)  # two new prompts
    assert sorted(inner.calls[0]) == sorted(c[-1]["content"] for c in CONVS[3:])
    assert out[4].endswith("|9|0")
    inner.calls.clear()
    changed = cb.generate(CONVS[:2], config=GenerationConfig(max_new_tokens=9, seed=1))
    assert len(inner.calls) == 1 and len(inner.calls[0]) == 2 and changed[0].endswith("|9|1")
    inner.calls.clear()
    cb.generate(CONVS[:2], prefill=["Sure", None], config=cfg)  # prefill is part of the key
    assert inner.calls == [[CONVS[0][-1]["content"]]]
    inner.calls.clear()
    cb.generate(CONVS, config=GenerationConfig(max_new_tokens=9, batch_size=1))  # speed knob only
    assert inner.calls == []


def test_cache_dedupes_and_chunks_and_passes_through(tmp_path):
    inner = CountingBackend()
    cb = CachedBackend(inner, tmp_path / "gen.jsonl", chunk_size=2)
    out = cb.generate(CONVS + CONVS[:2])
    assert out[5:] == out[:2]
    assert [len(c) for c in inner.calls] == [2, 2, 1]  # 5 unique, appended per chunk
    assert len(cb.store.records()) == 5
    assert cb.token_logprobs(CONVS[:1], ["x"]) == [[-1.0]]
    assert cb.name == inner.name and cb.capabilities == inner.capabilities


def test_key_depends_on_everything_but_batch_size():
    msgs = CONVS[0]
    k = generation_key("a", msgs, None, GenerationConfig())
    assert len(k) == 64
    assert k == generation_key("a", msgs, None, GenerationConfig(batch_size=3))
    assert k != generation_key("b", msgs, None, GenerationConfig())
    assert k != generation_key("a", msgs, "", GenerationConfig())
    assert k != generation_key("a", CONVS[1], None, GenerationConfig())
    assert k != generation_key("a", msgs, None, GenerationConfig(temperature=0.5))


def test_make_backend_tiny_and_cache(tmp_path):
    b = make_backend("tiny:llama", device="cpu", cache_dir=tmp_path)
    assert isinstance(b, CachedBackend) and isinstance(b.inner, HFBackend)
    assert b.name == "hf:tiny:llama"
    out = b.generate(CONVS[:2], config=GenerationConfig(max_new_tokens=4))
    assert len(out) == 2 and (tmp_path / "generations.jsonl").exists()
    assert make_backend("hf:tiny:llama", device="cpu").name == "hf:tiny:llama"


def test_adapter_changes_name_and_outputs(tmp_path, tiny_tok):
    from brittle.models.tiny import tiny_model

    a1 = _save_adapter(tiny_model(tiny_tok), tmp_path / "a1", seed=1)
    a2 = _save_adapter(tiny_model(tiny_tok), tmp_path / "a2", seed=2)
    f1, f2 = adapter_fingerprint(a1), adapter_fingerprint(a2)
    assert f1 != f2 and f1 == adapter_fingerprint(a1)
    base = make_backend("tiny:llama", model=tiny_model(tiny_tok), tokenizer=tiny_tok)
    with_a1 = make_backend("tiny:llama", model=tiny_model(tiny_tok), tokenizer=tiny_tok, adapter=a1)
    assert with_a1.name == f"hf:tiny:llama+adapter:{f1}" != base.name
    cfg = GenerationConfig(max_new_tokens=8)
    assert base.generate(CONVS, config=cfg) != with_a1.generate(CONVS, config=cfg)
    with pytest.raises(BrittleError):
        adapter_fingerprint(tmp_path)


def test_make_backend_needs_tokenizer_with_model(tiny_lm):
    with pytest.raises(BrittleError, match="tokenizer"):
        make_backend("tiny:llama", model=tiny_lm)


def test_vllm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(BrittleError, match=r"pip install 'brittle\[vllm\]'"):
        make_backend("vllm:embedded:smollm2-135m")
