"""Benchmark last-token representation extraction: batched vs batch-1 (same model, data, run).

  PYTHONPATH=src python3 benchmarks/bench_repr.py [--model tiny:llama | config:smollm2-135m]
      [--device cuda --dtype bfloat16 --batch-size 16 --seq-len 256]
Models and synthetic examples as in bench_features.py (``config:*`` needs no download).
Writes benchmarks/results/bench_repr-<model>-<device name>.json.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None, help="synthetic examples of ~this many tokens")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()

    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("bf", Path(__file__).with_name("bench_features.py"))
    bf = importlib.util.module_from_spec(spec)
    sys.modules["bf"] = bf
    spec.loader.exec_module(bf)

    from brittle.features.reprs import last_token_reprs

    model, tok = bf.build_model(args.model, dtype=args.dtype, device=args.device)
    dev = next(model.parameters()).device
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    args.max_length = args.max_length or args.seq_len or 128
    exs = bf.pool(args.n, tok, args.seq_len)
    last_token_reprs(model, tok, exs[:2], 2, max_length=args.max_length)
    res = {"model": args.model, "device": str(dev), "device_name": bf.device_name(dev),
           "dtype": args.dtype, "n": args.n, "batch_size": args.batch_size, "seq_len": args.seq_len}
    res["batched"], a = bf.timed(lambda: last_token_reprs(model, tok, exs, args.batch_size,
                                                          max_length=args.max_length), args.n, sync)
    res["batch1"], b = bf.timed(lambda: last_token_reprs(model, tok, exs, 1, max_length=args.max_length),
                                args.n, sync)
    res["ratio_batched_over_batch1"] = res["batched"] / res["batch1"]
    res["max_abs_diff"] = float((a - b).abs().max())
    name = args.model.replace(":", "-").replace("/", "_")
    dn = re.sub(r"[^A-Za-z0-9]+", "-", res["device_name"]).strip("-").lower() if dev.type == "cuda" else "cpu"
    out = Path(__file__).parent / "results" / f"bench_repr-{name}-{dn}.json"
    out.write_text(json.dumps(res, indent=2))
    for k, v in res.items():
        print(f"{k:>28}: {v}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
