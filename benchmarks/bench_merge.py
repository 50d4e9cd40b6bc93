"""Generation through an unmerged LoRA adapter (PeftModel) vs the same adapter merged into the
weights (``load_model(..., merge=True)``), in one process on the same prompts.

    python benchmarks/bench_merge.py                       # a random-init LoRA on the embedded model
    python benchmarks/bench_merge.py --adapter DIR --n 40  # a trained adapter

The ratio is the claim (best of ``--repeats`` per arm, arms alternated: the machine is shared);
the replies of both arms are compared, since merging must not change greedy decoding beyond
floating-point noise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def random_adapter(model_spec: str, out: Path) -> Path:
    """A LoRA r=16 on every linear layer with random (non-zero) B: the shape of the safety adapter."""
    import torch
    from peft import LoraConfig, get_peft_model

    from brittle.models.load import load_model

    model, _ = load_model(model_spec)
    torch.manual_seed(0)
    cfg = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    peft = get_peft_model(model, cfg)
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.mul_(0.01)  # small delta: replies stay fluent
    peft.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--adapter", type=Path, default=None, help="Default: a random-init LoRA (r=16, all linear).")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/merge.json")
    args = ap.parse_args()

    import torch

    from brittle.data.embedded import load_dataset
    from brittle.models.backend import GenerationConfig
    from brittle.models.generate import HFBackend
    from brittle.models.load import load_model

    adapter = args.adapter or random_adapter(args.model, Path(tempfile.mkdtemp(prefix="bench-merge-")) / "adapter")
    convs = [e.prompt_messages for e in load_dataset("harmful", "eval", limit=args.n)]
    arms = {"unmerged": load_model(args.model, adapter=adapter),
            "merged": load_model(args.model, adapter=adapter, merge=True)}
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens)
    seconds: dict[str, list[float]] = {a: [] for a in arms}
    replies: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for arm, (model, tok) in arms.items():
            backend = HFBackend(model, tok, name=arm)
            t0 = time.perf_counter()
            replies[arm] = backend.generate(convs, config=cfg)
            seconds[arm].append(time.perf_counter() - t0)
            print(f"{arm:>9}: {seconds[arm][-1]:.1f} s", flush=True)
    best = {a: min(v) for a, v in seconds.items()}
    same = sum(a == b for a, b in zip(replies["merged"], replies["unmerged"])) / len(convs)
    result = {"model": args.model, "adapter": "random r16" if args.adapter is None else str(args.adapter),
              "prompts": len(convs), "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
              "seconds": seconds, "ratio_unmerged_over_merged": round(best["unmerged"] / best["merged"], 3),
              "identical_replies": same}
    print(f"merged is {result['ratio_unmerged_over_merged']:.2f}x faster; identical replies: {same:.0%}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
