"""brittle at real scale on one device: random-init Llama configs, every arm vs its baseline.

    PYTHONPATH=src python benchmarks/bench_gpu.py                       # GPU, all configs (≤ 8 min on an H100/H200)
    PYTHONPATH=src python benchmarks/bench_gpu.py --device cpu --configs tiny   # CI-sized (< 1 min)

Configs (random weights built from the architecture, bf16 on GPU, no download): ``1b``
(Llama-3.2-1B), ``3b`` (Llama-3.2-3B), ``llama2-7b`` (Llama-2-7B), ``llama3-8b``
(Llama-3-8B), ``tiny`` (CPU). Prompts/examples are synthetic (bench_features.pool) with the
tiny tokenizer (ids < vocab).

Arms per config (ratios are against a baseline run in the same process, same inputs):

* ``gen_batch1`` / ``gen_batched`` — brittle's HFBackend, greedy; new tokens counted from
  the generated ids (up to and including the first stop token);
* ``feat_less_batch1`` (LESS-style batch-1 loop: autograd LoRA grads, flattened, dense
  projection every 16) / ``feat_ours`` (brittle ``projected_grads``: batched hooks, frozen
  weights) / ``feat_train_step`` (a plain batched LoRA training step);
* ``exact_combined`` (the whole production call: anchor norms, trainable share, one combined
  direction in the model dtype, candidates by ghost sums) vs ``exact_three_set`` (the
  previous production path: three fp32 directions, stacked); ``exact_candidates`` (the
  candidate pass alone, direction built) vs ``exact_batch1_loop`` (autograd full-parameter
  gradient per example against the same direction);
* ``repr_batched`` / ``repr_batch1`` (last-token hidden states).

Every arm records throughput and peak memory (``torch.cuda.max_memory_allocated`` on GPU;
process peak RSS on CPU, which never goes down); an out-of-memory error is recorded
(``"oom": true``) and the run goes on. The JSON is rewritten after every arm:
``benchmarks/results/bench_gpu-<device>.json``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import logging
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("bench_gpu")

CONFIGS: dict[str, dict[str, Any]] = {  # architecture only; weights are random
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "vocab_size": 512, "tie_word_embeddings": False},
    "1b": {"hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
           "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True, "rope_theta": 500000.0},
    "3b": {"hidden_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 24, "num_key_value_heads": 8,
           "intermediate_size": 8192, "vocab_size": 128256, "tie_word_embeddings": True, "rope_theta": 500000.0},
    "llama2-7b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
                  "tie_word_embeddings": False},
    "llama3-8b": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
                  "tie_word_embeddings": False, "rope_theta": 500000.0},
}
GPU_CONFIGS = ["1b", "3b", "llama2-7b", "llama3-8b"]

# sizes per device kind: (examples, batch-1 examples, tokens, batch) per arm family
SIZES = {
    "cuda": {"gen": (32, 8, 64, 32), "feat": (64, 8, 256, 16), "exact": (16, 4, 512, 4), "repr": (64, 16, 256, 16)},
    "cpu": {"gen": (6, 2, 8, 6), "feat": (6, 2, 48, 3), "exact": (4, 2, 48, 2), "repr": (6, 2, 48, 3)},
}


def _bench_features() -> Any:
    """benchmarks/bench_features.py as a module (pool, timed, less_projector, device_name)."""
    if "bench_features" in sys.modules:
        return sys.modules["bench_features"]
    spec = importlib.util.spec_from_file_location("bench_features", Path(__file__).with_name("bench_features.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_features"] = mod
    spec.loader.exec_module(mod)
    return mod


def build(name: str, device: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """Random-init LlamaForCausalLM of config ``name`` directly on ``device`` + tiny tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from brittle.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = LlamaConfig(**CONFIGS[name], max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval(), tok


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


class Recorder:
    """Runs arms, records throughput / peak memory / OOM, rewrites the JSON after each arm."""

    def __init__(self, path: Path, device: torch.device, meta: dict[str, Any], time_limit_s: float | None = None):
        self.path, self.device = path, device
        self.data: dict[str, Any] = {"meta": meta, "configs": {}}
        self.deadline = time.monotonic() + time_limit_s if time_limit_s else None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _peak_gib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)

    def arm(self, config: str, name: str, n: int, fn: Callable[[], Any], unit: str = "examples") -> Any:
        """``fn()`` returns None or (units done, result); throughput = units / seconds."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.data["configs"].setdefault(config, {})[name] = {"n": n, "skipped": "time limit"}
            self.write()
            return None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        rec: dict[str, Any] = {"n": n, "unit": unit}
        out = None
        try:
            self._sync()
            t0 = time.perf_counter()
            out = fn()
            self._sync()
            secs = time.perf_counter() - t0
            done = out[0] if isinstance(out, tuple) else n
            rec.update(seconds=round(secs, 4), units=done, per_s=done / secs)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_oom(e):
                raise
            rec.update(oom=True, error=str(e).splitlines()[0][:200])
            out = None
        rec["peak_gib"] = round(self._peak_gib(), 3)
        self.data["configs"].setdefault(config, {})[name] = rec
        self.write()
        log.info("%-10s %-18s %s", config, name, {k: v for k, v in rec.items() if k != "error"})
        return out[1] if isinstance(out, tuple) else out

    def ratio(self, config: str, name: str, num: str, den: str) -> None:
        arms = self.data["configs"].get(config, {})
        a, b = arms.get(num, {}), arms.get(den, {})
        if "per_s" in a and "per_s" in b:
            arms.setdefault("ratios", {})[name] = round(a["per_s"] / b["per_s"], 3)
            self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


# ---------------------------------------------------------------- arms


def bench_generation(rec: Recorder, cfg: str, model: Any, tok: Any, sizes: tuple) -> None:
    from brittle.models.backend import GenerationConfig
    from brittle.models.generate import HFBackend

    n, n1, max_new, bs = sizes
    backend = HFBackend(model, tok, f"bench:{cfg}")
    counted: list[int] = []
    stops = set(backend.stop_ids)
    real_decode = backend._decode

    def decode(ids: list[int]) -> str:  # count new tokens from the generated ids
        cut = next((k + 1 for k, t in enumerate(ids) if t in stops), len(ids))
        counted.append(cut)
        return real_decode(ids)

    backend._decode = decode
    convs = [[{"role": "user", "content": f"Question {i}: explain how to do task number {i} well."}]
             for i in range(n)]
    backend.generate(convs[:1], config=GenerationConfig(max_new_tokens=2, batch_size=1))  # warm-up

    def run(items: list, batch: int) -> tuple[int, None]:
        counted.clear()
        backend.generate(items, config=GenerationConfig(max_new_tokens=max_new, batch_size=batch))
        return sum(counted), None

    rec.arm(cfg, "gen_batch1", n1, lambda: run(convs[:n1], 1), unit="new tokens")
    rec.arm(cfg, "gen_batched", n, lambda: run(convs, bs), unit="new tokens")
    rec.ratio(cfg, "gen_batched_over_batch1", "gen_batched", "gen_batch1")


def bench_features(rec: Recorder, cfg: str, model: Any, tok: Any, sizes: tuple, cuda: bool) -> None:

    from brittle.features.grads import GradFeatureConfig, projected_grads
    from brittle.features.hooks import encode_examples, make_batch, model_inputs, per_example_loss

    bf = _bench_features()
    n, n1, T, bs = sizes
    rank, k = (128, 8192) if cuda else (8, 256)
    exs = bf.pool(n, tok, T)
    encs = encode_examples(tok, exs, max_length=T)
    gcfg = GradFeatureConfig(lora_rank=rank, lora_alpha=4.0 * rank, k=k, batch_size=bs, max_length=T)
    projected_grads(model, tok, exs[:2], gcfg)  # warm-up
    rec.arm(cfg, "feat_ours", n, lambda: (n, projected_grads(model, tok, exs, gcfg)))

    pm, named_lora = bf.peft_copy(model, gcfg, rank)
    lora = [p for _, p in named_lora]
    dev = next(model.parameters()).device
    project = bf.less_projector(sum(p.numel() for p in lora), k, dev, torch.float16 if cuda else torch.float32)

    def less_loop() -> None:  # LESS collect_grads: batch 1, flattened grads, project every 16
        group = []
        for e in encs[:n1]:
            b = make_batch([e], tok.pad_token_id, dev)
            pm.zero_grad(set_to_none=True)
            per_example_loss(pm(**model_inputs(b), use_cache=False).logits, b["labels"]).sum().backward()
            group.append(torch.cat([p.grad.reshape(-1) for p in lora]))
            if len(group) == 16:
                project(torch.stack(group))
                group = []
        if group:
            project(torch.stack(group))

    def train_steps() -> None:
        for i in range(0, n, bs):
            b = make_batch(encs[i:i + bs], tok.pad_token_id, dev)
            pm.zero_grad(set_to_none=True)
            pm(**model_inputs(b), labels=b["labels"], use_cache=False).loss.backward()

    try:
        rec.arm(cfg, "feat_less_batch1", n1, less_loop)
        rec.arm(cfg, "feat_train_step", n, train_steps)
    finally:
        pm.zero_grad(set_to_none=True)
        pm.unload()
        for p in model.parameters():
            p.requires_grad_(False)
    rec.ratio(cfg, "feat_ours_over_less", "feat_ours", "feat_less_batch1")
    rec.ratio(cfg, "feat_ours_over_train_step", "feat_ours", "feat_train_step")


def bench_exact(rec: Recorder, cfg: str, model: Any, tok: Any, sizes: tuple, three_set: bool) -> None:
    from brittle.data.schema import Example
    from brittle.features.exact import ExactAnchorConfig, exact_anchor_result, per_example_stats
    from brittle.features.exact_combined import combined_direction, exact_combined_scores
    from brittle.features.hooks import encode_examples, make_batch, model_inputs, per_example_loss

    bf = _bench_features()
    n, n1, T, bs = sizes
    cands = bf.pool(n, tok, T)
    n_anchor = 10 if rec.device.type == "cuda" else 3  # reference: 10 per set
    anchors = {s: [Example.from_pair(f"{s} question {i}", f"{s} answer {i}: sure, step one, step two, done.",
                                     id=f"{s}{i}") for i in range(n_anchor)] for s in ("harmful", "safe1", "safe2")}
    w = {"harmful": 1.0, "safe1": -1.0, "safe2": -1.0}
    ecfg = ExactAnchorConfig(batch_size=bs, max_length=T, flops_per_byte=300.0 if rec.device.type == "cuda" else 10.0)
    # whole production call (anchor norms + shares + direction + candidates)
    res = rec.arm(cfg, "exact_combined", n,
                  lambda: (n, exact_combined_scores(model, tok, cands, anchors, w, ecfg)))
    if res is None:  # OOM
        return
    V = combined_direction(model, tok, anchors, w, ecfg)
    stacked = {k: v.unsqueeze(0) for k, v in V.items()}
    # candidates only, with the direction already built (what each shard costs)
    rec.arm(cfg, "exact_candidates", n, lambda: (n, per_example_stats(
        model, tok, cands, ecfg, anchors=stacked, max_response_tokens=ecfg.candidate_tokens)))
    encs = encode_examples(tok, cands[:n1], max_length=T)
    dev = next(model.parameters()).device
    names = list(V)
    params = [dict(model.named_parameters())[n_] for n_ in names]

    def loop() -> tuple[int, Any]:
        for p in params:
            p.requires_grad_(True)
        out = []
        try:
            for e in encs:
                b = make_batch([e], tok.pad_token_id, dev)
                loss = per_example_loss(model(**model_inputs(b), use_cache=False).logits, b["labels"]).sum()
                gs = torch.autograd.grad(loss, params)
                dot = sum(float((g.float() * V[n_].float()).sum()) for n_, g in zip(names, gs))
                out.append(dot / sum(float(g.float().pow(2).sum()) for g in gs) ** 0.5)
        finally:
            for p in params:
                p.requires_grad_(False)
        return len(encs), torch.tensor(out)

    ref = rec.arm(cfg, "exact_batch1_loop", n1, loop)
    V.clear()  # free the direction before the three-set path
    stacked.clear()
    if ref is not None:
        order = {e.id: i for i, e in enumerate(cands)}
        got = res.score[[order[c.id] for c in cands[:n1]]]
        rec.data["configs"][cfg]["exact_batch1_loop"]["max_abs_diff"] = float((got.double() - ref.double()).abs().max())
    rec.ratio(cfg, "exact_candidates_over_batch1", "exact_candidates", "exact_batch1_loop")
    if three_set:
        rec.arm(cfg, "exact_three_set", n, lambda: (n, exact_anchor_result(model, tok, cands, anchors, ecfg)))
        rec.ratio(cfg, "exact_combined_over_three_set", "exact_combined", "exact_three_set")


def bench_repr(rec: Recorder, cfg: str, model: Any, tok: Any, sizes: tuple) -> None:
    from brittle.features.reprs import last_token_reprs

    bf = _bench_features()
    n, n1, T, bs = sizes
    exs = bf.pool(n, tok, T)
    last_token_reprs(model, tok, exs[:2], 2, max_length=T)
    rec.arm(cfg, "repr_batched", n, lambda: (n, last_token_reprs(model, tok, exs, bs, max_length=T)))
    rec.arm(cfg, "repr_batch1", n1, lambda: (n1, last_token_reprs(model, tok, exs[:n1], 1, max_length=T)))
    rec.ratio(cfg, "repr_batched_over_batch1", "repr_batched", "repr_batch1")


# ---------------------------------------------------------------- driver


def run(configs: list[str], device: str = "cuda", out: Path | None = None, *,
        arms: tuple[str, ...] = ("gen", "feat", "exact", "repr"), three_set: bool = True,
        time_limit_s: float | None = None) -> dict[str, Any]:
    """Benchmark every config in ``configs``; returns (and writes) the JSON record."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    bf = _bench_features()
    name = bf.device_name(dev) if cuda else "cpu"
    out = out or Path(__file__).parent / "results" / f"bench_gpu-{name.replace(' ', '-').lower()}.json"
    meta = {"device": str(dev), "device_name": name, "dtype": str(dtype).removeprefix("torch."),
            "torch": torch.__version__, "platform": platform.platform(), "sizes": SIZES["cuda" if cuda else "cpu"],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rec = Recorder(Path(out), dev, meta, time_limit_s)
    sizes = SIZES["cuda" if cuda else "cpu"]
    for cfg in configs:
        if cfg not in CONFIGS:
            raise SystemExit(f"unknown config {cfg!r}; known: {', '.join(CONFIGS)}")
        try:
            model, tok = build(cfg, device, dtype)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_oom(e):
                raise
            rec.data["configs"][cfg] = {"build": {"oom": True}}
            rec.write()
            continue
        info = rec.data["configs"].setdefault(cfg, {})
        info["params_b"] = round(sum(p.numel() for p in model.parameters()) / 1e9, 3)
        if "gen" in arms:
            bench_generation(rec, cfg, model, tok, sizes["gen"])
        if "feat" in arms:
            bench_features(rec, cfg, model, tok, sizes["feat"], cuda)
        if "exact" in arms:
            bench_exact(rec, cfg, model, tok, sizes["exact"], three_set)
        if "repr" in arms:
            bench_repr(rec, cfg, model, tok, sizes["repr"])
        del model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    rec.data["meta"]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rec.write()
    return rec.data


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--configs", default=None, help=f"comma list of {', '.join(CONFIGS)} "
                    f"(default: {','.join(GPU_CONFIGS)} on GPU, tiny on CPU)")
    ap.add_argument("--arms", default="gen,feat,exact,repr")
    ap.add_argument("--no-three-set", action="store_true", help="skip the old three-set exact path")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--time-limit", type=float, default=None,
                    help="seconds after which remaining arms are recorded as skipped (default: 420 on GPU)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    default = GPU_CONFIGS if args.device.startswith("cuda") else ["tiny"]
    configs = [c.strip() for c in args.configs.split(",")] if args.configs else default
    limit = args.time_limit if args.time_limit is not None else (420.0 if args.device.startswith("cuda") else None)
    data = run(configs, args.device, args.out, arms=tuple(args.arms.split(",")), three_set=not args.no_three_set,
               time_limit_s=limit)
    for cfg, arms in data["configs"].items():
        print(cfg, json.dumps(arms.get("ratios", {})))
    return data


if __name__ == "__main__":
    main()
