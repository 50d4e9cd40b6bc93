"""Two worker processes split a feature pool over one run dir (as torchrun ranks would) and
produce exactly the features a single worker produces, none lost or duplicated."""

from __future__ import annotations

import multiprocessing as mp

import torch

from brittle.data.io import write_jsonl
from brittle.data.schema import Example
from brittle.features.run import FeaturesConfig, run_features
from brittle.features.store import FeatureStore


def _worker(kw: dict, rank: int) -> dict:
    torch.set_num_threads(1)
    return run_features(FeaturesConfig(**kw, rank=rank, world_size=2))


def _cfg(tmp_path, name: str) -> dict:
    return {"kind": "grad", "model": "tiny:llama", "data": str(tmp_path / "pool.jsonl"), "run_dir": str(tmp_path / name),
            "k": 16, "lora_rank": 2, "batch_size": 3, "shard_size": 2, "max_length": 64, "device": "cpu"}


def test_two_processes_equal_one(tmp_path):
    exs = [Example.from_pair(f"question {i}", "answer " * (1 + i % 5) + str(i), id=f"q{i}") for i in range(11)]
    write_jsonl(exs, tmp_path / "pool.jsonl")
    single = run_features(FeaturesConfig(**_cfg(tmp_path, "one")))
    kw = _cfg(tmp_path, "two")
    with mp.get_context("spawn").Pool(2) as pool:
        outs = pool.starmap(_worker, [(kw, 0), (kw, 1)])
    assert {o["rank"] for o in outs} == {0, 1} and any(o["complete"] for o in outs)
    ids = [e.id for e in exs]
    one = FeatureStore(tmp_path / "one" / "features", single["fingerprint"])
    two = FeatureStore(tmp_path / "two" / "features", outs[0]["fingerprint"])
    assert outs[0]["fingerprint"] == single["fingerprint"]  # the run dir is not in the key
    shards = sorted(p.name for p in two.dir.glob("shard-*"))
    assert len(shards) == 6 == len(set(shards))  # 11 examples / 2 per shard, each written once
    got_ids, got = two.load(ids)
    want_ids, want = one.load(ids)
    assert got_ids == want_ids == ids
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # same shard plan, same batches: bit-identical
