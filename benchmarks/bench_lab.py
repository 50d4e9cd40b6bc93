"""The quick lab's stages on the embedded model: wall time and peak memory per stage vs budget.

    python benchmarks/bench_lab.py --run-dir /tmp/bench-lab --out benchmarks/results/lab_quick.json
    python benchmarks/bench_lab.py --stages overview,align --out /tmp/align.json   # a subset

Runs :func:`brittle.lab.run_lab` (``--quick``) in a fresh run directory and writes, per
stage, the wall seconds, the stage's budget (:data:`brittle.lab.QUICK_BUDGET_S`), the
sampled peak resident memory of the process and its children (:mod:`brittle.monitor`), plus
the total, the CPU count, the thread count and the lifetime peak (``ru_maxrss``). The
alignment adapter is cached per machine (``~/.cache/brittle``): pass ``--cold`` to point
``BRITTLE_CACHE`` at a new directory holding only the data files ``make setup`` fetched
(``data/``), and measure a first run on a fresh machine: the GGUF converted and the attack
demonstrations generated in the run, the safety adapter and its contrast replies copied from
the seed brittle ships (``brittle.resources.seeded_cache_dir``; ``brittle lab
--retrain-alignment`` trains them instead, ≈ 3.5 min more on a 2-core CPU).

The budget is the claim (issue 18: ≤ 20 min in all on an idle 2-core CPU, setup included,
≤ 4 GB peak); absolute times depend on the machine and its load, so run it on an idle one.
The shared host's speed also drifts between days (two cold runs on 2026-12-03 differed by
23-31% on stages whose code had not changed) and the 2-core machine itself changes (AMD EPYC
on 2026-12-03, Intel Xeon on 2026-12-04), so the record carries the CPU model and a yardstick
measured before and after the run: fp32 matmul GFLOP/s on the 135M model's MLP shape.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; ``platform.processor()`` elsewhere): the
    2-core machines this runs on have been AMD EPYC and Intel Xeon, ≈ 2.7× apart in fp32 matmul."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_gflops(seconds: float = 3.0) -> float:
    """fp32 matmul throughput of this host now: 512 tokens x 576 -> 1536 (the 135M model's
    MLP up-projection), repeated for ``seconds``, in GFLOP/s."""
    import torch

    a, b = torch.randn(512, 576), torch.randn(576, 1536)
    a @ b  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return round(n * 2 * 512 * 576 * 1536 / (time.perf_counter() - t0) / 1e9, 1)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m")
    ap.add_argument("--run-dir", type=Path, default=None, help="Default: a fresh temporary directory.")
    ap.add_argument("--stages", default=None, help="Comma list (default: every quick-lab stage).")
    ap.add_argument("--cold", action="store_true", help="Empty cache (but the data), as on a fresh machine.")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/lab_quick.json"))
    ap.add_argument("--probe-seconds", type=float, default=3.0, help="Length of each host-speed probe.")
    args = ap.parse_args(argv)

    if args.cold:
        import shutil

        from brittle.resources import cache_dir

        fetched = cache_dir("data")  # what `make setup` (brittle data fetch) put there
        cold = Path(tempfile.mkdtemp(prefix="brittle-cold-cache-"))
        shutil.copytree(fetched, cold / "data")
        os.environ["BRITTLE_CACHE"] = str(cold)
    import torch

    from brittle.lab import LabConfig, run_lab
    from brittle.monitor import lifetime_peak_bytes

    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="bench-lab-"))
    cfg = LabConfig(run_dir=run_dir, model=args.model, quick=True,
                    stages=args.stages.split(",") if args.stages else None)
    gflops_before = host_gflops(args.probe_seconds)
    t0 = time.perf_counter()
    result = run_lab(cfg)
    total = time.perf_counter() - t0
    gflops_after = host_gflops(args.probe_seconds)
    stages = {
        name: {k: s.get(k) for k in ("ok", "seconds", "budget_s", "peak_rss_mb", "error") if k in s}
        for name, s in result["stages"].items()
    }
    record = {
        "model": args.model, "cold_cache": args.cold, "stages": stages,
        "total_s": round(total, 1),
        "budget_total_s": sum(s.get("budget_s") or 0 for s in stages.values()),
        "over_budget": [n for n, s in stages.items() if s.get("budget_s") and s["seconds"] > s["budget_s"]],
        "peak_rss_mb": max((s.get("peak_rss_mb") or 0) for s in stages.values()),
        "lifetime_peak_rss_mb": round(lifetime_peak_bytes() / 2**20, 1),
        "host_gflops": {"before": gflops_before, "after": gflops_after},
        "cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"), "run_dir": str(run_dir),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    for name, s in stages.items():
        print(f"{name:<10} {s.get('seconds', 0):>8.1f} s  budget {s.get('budget_s') or '-':>5}  "
              f"peak {s.get('peak_rss_mb') or 0:>8.0f} MB  {'ok' if s.get('ok') else 'FAILED'}")
    print(f"total {record['total_s']} s (budget {record['budget_total_s']} s); peak {record['peak_rss_mb']} MB"
          f"; host {gflops_before} -> {gflops_after} GFLOP/s -> {args.out}")
    return record


if __name__ == "__main__":
    main()
