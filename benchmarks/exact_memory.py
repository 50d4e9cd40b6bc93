"""Memory of brittle's exact-anchor candidate pass at real sizes, counted on the meta device.

    PYTHONPATH=src python benchmarks/exact_memory.py --config llama2-7b --batch 4 --seq-len 512

Builds the architecture on ``meta`` (no weights, no compute), runs the candidate pass's
forward exactly as ``per_example_stats`` sets it up (frozen weights, per-example norm
leaves, input capture hooks) and adds up, by storage, the bytes autograd saves for
backward plus the layer inputs the hooks keep. Adds weights and the combined direction
(both in the model dtype) and the float32 logits / loss terms. Prints GiB; an estimate of
the peak (allocator fragmentation and the ghost-sum temporaries of one layer come on top:
≤ B·T²·8 + B·T·d_max·e bytes, < 0.1 GiB at B=4, T=512).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import torch


def _saved_bytes(cfg_kw: dict, layers: int, tokens: int, dtype: torch.dtype, checkpointing: bool) -> tuple[int, int]:
    """(bytes autograd saves for backward, bytes of linear inputs the hooks keep) of one
    candidate forward of ``tokens`` tokens (B=1) as ``per_example_stats`` sets it up."""
    from accelerate import init_empty_weights
    from transformers import LlamaConfig, LlamaForCausalLM

    from brittle.features.exact import _per_example_scales, _sites
    from brittle.features.hooks import embedding_output_requires_grad, frozen, layer_checkpointing

    cfg = LlamaConfig(**{**cfg_kw, "num_hidden_layers": layers}, max_position_embeddings=4096)
    with init_empty_weights():
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(dtype).eval()  # uninitialised: sizes only
    saved: dict[int, int] = {}
    kept: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights:  # weights (and views of them) are counted separately
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    sites = _sites(model)
    hooks = [m.register_forward_hook(lambda m, i, o: kept.__setitem__(i[0].untyped_storage().data_ptr(),
                                                                         i[0].untyped_storage().nbytes())
                                     if o.requires_grad else None)
             for m in sites.linears.values()]
    ids = torch.zeros(1, tokens, dtype=torch.long)
    with frozen(model), embedding_output_requires_grad(model), _per_example_scales(sites.scales, sites.own), \
            layer_checkpointing(model, checkpointing), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.model.embed_tokens.weight.requires_grad_(False)
        out = model.model(input_ids=ids, use_cache=False).last_hidden_state  # lm_head/loss: analytic
        kept[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()  # lm_head input
    for h in hooks:
        h.remove()
    return sum(saved.values()), sum(v for k, v in kept.items() if k not in saved)  # kept ∖ saved


def measure(config: str, batch: int, seq_len: int, dtype: torch.dtype = torch.bfloat16,
            checkpointing: bool = False, probe_tokens: int = 128) -> dict[str, float]:
    """Peak-memory estimate (GiB) of the exact-anchor candidate pass at (batch, seq_len).

    Activation bytes are measured on CPU for 1 and 2 layers at ``probe_tokens`` tokens
    (per layer = difference) and scaled linearly to L layers and B·T tokens (attention
    saves O(T) with SDPA's fused kernels, not O(T²)).
    """
    spec = importlib.util.spec_from_file_location("bench_gpu", Path(__file__).with_name("bench_gpu.py"))
    bg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bg)
    kw = {**bg.CONFIGS[config], "vocab_size": 256}  # the vocab only enters weights and logits (analytic)
    full = bg.CONFIGS[config]
    L, V, h = full["num_hidden_layers"], full["vocab_size"], full["hidden_size"]
    s1, k1 = _saved_bytes(kw, 1, probe_tokens, dtype, checkpointing)
    s2, k2 = _saved_bytes(kw, 2, probe_tokens, dtype, checkpointing)
    scale = batch * seq_len / probe_tokens
    per_layer_saved, per_layer_kept = s2 - s1, k2 - k1
    if checkpointing:  # a layer's own activations, alive again during its backward
        f1, g1 = _saved_bytes(kw, 1, probe_tokens, dtype, False)
        f2, g2 = _saved_bytes(kw, 2, probe_tokens, dtype, False)
        layer_full = (f2 - f1) + (g2 - g1)
    saved = (s1 - per_layer_saved + L * per_layer_saved) * scale
    kept = (k1 - per_layer_kept + L * per_layer_kept) * scale
    elem = torch.empty((), dtype=dtype).element_size()
    i = full["intermediate_size"]
    kvh = h // full["num_attention_heads"] * full["num_key_value_heads"]
    n_params = L * (2 * h * h + 2 * h * kvh + 3 * h * i + 2 * h) + h + V * h * (1 if full["tie_word_embeddings"] else 2)
    gib = 2**30
    tokens = batch * seq_len
    out = {"config": config, "batch": batch, "seq_len": seq_len, "dtype": str(dtype).removeprefix("torch."),
           "checkpointing": checkpointing, "params_b": round(n_params / 1e9, 3),
           "weights_gib": n_params * elem / gib, "direction_gib": n_params * elem / gib,
           "saved_activations_gib": saved / gib, "captured_inputs_gib": kept / gib,
           # logits (model dtype), their float32 copy + log-softmax saved, float32 + model-dtype grads
           "logits_and_loss_gib": tokens * V * (elem + 4 + 4 + 4 + elem) / gib}
    if checkpointing:  # during a layer's backward its activations are alive again
        out["recomputed_layer_gib"] = layer_full * scale / gib
    out["total_gib"] = sum(v for k, v in out.items() if k.endswith("_gib"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="llama2-7b")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--checkpointing", action="store_true")
    a = ap.parse_args()
    res = measure(a.config, a.batch, a.seq_len, checkpointing=a.checkpointing)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}, indent=2))


if __name__ == "__main__":
    main()
