"""Batched HF generation vs one prompt at a time, same prompts, same run.

    python benchmarks/bench_generate.py --model embedded:smollm2-135m --n 32 \
        --max-new-tokens 64 --batch-size 16 --out benchmarks/results/generate.json

Both arms use :class:`brittle.models.generate.HFBackend` with greedy decoding; the
baseline is ``batch_size=1``. Throughput = generated tokens (each reply re-tokenised, plus
its end-of-turn token when it stopped early) / wall seconds. The claim is the *ratio*
(goal: >= 4x on CPU), not the absolute numbers, which depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

FALLBACK_TOPICS = [
    "how a bicycle gear works", "the water cycle", "why the sky is blue", "what a prime number is",
    "how to boil an egg", "photosynthesis", "the difference between weather and climate",
    "how vaccines train the immune system", "what recursion means in programming",
    "how to write a polite email declining a meeting", "the rules of chess in brief",
    "how compound interest works", "what causes tides", "how a refrigerator keeps food cold",
    "three tips for learning a language", "what a black hole is",
]


def prompts(n: int) -> list[list[dict[str, str]]]:
    """Benign eval prompts from the data stage when available, else varied built-in ones."""
    try:
        from brittle.data.embedded import load_dataset

        exs = load_dataset("benign", "eval", limit=n)
        msgs = [ex.prompt_messages for ex in exs]
        if len(msgs) >= n:
            return msgs[:n]
    except Exception as e:  # noqa: BLE001 - any data-stage failure: fall back
        logging.getLogger(__name__).info("benign data set unavailable (%s); using built-in prompts", e)
    styles = ["Explain {} in two sentences.", "Write a short paragraph about {}.",
              "Give me a numbered list of facts about {}, please, with short explanations."]
    return [
        [{"role": "user", "content": styles[i % len(styles)].format(FALLBACK_TOPICS[i % len(FALLBACK_TOPICS)])}]
        for i in range(n)
    ]


def count_tokens(tok, texts: list[str], max_new: int) -> int:
    return sum(min(max_new, len(tok(t, add_special_tokens=False)["input_ids"]) + 1) for t in texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16, help="Contender batch (0: sized to memory).")
    ap.add_argument("--baseline-batch", type=int, default=1, help="Baseline batch (1: one prompt at a time).")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/generate.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    from brittle.models.backend import GenerationConfig
    from brittle.models.generate import HFBackend
    from brittle.models.load import load_model
    from brittle.store import write_json

    model, tok = load_model(args.model, device=args.device)
    backend = HFBackend(model, tok, f"hf:{args.model}")
    convs = prompts(args.n)
    backend.generate(convs[:1], config=GenerationConfig(max_new_tokens=4, batch_size=1))  # warm-up

    results = {}
    texts = {}
    for arm, bs in (("sequential", args.baseline_batch), ("batched", args.batch_size)):
        cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=bs)
        t0 = time.perf_counter()
        texts[arm] = backend.generate(convs, config=cfg)
        secs = time.perf_counter() - t0
        toks = count_tokens(tok, texts[arm], args.max_new_tokens)
        results[arm] = {"batch_size": bs or f"auto ({backend.auto_batch_size(64 + args.max_new_tokens)} at 64-token prompts)", "seconds": round(secs, 3), "tokens": toks,
                        "tokens_per_s": round(toks / secs, 2)}
        print(f"{arm:>10}: batch {bs or 'auto':>4}  {toks} tokens in {secs:.1f}s = {toks / secs:.1f} tok/s")
    ratio = results["batched"]["tokens_per_s"] / results["sequential"]["tokens_per_s"]
    same = sum(a == b for a, b in zip(texts["batched"], texts["sequential"])) / len(convs)
    print(f"ratio batched/sequential: {ratio:.2f}x (goal >= 4x on CPU); identical replies: {same:.0%}")
    record = {
        "benchmark": "generate", "model": args.model, "n": args.n,
        "max_new_tokens": args.max_new_tokens, "device": args.device, **results,
        "ratio": round(ratio, 2), "identical_replies": same,
        "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
    }
    write_json(Path(args.out), record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
