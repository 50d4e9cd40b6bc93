"""HFBackend on the tiny random-weight Llama: batching must not change results."""

from __future__ import annotations

import pytest
import torch

from brittle.errors import BrittleError
from brittle.models.backend import Backend, GenerationConfig
from brittle.models.chat import encode_prompt
from brittle.models.generate import HFBackend

CONVS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "explain how to list steps " * 3}],
    [{"role": "user", "content": "write python code"}],
    [{"role": "user", "content": "the quick brown fox jumps over the lazy dog " * 2}],
    [{"role": "user", "content": "0123 + 4567 = ?"}],
]


def _manual_greedy(model, tok, stops, msgs, prefill=None, n=10) -> str:
    """Reference: argmax decoding with full re-forward each step (no cache, no padding)."""
    ids = torch.tensor([encode_prompt(tok, msgs, prefill)])
    new = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            if nxt in stops:
                break
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return tok.decode(new, skip_special_tokens=True)


def test_protocol_and_capabilities(tiny_lm, tiny_tok):
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    assert isinstance(b, Backend)
    assert {"generate", "prefill", "token_logprobs"} <= b.capabilities
    assert tiny_tok.convert_tokens_to_ids("<|im_end|>") in b.stop_ids


def test_batched_equals_one_at_a_time_and_reference(tiny_lm, tiny_tok):
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    lengths = {len(encode_prompt(tiny_tok, c)) for c in CONVS}
    assert len(lengths) == len(CONVS)  # really different lengths -> padding happens
    batched = b.generate(CONVS, config=GenerationConfig(max_new_tokens=10, batch_size=3))
    single = [b.generate([c], config=GenerationConfig(max_new_tokens=10, batch_size=1))[0] for c in CONVS]
    assert batched == single
    ref = [_manual_greedy(tiny_lm, tiny_tok, set(b.stop_ids), c) for c in CONVS]
    assert batched == ref
    assert len(set(batched)) > 1  # not a degenerate constant output


def test_results_in_input_order(tiny_lm, tiny_tok):
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    cfg = GenerationConfig(max_new_tokens=6, batch_size=2)
    fwd = b.generate(CONVS, config=cfg)
    rev = b.generate(CONVS[::-1], config=cfg)
    assert rev == fwd[::-1]


def test_prefill_excluded_and_conditions(tiny_lm, tiny_tok):
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    cfg = GenerationConfig(max_new_tokens=8, batch_size=4)
    convs = CONVS[:3]
    pre = ["Sure, here is", None, "I'm sorry"]
    out = b.generate(convs, prefill=pre, config=cfg)
    ref = [_manual_greedy(tiny_lm, tiny_tok, set(b.stop_ids), c, p, n=8) for c, p in zip(convs, pre)]
    assert out == ref  # the continuation of prompt+prefill, without the prefill
    plain = b.generate(convs, config=cfg)
    assert out[1] == plain[1]
    assert out[0] != plain[0] and out[2] != plain[2]
    other = b.generate(convs[:1], prefill=["As an AI"], config=cfg)
    assert other[0] != out[0]
    with pytest.raises(BrittleError):
        b.generate(convs, prefill=["x"], config=cfg)


def test_sampling_deterministic_with_seed(tiny_lm, tiny_tok):
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    cfg = GenerationConfig(max_new_tokens=12, temperature=1.0, seed=7, batch_size=2)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = b.generate(CONVS, config=cfg)
    assert torch.equal(state, torch.get_rng_state())  # caller's RNG untouched
    assert b.generate(CONVS, config=cfg) == a
    c = b.generate(CONVS, config=GenerationConfig(max_new_tokens=12, temperature=1.0, seed=8, batch_size=2))
    assert c != a
    greedy = b.generate(CONVS, config=GenerationConfig(max_new_tokens=12, batch_size=2))
    assert greedy != a


