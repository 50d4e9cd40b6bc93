"""Logprob judging vs generate-and-parse on the same judge items, same run.

    OMP_NUM_THREADS=2 python benchmarks/bench_rules_judge.py --model embedded:smollm2-135m --rules 3 --scenarios 8

Both methods see identical prompts (chat template + "Answer:" prefill) and the same batch
size. Logprob judging = one forward pass per batch (shared (rule, strategy) prefix KV);
generate-and-parse = greedy decoding of ``--new-tokens`` tokens per item, then the first
letter is parsed (unparseable = unscored). Prints the wall-time ratio (goal ≥ 5×), the
agreement of the verdicts, and writes a JSON result.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--rules", type=int, default=3)
    ap.add_argument("--scenarios", type=int, default=8)
    ap.add_argument("--strategies", default="none")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/bench_rules_judge.json")
    args = ap.parse_args()

    import torch

    from brittle.models.backend import GenerationConfig
    from brittle.models.generate import HFBackend
    from brittle.models.load import load_model
    from brittle.rules.data import load_rules, load_strategies, read_scenarios
    from brittle.rules.judge import OptionScorer, sampled_p
    from brittle.rules.prompts import judge_prompt

    model, tok = load_model(args.model)
    rules = load_rules()[: args.rules]
    strats = load_strategies(ids=args.strategies.split(","))
    scn = read_scenarios(limit=args.scenarios)
    prompts = [judge_prompt(r, s, c.messages) for r in rules for s in strats for c in scn]
    n_tok = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in [p.system + p.prefix + p.suffix for p in prompts])

    # warm-up (one small batch each) so neither side pays first-call costs
    OptionScorer(model, tok, batch_size=2).score(prompts[:2])
    backend = HFBackend(model, tok, name=args.model)
    backend.generate([p.messages() for p in prompts[:2]], prefill=[p.prefill for p in prompts[:2]],
                     config=GenerationConfig(max_new_tokens=2, batch_size=2))

    # the machine is shared: alternate the methods and keep each one's best of --repeats
    t_lp = t_lp_noshare = t_gen = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        lp = OptionScorer(model, tok, batch_size=args.batch_size, share_prefix=True).score(prompts)
        t_lp = min(t_lp, time.perf_counter() - t0)
        t0 = time.perf_counter()
        lp_noshare = OptionScorer(model, tok, batch_size=args.batch_size, share_prefix=False).score(prompts)
        t_lp_noshare = min(t_lp_noshare, time.perf_counter() - t0)
        t0 = time.perf_counter()
        gen = backend.generate([p.messages() for p in prompts], prefill=[p.prefill for p in prompts],
                               config=GenerationConfig(max_new_tokens=args.new_tokens, batch_size=args.batch_size))
        t_gen = min(t_gen, time.perf_counter() - t0)

    gen_p = [sampled_p([g], p.options) for g, p in zip(gen, prompts)]
    parsed = [x for x in gen_p if not math.isnan(x)]
    agree = [(a[0] >= 0.5) == (g >= 0.5) for a, g in zip(lp, gen_p) if not math.isnan(g)]
    res = {
        "model": args.model,
        "items": len(prompts),
        "prompt_tokens_mean": n_tok / len(prompts),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "logprob_s": t_lp,
        "logprob_noshare_s": t_lp_noshare,
        "generate_s": t_gen,
        "new_tokens": args.new_tokens,
        "speedup": t_gen / t_lp,
        "speedup_noshare": t_gen / t_lp_noshare,
        "prefix_sharing_gain": t_lp_noshare / t_lp,
        "generate_parse_rate": len(parsed) / len(prompts),
        "verdict_agreement_on_parsed": sum(agree) / len(agree) if agree else None,
        "mean_option_mass": sum(m for _, m in lp) / len(lp),
        "max_abs_diff_share_vs_noshare": max(abs(a[0] - b[0]) for a, b in zip(lp, lp_noshare)),
        "sample_generations": gen[:3],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "sample_generations"}, indent=2))
    print(f"logprob judging is {res['speedup']:.1f}x faster than generate-and-parse (goal >= 5x)")


if __name__ == "__main__":
    main()
