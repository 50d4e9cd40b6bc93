"""Time and peak memory of one CPU step at several batch sizes, each arm in its own process
(peak resident memory is per process), arms against the first one in the same run.

    python benchmarks/bench_batch_memory.py exact            # exact-anchor scoring: batch 4 vs 8
    python benchmarks/bench_batch_memory.py train            # training micro-batches: 512/640/1280 tokens

``exact``: the select stage's exact-anchor scores of a 150-example pool x 128 tokens (the quick
lab's pool when measured; it is 100 now, and candidates are scored batch by batch, so the pool
size moves the time, not the peak) on the embedded model with the installed safety adapter
(trained or read from the cache).
``train``: 3 optimiser steps of 10 x 128-token harmful demonstrations (the attack preset) with
``cpu_micro_tokens`` of each arm. Prints and writes seconds, peak MB and the time ratio to arm 1.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MODEL = "embedded:smollm2-135m"
ARMS = {"exact": [4, 8], "train": [512, 640, 1280]}


def setup_exact(batch: int) -> Callable[[], object]:
    from brittle.select.run import SelectConfig, run_select
    from brittle.train.align import install_alignment

    cfg = SelectConfig(run_dir=tempfile.mkdtemp(prefix="bench-exact-"), model=MODEL,
                       adapter=str(install_alignment(MODEL)), pool_limit=150, methods=["exact-anchor"], k=25,
                       batch_size=batch, max_length=128, seed=0)
    return lambda: run_select(cfg)


def setup_train(micro_tokens: int) -> Callable[[], object]:
    from brittle.models.load import load_model
    from brittle.train.attack_data import build_attack_data
    from brittle.train.sft import FinetuneConfig, train_model

    examples = build_attack_data("harmful", 30, 0, model_spec=MODEL, max_new_tokens=96)
    model, tok = load_model(MODEL, dtype="float32")
    cfg = FinetuneConfig(run_dir=tempfile.mkdtemp(prefix="bench-micro-"), model=MODEL, preset="lora-attack",
                         epochs=1, max_length=128, save=False, cpu_micro_tokens=micro_tokens)
    return lambda: train_model(cfg, examples, model=model, tokenizer=tok)


def child(what: str, value: int) -> None:
    """One arm: the setup (training data, model load) is outside the timed part."""
    step = (setup_exact if what == "exact" else setup_train)(value)
    t0 = time.perf_counter()
    step()
    print(json.dumps({"seconds": time.perf_counter() - t0,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=sorted(ARMS))
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="Default: benchmarks/results/batch_memory_<what>.json")
    args = ap.parse_args()
    if args.child is not None:
        return child(args.what, args.child)
    rows = []
    for value in ARMS[args.what]:
        out = subprocess.run([sys.executable, __file__, args.what, "--child", str(value)], check=True,
                             capture_output=True, text=True).stdout
        row = {"arm": value, **json.loads(out.strip().splitlines()[-1])}
        rows.append(row)
        print(f"{args.what} {value}: {row['seconds']:.1f} s, peak {row['peak_mb']:.0f} MB", flush=True)
    for row in rows:
        row["time_ratio_to_first"] = round(row["seconds"] / rows[0]["seconds"], 3)
    result = {"what": args.what, "model": MODEL, "arms": rows,
              "arm_meaning": "exact-anchor batch size" if args.what == "exact" else "cpu_micro_tokens"}
    path = Path(args.out or f"benchmarks/results/batch_memory_{args.what}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