def test_token_logprobs_match_manual(tiny_lm, tiny_tok):
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    conts = ["Sure, here is a step", "I'm sorry", "", "1. first 2. second 3. third", "x"]
    got = b.token_logprobs(CONVS, conts, batch_size=2)
    assert got[2] == []
    for msgs, cont, lp in zip(CONVS, conts, got):
        p = encode_prompt(tiny_tok, msgs)
        c = tiny_tok(cont, add_special_tokens=False)["input_ids"]
        assert len(lp) == len(c) == len(b.continuation_ids(cont))
        if not c:
            continue
        with torch.no_grad():
            logits = tiny_lm(input_ids=torch.tensor([p + c])).logits[0].float()
        ref = torch.log_softmax(logits, -1)[len(p) - 1 : len(p) + len(c) - 1]
        ref = ref.gather(-1, torch.tensor(c)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(lp), ref, atol=1e-5)
        assert all(v < 0 for v in lp)


def test_token_logprobs_validation(tiny_lm, tiny_tok):
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    with pytest.raises(BrittleError):
        b.token_logprobs(CONVS, ["a"])
    assert b.generate([], config=GenerationConfig()) == []


@pytest.mark.embedded
def test_embedded_batched_equals_single():
    from brittle.models.load import load_model

    model, tok = load_model("embedded:smollm2-135m", device="cpu")
    b = HFBackend(model, tok, "hf:embedded:smollm2-135m")
    convs = [[{"role": "user", "content": "What is 2+2?"}], [{"role": "user", "content": "Name a colour of the sky on a clear day, in one word."}]]
    cfg = GenerationConfig(max_new_tokens=12, batch_size=2)
    batched = b.generate(convs, config=cfg)
    single = [b.generate([c], config=GenerationConfig(max_new_tokens=12, batch_size=1))[0] for c in convs]
    assert batched == single
    assert all(t.strip() for t in batched)


def test_memory_batch_size_counts_kv_cache_activations_and_logits():
    from types import SimpleNamespace

    from brittle.models.generate import memory_batch_size

    # SmolLM2-135M's shapes: per sequence of 190 tokens in fp32, KV = 2*30*3*64*190*4 bytes,
    # prefill activations = 190*max(1536, 4*576)*4*2, logits = 2*49152*4
    cfg = SimpleNamespace(num_hidden_layers=30, hidden_size=576, num_attention_heads=9,
                          num_key_value_heads=3, intermediate_size=1536, vocab_size=49152)
    per_seq = 2 * 30 * 3 * 64 * 190 * 4 + 190 * 2304 * 4 * 2 + 2 * 49152 * 4
    assert memory_batch_size(cfg, 190, budget_bytes=10 * per_seq) == 10
    assert memory_batch_size(cfg, 190, budget_bytes=10 * per_seq - 1) == 9
    assert memory_batch_size(cfg, 190, budget_bytes=10**12, cap=64) == 64
    assert memory_batch_size(cfg, 190, budget_bytes=1) == 1  # never zero
    # halving the dtype roughly doubles the batch; a longer sequence shrinks it
    assert memory_batch_size(cfg, 190, budget_bytes=10**9, dtype_bytes=2) > 1.5 * memory_batch_size(
        cfg, 190, budget_bytes=10**9)
    assert memory_batch_size(cfg, 400, budget_bytes=10**9) < memory_batch_size(cfg, 190, budget_bytes=10**9)


def test_auto_batch_equals_fixed_batches(tiny_lm, tiny_tok):
    """batch_size=0 sizes the batch to memory; replies equal the fixed-batch ones."""
    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    assert b.auto_batch_size(64) >= len(CONVS)  # a tiny model: all prompts in one batch
    auto = b.generate(CONVS, config=GenerationConfig(max_new_tokens=8, batch_size=0))
    assert auto == b.generate(CONVS, config=GenerationConfig(max_new_tokens=8, batch_size=2))


def test_auto_batch_sampling_uses_a_fixed_batch(tiny_lm, tiny_tok, monkeypatch):
    """Seeded sampling draws per batch: with batch_size=0 the batch must not follow free memory."""
    from brittle.models import generate as G

    b = HFBackend(tiny_lm, tiny_tok, "hf:tiny")
    cfg = GenerationConfig(max_new_tokens=6, temperature=1.0, seed=3, batch_size=0)
    first = b.generate(CONVS, config=cfg)
    monkeypatch.setattr(G, "CPU_GENERATION_BYTES", 1)  # "less memory": greedy batches would shrink to 1
    assert b.generate(CONVS, config=cfg) == first
    assert first == b.generate(CONVS, config=GenerationConfig(max_new_tokens=6, temperature=1.0, seed=3,
                                                              batch_size=G.SAMPLING_BATCH))
