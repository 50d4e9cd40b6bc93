"""Local Hugging Face generation backend: batched, length-sorted, left-padded, KV-cached.

``HFBackend.generate`` renders each conversation with the tokenizer's chat template
(:func:`brittle.models.chat.render_prompt`, prefill appended after the generation prompt),
sorts prompts by token length so each batch carries little padding, left-pads (decoder-only
models continue from the right edge), and calls ``model.generate`` (KV cache on). The batch is
sized to memory (``batch_size=0``, the default: :func:`memory_batch_size`), so on a CPU all
prompts of a small eval go in one batch: 2.1x the throughput of batch 8 on the 135M default
(64 prompts x 64 tokens, 2-core CPU, identical replies: ``benchmarks/bench_generate.py
--baseline-batch 8 --batch-size 0 --n 64``). Replies come back in input order and exclude the
prefill. Generation stops at the tokenizer's eos or the chat template's end-of-turn token.

``HFBackend.token_logprobs`` scores given continuations: for prompt tokens ``p`` and
continuation tokens ``c_1..c_n`` it returns ``[log p(c_t | p, c_<t) for t = 1..n]`` from one
right-padded forward pass per batch, with a float32 log-softmax.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from brittle.errors import BrittleError
from brittle.models.backend import GenerationConfig, Messages, prefills
from brittle.models.chat import encode_prompt, length_sorted_batches

log = logging.getLogger(__name__)

# Single-token end-of-turn markers of common chat templates (used when present in the vocab).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn: eos of the tokenizer and the generation config,
    plus any known end-of-turn special token that the tokenizer has as one token."""
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif gen_eos:
        ids.update(int(i) for i in gen_eos)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
    added = set(getattr(tokenizer, "get_added_vocab", dict)() or {})
    for tok in END_OF_TURN_TOKENS:
        if tok in vocab and (tok in specials or tok in added):
            ids.add(int(vocab[tok]))
    return sorted(ids)


# Memory a generation batch may take: KV cache + the vocabulary logits of a decoding step + the
# widest activation of the prefill. CPU: a slice of RAM that keeps the quick lab under 4 GB;
# CUDA: half of what is free when the batch starts. Upper bound on the batch either way.
CPU_GENERATION_BYTES = 768 * 2**20
MAX_AUTO_BATCH = {"cpu": 128, "cuda": 512}
# Sampling draws from one seeded generator per batch, so its batch must not depend on free
# memory: with batch_size 0 and temperature > 0 the batch is this fixed size.
SAMPLING_BATCH = 16


