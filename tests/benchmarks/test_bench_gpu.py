"""benchmarks/bench_gpu.py runs CI-sized on CPU, writes JSON after each arm, records OOM."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


@pytest.fixture()
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_gpu_under_test", PATH)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_gpu_under_test", mod)
    spec.loader.exec_module(mod)
    return mod


def test_cpu_tiny_run_writes_every_arm_and_ratio(bench, tmp_path):
    out = tmp_path / "r.json"
    data = bench.main(["--device", "cpu", "--configs", "tiny", "--out", str(out)])
    assert json.loads(out.read_text())["configs"] == data["configs"]
    arms = data["configs"]["tiny"]
    for name in ("gen_batch1", "gen_batched", "feat_ours", "feat_less_batch1", "feat_train_step",
                 "exact_combined", "exact_candidates", "exact_batch1_loop", "exact_three_set",
                 "repr_batched", "repr_batch1"):
        assert arms[name]["per_s"] > 0 and arms[name]["peak_gib"] > 0, name
    # new tokens counted from ids: greedy random model, at most max_new per prompt
    n, n1, max_new, _ = bench.SIZES["cpu"]["gen"]
    assert 0 < arms["gen_batched"]["units"] <= n * max_new and 0 < arms["gen_batch1"]["units"] <= n1 * max_new
    assert set(arms["ratios"]) == {"gen_batched_over_batch1", "feat_ours_over_less", "feat_ours_over_train_step",
                                   "exact_candidates_over_batch1", "exact_combined_over_three_set",
                                   "repr_batched_over_batch1"}
    # the batched ghost score equals the batch-1 autograd score
    assert arms["exact_batch1_loop"]["max_abs_diff"] < 1e-4


def test_oom_is_recorded_not_fatal(bench, tmp_path):
    rec = bench.Recorder(tmp_path / "r.json", torch.device("cpu"), {})

    def boom():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    assert rec.arm("x", "big", 4, boom) is None
    assert rec.arm("x", "small", 4, lambda: (4, "ok")) == "ok"
    saved = json.loads((tmp_path / "r.json").read_text())["configs"]["x"]
    assert saved["big"]["oom"] is True and "per_s" not in saved["big"] and saved["small"]["units"] == 4
    with pytest.raises(RuntimeError, match="other"):
        rec.arm("x", "bug", 1, lambda: (_ for _ in ()).throw(RuntimeError("other failure")))


def test_exact_memory_estimate_counts_checkpointing_savings(monkeypatch):
    spec = importlib.util.spec_from_file_location("exact_memory_under_test", PATH.with_name("exact_memory.py"))
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "exact_memory_under_test", mod)
    spec.loader.exec_module(mod)
    plain = mod.measure("tiny", 4, 64, dtype=torch.float32, probe_tokens=32)
    ckpt = mod.measure("tiny", 4, 64, dtype=torch.float32, probe_tokens=32, checkpointing=True)
    assert plain["weights_gib"] == plain["direction_gib"] > 0
    assert 0 < ckpt["saved_activations_gib"] < plain["saved_activations_gib"]
    assert ckpt["captured_inputs_gib"] < plain["captured_inputs_gib"]


def test_time_limit_skips_remaining_arms(bench, tmp_path):
    rec = bench.Recorder(tmp_path / "r.json", torch.device("cpu"), {}, time_limit_s=1e-9)
    assert rec.arm("x", "late", 4, lambda: (4, "never")) is None
    assert json.loads((tmp_path / "r.json").read_text())["configs"]["x"]["late"] == {"n": 4, "skipped": "time limit"}
