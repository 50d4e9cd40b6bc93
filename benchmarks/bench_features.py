"""Benchmark per-example gradient features (examples/s, same model, data, batch size, same run).

(a) LESS-style: batch-1 loop, autograd LoRA gradients flattened, dense projection of every
    16 flattened gradients (LESS ``collect_grads``: TRAK projector, fp16 on CUDA)
(b) ours: batched hooks, frozen weights, projection (kronecker default; also dense)
(c) plain batched LoRA training step (forward + backward of all LoRA params, no features)
(d) exact-anchor: batched ghost scores vs a batch-1 loop of full-parameter autograd gradients

Models: any ``brittle.models.load`` spec (``embedded:smollm2-135m``, ``tiny:llama``) or a
random-weight Llama built from a known config with the tiny tokenizer (no download, no
data package; ids < vocab): ``config:smollm2-135m``, ``config:llama-1b``. Examples are
synthetic instruction/response pairs of ``--seq-len`` tokens (75–100 % of it, varied).

Usage (repo root; brittle need not be installed):
  PYTHONPATH=src python3 benchmarks/bench_features.py --model config:smollm2-135m --n 8 --batch-size 4 --seq-len 96
  PYTHONPATH=src python3 benchmarks/bench_features.py --model config:smollm2-135m \\
      --device cuda --dtype bfloat16 --batch-size 16 --n 128 --seq-len 256
Writes benchmarks/results/bench_features-<model>-<device name>.json.
Only torch/transformers/peft/pydantic/tqdm/yaml are imported (no gguf, trl, data packages).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path

import torch

WORDS = ["Sure,", "here", "is", "a", "step", "by", "step", "answer.", "First,", "gather", "the", "ingredients", "and", "read", "the", "instructions", "carefully.", "Second,", "mix", "them", "in", "a", "bowl", "and", "wait", "ten", "minutes.", "Third,", "check", "the", "result", "and", "repeat", "if", "needed.", "Finally,", "clean", "up", "and", "write", "down", "what", "you", "learned."]

CONFIGS = {  # exact architecture configs (random weights)
    "smollm2-135m": {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
                         "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
                         "tie_word_embeddings": True, "rope_theta": 100000.0,
                         "max_position_embeddings": 8192, "rms_norm_eps": 1e-5},
    "llama-1b": {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
                     "num_key_value_heads": 8, "intermediate_size": 8192, "vocab_size": 128256,
                     "tie_word_embeddings": True, "rope_theta": 500000.0,
                     "max_position_embeddings": 8192, "rms_norm_eps": 1e-5},
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64}


def build_model(spec: str, dtype: str = "float32", device: str = "cpu"):
    """``config:<name>`` -> random LlamaForCausalLM + tiny tokenizer; else ``load_model``."""
    if not spec.startswith("config:"):
        from brittle.models.load import load_model  # lazy: may need gguf for embedded specs

        return load_model(spec, dtype=dtype, device=device)
    from transformers import LlamaConfig, LlamaForCausalLM

    from brittle.models.tiny import tiny_tokenizer

    name = spec.split(":", 1)[1]
    if name not in CONFIGS:
        raise SystemExit(f"unknown config model {name!r}; known: {sorted(CONFIGS)}")
    tok = tiny_tokenizer()
    cfg = LlamaConfig(**CONFIGS[name], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(DTYPES[dtype])
    return model.eval(), tok


def pool(n: int, tok=None, seq_len: int | None = None):
    """n synthetic instruction/response Examples; with ``seq_len`` each encodes to
    ~75–100 % of seq_len tokens (response cut at a token boundary)."""
    from brittle.data.schema import Example

    out = []
    for i in range(n):
        prompt = f"Question {i}: explain how to do task number {i} well."
        resp = " ".join(WORDS[: 20 + (i * 7) % len(WORDS)] * 2)
        if seq_len is not None:
            from brittle.features.hooks import encode_examples

            base = len(encode_examples(tok, [Example.from_pair(prompt, "x")])[0].input_ids) - 1
            target = max(4, seq_len - (i * 37) % max(1, seq_len // 4) - base)
            long = " ".join((WORDS * (1 + 4 * seq_len // len(WORDS)))[i % 7:])
            ids = tok(long, add_special_tokens=False)["input_ids"][:target]
            resp = tok.decode(ids)
        out.append(Example.from_pair(prompt, resp, id=f"b{i}"))
    return out


def timed(fn, n: int, sync) -> tuple[float, object]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return n / (time.perf_counter() - t0), out


def peft_copy(model, gcfg, rank: int):
    """The virtual LoRA of ``gcfg`` as a real PEFT adapter (A copied from the virtual one), with
    only the LoRA weights trainable: ``(peft_model, [(name, lora_param), ...])``."""
    from peft import LoraConfig, get_peft_model

    from brittle.features.grads import LESS_TARGETS, lora_sites

    sites = lora_sites(model, gcfg)
    pm = get_peft_model(model, LoraConfig(r=rank, lora_alpha=4 * rank, target_modules=LESS_TARGETS,
                                          lora_dropout=0.0)).eval()
    named = dict(pm.named_parameters())
    for s in sites:
        named[f"base_model.model.{s.name}.lora_A.default.weight"].data = s.A.to(
            named[f"base_model.model.{s.name}.lora_A.default.weight"].dtype)
    for n, p in pm.named_parameters():
        p.requires_grad_("lora_" in n)
    return pm, [(n, p) for n, p in pm.named_parameters() if "lora_" in n]


def less_projector(dim: int, k: int, device, dtype, block: int = 4096):
    """Emulation of LESS's dense projection (TRAK ``CudaProjector``, Rademacher, fp16 on
    CUDA) of a group of flattened gradients (G, dim) -> (G, k).

    Same FLOPs as the real one (2·G·dim·k, dtype ``dtype``), but one cached ``block×k``
    ±1 matrix is reused for every block of rows (TRAK generates each entry in-kernel):
    timing-only, optimistic for LESS; not a valid JL map.
    """
    g = torch.Generator(device="cpu").manual_seed(0)
    P = (torch.randint(0, 2, (block, k), generator=g).to(device=device, dtype=dtype) * 2 - 1) / k ** 0.5
    C = -(-dim // block)

    def project(flat):
        G = flat.shape[0]
        x = torch.nn.functional.pad(flat.to(dtype), (0, C * block - dim))
        x = x.view(G, C, block).transpose(0, 1)  # (C, G, block)
        out = torch.zeros(G, k, device=flat.device, dtype=torch.float32)
        step = max(1, (256 * 2**20) // (G * k * 2))
        for c in range(0, C, step):
            part = x[c:c + step].reshape(-1, block) @ P  # (c·G, k)
            out += part.view(-1, G, k).float().sum(0)
        return out

    return project


def device_name(dev) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded:smollm2-135m",
                    help="model spec, or config:smollm2-135m / config:llama-1b (random weights)")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--k", type=int, default=None, help="projection dim (default: 8192 cuda, 1024 cpu)")
    ap.add_argument("--lora-rank", type=int, default=None, help="default: 128 cuda (LESS), 8 cpu")
    ap.add_argument("--seq-len", type=int, default=None,
                    help="synthetic examples of ~this many tokens (else short built-in texts)")
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--less-group", type=int, default=16, help="LESS projects every n examples")
    ap.add_argument("--skip-exact", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()


    from brittle.features.exact import ExactAnchorConfig, anchor_mean_gradient, per_example_stats
    from brittle.features.grads import LESS_TARGETS, GradFeatureConfig, projected_grads
    from brittle.features.hooks import encode_examples, make_batch, model_inputs, per_example_loss

    model, tok = build_model(args.model, dtype=args.dtype, device=args.device)
    dev = next(model.parameters()).device
    cuda = dev.type == "cuda"
    k = args.k or (8192 if cuda else 1024)
    rank = args.lora_rank or (128 if cuda else 8)
    max_length = args.max_length or args.seq_len or 128
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    exs = pool(args.n, tok, args.seq_len)
    encs = encode_examples(tok, exs, max_length=max_length)
    gcfg = GradFeatureConfig(lora_rank=rank, lora_alpha=4.0 * rank, k=k,
                             batch_size=args.batch_size, max_length=max_length)
    res: dict = {"model": args.model, "device": str(dev), "device_name": device_name(dev),
                 "dtype": args.dtype, "n": args.n, "batch_size": args.batch_size, "k": k,
                 "lora_rank": rank, "targets": LESS_TARGETS, "seq_len": args.seq_len,
                 "tokens_mean": sum(len(e.input_ids) for e in encs) / len(encs),
                 "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                 "n_params": sum(p.numel() for p in model.parameters()),
                 "machine": platform.processor() or platform.machine()}
    print(json.dumps({k_: res[k_] for k_ in ("model", "device_name", "dtype", "tokens_mean", "n_params")}))

    projected_grads(model, tok, exs[:2], gcfg)  # warm-up
    res["b_ours_kronecker"], _ = timed(lambda: projected_grads(model, tok, exs, gcfg), args.n, sync)
    if not cuda:  # our dense option regenerates its matrix on the CPU: meaningless on a GPU
        dense = gcfg.model_copy(update={"projection": "dense", "projection_cache_mb": 256})
        res["b_ours_dense"], _ = timed(lambda: projected_grads(model, tok, exs, dense), args.n, sync)

    pm, lora = peft_copy(model, gcfg, rank)
    dim = sum(p.numel() for _, p in lora)
    res["lora_grad_dim"] = dim
    project = less_projector(dim, k, dev, torch.float16 if cuda else torch.float32)

    def less_loop(items):
        feats, group = [], []
        for e in items:
            b = make_batch([e], tok.pad_token_id, dev)
            pm.zero_grad(set_to_none=True)
            per_example_loss(pm(**model_inputs(b)).logits, b["labels"]).sum().backward()
            group.append(torch.cat([p.grad.reshape(-1) for _, p in lora]))  # flattened (LESS)
            if len(group) == args.less_group or sum(len(f) for f in feats) + len(group) == len(items):
                out = project(torch.stack(group))
                feats.append(out / out.norm(dim=1, keepdim=True))
                group = []
        return torch.cat(feats)

    less_loop(encs[:2])  # warm-up
    res["a_less_batch1_dense"], _ = timed(lambda: less_loop(encs), args.n, sync)
    flat = torch.randn(args.less_group, dim, device=dev)
    project(flat)
    reps = max(1, args.n // args.less_group)
    t_proj, _ = timed(lambda: [project(flat) for _ in range(reps)], reps * args.less_group, sync)
    res["a_less_projection_only"] = t_proj  # examples/s of the projection alone

    batches = [encs[i:i + args.batch_size] for i in range(0, len(encs), args.batch_size)]

    def train_steps():
        for bs in batches:
            b = make_batch(bs, tok.pad_token_id, dev)
            pm.zero_grad(set_to_none=True)
            pm(**model_inputs(b), labels=b["labels"]).loss.backward()

    res["c_train_step"], _ = timed(train_steps, args.n, sync)
    res["ratio_b_over_a"] = res["b_ours_kronecker"] / res["a_less_batch1_dense"]
    if "b_ours_dense" in res:
        res["ratio_b_dense_over_a"] = res["b_ours_dense"] / res["a_less_batch1_dense"]
    res["ratio_b_over_c"] = res["b_ours_kronecker"] / res["c_train_step"]
    pm.zero_grad(set_to_none=True)
    model = pm.unload()
    pm = lora = None  # free the PEFT wrapper (closures above are done)
    for p in model.parameters():
        p.requires_grad_(False)

    if not args.skip_exact:
        ecfg = ExactAnchorConfig(batch_size=args.batch_size, max_length=max_length)
        V = anchor_mean_gradient(model, tok, exs[:4], ecfg)  # anchor mean precomputed for both arms
        stacked = {k_: v.unsqueeze(0) for k_, v in V.items()}
        per_example_stats(model, tok, exs[:2], ecfg, anchors=stacked)  # warm-up
        res["d_exact_ghost"], (sq, dots) = timed(
            lambda: per_example_stats(model, tok, exs, ecfg, anchors=stacked), args.n, sync)
        ghost_scores = dots[:, 0] / sq.sqrt()
        params = [p for _, p in model.named_parameters()]
        acc = torch.promote_types(params[0].dtype, torch.float32)
        for p in params:
            p.requires_grad_(True)

        def exact_loop():
            out = []
            for e in encs:
                b = make_batch([e], tok.pad_token_id, dev)
                loss = per_example_loss(model(**model_inputs(b)).logits, b["labels"]).sum()
                gs = torch.autograd.grad(loss, params)
                dot = sum((g.to(acc) * V[n]).sum() for (n, _), g in zip(model.named_parameters(), gs))
                nrm = sum(g.to(acc).pow(2).sum() for g in gs).sqrt()
                out.append(dot / nrm)
            return torch.stack(out)

        res["d_exact_batch1_loop"], loop_scores = timed(exact_loop, args.n, sync)
        for p in params:
            p.requires_grad_(False)
        res["ratio_exact_ghost_over_loop"] = res["d_exact_ghost"] / res["d_exact_batch1_loop"]
        res["exact_max_abs_diff"] = float((ghost_scores.to(loop_scores.device) - loop_scores).abs().max())

    name = args.model.replace(":", "-").replace("/", "_")
    dn = re.sub(r"[^A-Za-z0-9]+", "-", res["device_name"]).strip("-").lower() if cuda else "cpu"
    out = Path(args.out or Path(__file__).parent / "results" / f"bench_features-{name}-{dn}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    for k_, v in res.items():
        print(f"{k_:>28}: {v:.4g}" if isinstance(v, float) else f"{k_:>28}: {v}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
