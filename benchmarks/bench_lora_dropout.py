"""LoRA dropout on a CPU: the alignment recipe's training steps with dropout 0.05 (recipe v3)
vs none (v4), in one process on the same examples.

    python benchmarks/bench_lora_dropout.py                 # 48 alignment examples = 6 steps of 8
    python benchmarks/bench_lora_dropout.py --examples 96 --repeats 3

Each arm fine-tunes a fresh copy of the embedded model with the ``align-lora`` preset and the
quick recipe's settings (r 16, lr 6e-4, 96 tokens, batch 8); only ``lora_dropout`` differs.
Arms alternate and the best of ``--repeats`` counts (the machine is shared); the ratio is the
claim. Whether dropout changes what is learned is measured separately (docs/train.md: the
installed refusal and over-refusal of recipes v3 and v4).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--examples", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/lora_dropout.json")
    args = ap.parse_args()

    import random

    import torch

    from brittle.models.load import load_model
    from brittle.train.align import QUICK, build_alignment_data
    from brittle.train.sft import FinetuneConfig, train_model

    examples, _ = build_alignment_data(QUICK.n_harmful, QUICK.n_benign, seed=0)
    random.Random(0).shuffle(examples)  # refusals and benign pairs mixed, as in training
    examples = examples[: args.examples]
    arms = {"dropout 0.05": 0.05, "no dropout": 0.0}
    seconds: dict[str, list[float]] = {a: [] for a in arms}
    for _ in range(args.repeats):
        for arm, p in arms.items():
            model, tok = load_model(args.model, dtype="float32")
            cfg = FinetuneConfig(run_dir=tempfile.mkdtemp(prefix="bench-dropout-"), model=args.model,
                                 preset=QUICK.preset, epochs=1, lr=QUICK.lr, max_length=QUICK.max_length,
                                 batch_size=QUICK.batch_size, lora_dropout=p, save=False)
            t0 = time.perf_counter()
            res = train_model(cfg, examples, model=model, tokenizer=tok)
            seconds[arm].append(time.perf_counter() - t0)
            print(f"{arm:>12}: {seconds[arm][-1]:.1f} s ({res.stats['steps']} steps)", flush=True)
            del model, res
    best = {a: min(v) for a, v in seconds.items()}
    result = {"model": args.model, "examples": len(examples), "batch_size": QUICK.batch_size,
              "max_length": QUICK.max_length, "threads": torch.get_num_threads(), "seconds": seconds,
              "ratio_dropout_over_none": round(best["dropout 0.05"] / best["no dropout"], 3)}
    print(f"no dropout is {result['ratio_dropout_over_none']:.2f}x faster")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