def memory_batch_size(model_config: Any, seq_len: int, *, budget_bytes: int, dtype_bytes: int = 4,
                      cap: int = 512) -> int:
    """Sequences of ``seq_len`` tokens (prompt + new) that fit ``budget_bytes``.

    Per sequence: the KV cache (2 x layers x kv_heads x head_dim x seq_len), the prefill's
    widest activations (seq_len x max(intermediate, hidden x 4)) and two vocabulary rows of
    logits (float32). A pure function of the config, so it is tested without a model."""
    c = model_config
    text = getattr(c, "text_config", None) or c
    layers = int(getattr(text, "num_hidden_layers", 0) or 1)
    hidden = int(getattr(text, "hidden_size", 0) or 1)
    heads = int(getattr(text, "num_attention_heads", 0) or 1)
    kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(text, "head_dim", None) or hidden // heads)
    inter = int(getattr(text, "intermediate_size", 0) or 4 * hidden)
    vocab = int(getattr(text, "vocab_size", 0) or 1)
    kv = 2 * layers * kv_heads * head_dim * seq_len * dtype_bytes
    act = seq_len * max(inter, 4 * hidden) * dtype_bytes * 2
    logits = 2 * vocab * 4
    return int(max(1, min(cap, budget_bytes // max(1, kv + act + logits))))


def auto_generation_batch(model: Any, seq_len: int) -> int:
    """:func:`memory_batch_size` for ``model`` on its device (CUDA: half the free memory)."""
    import torch

    param = next(model.parameters())
    if param.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(param.device)
        budget, cap = free // 2, MAX_AUTO_BATCH["cuda"]
    else:
        budget, cap = CPU_GENERATION_BYTES, MAX_AUTO_BATCH["cpu"]
    return memory_batch_size(model.config, seq_len, budget_bytes=budget, dtype_bytes=param.element_size(), cap=cap)


def _hf_generation_config(config: GenerationConfig, eos: list[int], pad_id: int):
    """Explicit transformers GenerationConfig: every sampling knob set, so the model's own
    generation_config.json cannot silently add top_k / repetition penalties."""
    from transformers import GenerationConfig as HFGenerationConfig

    sample = config.temperature > 0
    extra = {"temperature": config.temperature, "top_p": config.top_p, "top_k": 0} if sample else {}
    return HFGenerationConfig(
        max_new_tokens=config.max_new_tokens,
        do_sample=sample,
        **extra,
        repetition_penalty=1.0,
        num_beams=1,
        eos_token_id=eos,
        pad_token_id=pad_id,
        use_cache=True,
    )


class HFBackend:
    """Generation + token log-probs with a local transformers model (optionally PEFT-wrapped)."""

    capabilities = frozenset({"generate", "prefill", "token_logprobs"})

    def __init__(self, model: Any, tokenizer: Any, name: str = "hf:model"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        if tokenizer.pad_token_id is None:
            raise BrittleError("tokenizer has no pad token; load it with brittle.models.load_model")
        self.stop_ids = stop_token_ids(model, tokenizer)

    def __repr__(self) -> str:
        return f"HFBackend(name={self.name!r})"

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        conversations: Sequence[Messages],
        *,
        prefill: Sequence[str | None] | None = None,
        config: GenerationConfig = GenerationConfig(),
    ) -> list[str]:
        """One reply per conversation (input order); ``prefill[i]`` forces the start of
        reply i and is not part of the returned text."""
        import torch
        from tqdm.auto import tqdm

        n = len(conversations)
        pre = prefills(prefill, n)
        if n == 0:
            return []
        prompts = [encode_prompt(self.tokenizer, list(msgs), p) for msgs, p in zip(conversations, pre)]
        pad_id = int(self.tokenizer.pad_token_id)
        gen_cfg = _hf_generation_config(config, self.stop_ids, pad_id)
        batch_size = config.batch_size or (
            SAMPLING_BATCH if config.temperature > 0  # seeded per batch: a fixed size keeps samples reproducible
            else self.auto_batch_size(max(map(len, prompts)) + config.max_new_tokens))
        batches = length_sorted_batches([len(p) for p in prompts], batch_size)
        out: list[str | None] = [None] * n
        cuda = [self.device] if self.device.type == "cuda" else []
        for b, idx in enumerate(tqdm(batches, desc="generate", unit="batch", disable=None)):
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: the prompt ends at the right edge
                ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i], dtype=torch.long)
                mask[row, width - len(prompts[i]) :] = 1
            with torch.random.fork_rng(devices=cuda), torch.inference_mode():
                torch.manual_seed(config.seed + b)
                gen = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    generation_config=gen_cfg,
                )
            new = gen[:, width:].tolist()
            for row, i in enumerate(idx):
                out[i] = self._decode(new[row])
        return [o or "" for o in out]

    def auto_batch_size(self, seq_len: int) -> int:
        return auto_generation_batch(self.model, seq_len)

    def _decode(self, token_ids: list[int]) -> str:
        """Decode generated ids up to (excluding) the first stop token."""
        stops = set(self.stop_ids)
        cut = next((k for k, t in enumerate(token_ids) if t in stops), len(token_ids))
        return self.tokenizer.decode(token_ids[:cut], skip_special_tokens=True)

    # ------------------------------------------------------------------ scoring
    def continuation_ids(self, continuation: str) -> list[int]:
        """How a continuation is tokenised for :meth:`token_logprobs` (on its own, no
        special tokens), so callers can line up per-token values with tokens."""
        return self.tokenizer(continuation, add_special_tokens=False)["input_ids"]

    def token_logprobs(
        self,
        conversations: Sequence[Messages],
        continuations: Sequence[str],
        *,
        batch_size: int = 16,
    ) -> list[list[float]]:
        """``out[i][t] = log p(c_t | prompt_i, c_<t)`` for the tokens ``c`` of
        ``continuations[i]`` (see :meth:`continuation_ids`) after the chat-rendered prompt
        of ``conversations[i]`` (generation prompt included). One forward pass per batch."""
        import torch

        if len(conversations) != len(continuations):
            raise BrittleError("token_logprobs needs one continuation per conversation")
        prompts = [encode_prompt(self.tokenizer, list(m)) for m in conversations]
        conts = [self.continuation_ids(c) for c in continuations]
        seqs = [p + c for p, c in zip(prompts, conts)]
        pad_id = int(self.tokenizer.pad_token_id)
        out: list[list[float]] = [[] for _ in seqs]
        todo = [i for i, c in enumerate(conts) if c]
        batches = length_sorted_batches([len(seqs[i]) for i in todo], max(1, batch_size))
        for idx in ([todo[k] for k in batch] for batch in batches):
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # right padding: positions need no shifting
                ids[row, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
                mask[row, : len(seqs[i])] = 1
            # logits at position t predict token t+1: we need positions [len(p)-1, len(seq)-1)
            first = min(len(prompts[i]) for i in idx) - 1
            keep = torch.arange(first, width - 1, device=self.device)
            logits = self._logits(ids.to(self.device), mask.to(self.device), keep)
            logp = torch.log_softmax(logits.float(), dim=-1)
            for row, i in enumerate(idx):
                pos = torch.arange(len(prompts[i]) - 1, len(seqs[i]) - 1, device=self.device)
                tgt = torch.tensor(conts[i], dtype=torch.long, device=self.device)
                out[i] = logp[row, pos - first].gather(-1, tgt[:, None])[:, 0].tolist()
        return out

    def _logits(self, ids: Any, mask: Any, keep: Any) -> Any:
        """Logits at sequence positions ``keep`` (uses ``logits_to_keep`` when supported,
        which skips the vocabulary projection everywhere else)."""
        import torch

        from brittle.models.forward import forward_keep

        with torch.inference_mode():
            logits = forward_keep(self.model, keep, input_ids=ids, attention_mask=mask).logits
        if logits.shape[1] != len(keep):  # full logits (no logits_to_keep, or it was ignored)
            logits = logits[:, keep]
        return logits
