"""benchmarks/bench_lab.py writes per-stage wall time, budget and peak memory, and the host's
matmul speed before and after (tiny model)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_lab.py"


def test_bench_lab_records_time_budget_and_memory(tmp_path):
    from brittle.lab import QUICK_BUDGET_S

    spec = importlib.util.spec_from_file_location("bench_lab_under_test", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "lab.json"
    rec = mod.main(["--model", "tiny:llama", "--stages", "overview", "--run-dir", str(tmp_path / "lab"),
                    "--out", str(out), "--probe-seconds", "0.05"])
    assert json.loads(out.read_text()) == rec
    s = rec["stages"]["overview"]
    assert s["ok"] and s["seconds"] >= 0 and s["budget_s"] == QUICK_BUDGET_S["overview"] and s["peak_rss_mb"] > 10
    assert rec["host_gflops"]["before"] > 0 and rec["host_gflops"]["after"] > 0
    assert rec["budget_total_s"] == QUICK_BUDGET_S["overview"] and rec["cpu_count"] >= 1 and rec["cpu_model"] and rec["over_budget"] in ([], ["overview"])
