"""Issue 14.5, done when: two worker processes split an attack sweep over one run dir and
write exactly the records one process writes, none lost or duplicated.

(The feature-pool counterpart — two processes with RANK / WORLD_SIZE produce the merged
features of one — is ``tests/features/test_ranks.py::test_two_processes_equal_one``.)"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import pytest

from brittle.train import attack
from brittle.train.attack import AttackConfig
from tests.train.test_attack import BENIGN, _comparable, fake_eval_factory


def _cfg(run_dir: Path, **kw) -> AttackConfig:
    return AttackConfig(**{"run_dir": run_dir, "model": "tiny:llama", "adapter": None, "n": [0, 2],
                           "kinds": ["benign"], "seeds": [0, 1], "device": "cpu", "n_boot": 50,
                           "train": {"lr": 5e-2, "epochs": 2, "batch_size": 2, "lora_dropout": 0.0}, **kw})


def _sweep(run_dir: str, worker: str | None, barrier) -> None:
    """One process of the sweep: the test's fakes installed, then run_attack (a claiming
    worker when ``worker`` is set, as the launcher sets it)."""
    import torch

    import brittle.train.attack_data as ad

    torch.set_num_threads(1)
    if worker:
        os.environ["BRITTLE_WORKER"] = worker
    ad._benign_pool = lambda pool: BENIGN
    fake = fake_eval_factory([])

    def evaluate(cfg, out, adapter, model, tok, backend=None):
        with open(Path(run_dir) / "ran.txt", "a") as f:  # which process ran which cell
            f.write(f"{os.getpid()} {out.parent.name}\n")
        return fake(cfg, out, adapter, model, tok)

    attack._evaluate = evaluate
    if barrier is not None:
        barrier.wait(60)  # both workers start together, so both get cells
    attack.run_attack(_cfg(Path(run_dir)))


def _run(ctx, target_args: list[tuple]) -> None:
    procs = [ctx.Process(target=_sweep, args=a) for a in target_args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0


def test_two_worker_processes_write_the_records_of_one(tmp_path):
    from brittle.store import JsonlStore

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    _run(ctx, [(str(tmp_path / "one"), None, None),  # the lone process, alongside the two workers
               (str(tmp_path / "two"), "0/2", barrier), (str(tmp_path / "two"), "1/2", barrier)])

    one = JsonlStore(tmp_path / "one" / attack.CELLS, key="key").records()
    two = JsonlStore(tmp_path / "two" / attack.CELLS, key="key").records()
    keys = [attack.cell_key(*c) for c in attack.cells(_cfg(tmp_path))]
    assert sorted(r["key"] for r in one) == sorted(keys) == sorted(r["key"] for r in two)
    lines = (tmp_path / "two" / attack.CELLS).read_text().splitlines()
    assert len(lines) == len(keys)  # no cell appended twice
    assert _comparable(one) == _comparable(two)  # asr, flags, n_train, first/final loss, ...
    assert len({r["asr"] for r in one}) > 1  # the cells differ: equality is not trivial
    ran = [line.split() for line in (tmp_path / "two" / "ran.txt").read_text().splitlines()]
    assert sorted(c for _, c in ran) == sorted(f"{k}-n{n}-s{s}" for k, n, s in attack.cells(_cfg(tmp_path)))
    assert len({pid for pid, _ in ran}) == 2  # both workers ran cells
    assert not list((tmp_path / "two" / "claims").glob("*.claim"))  # every claim released
    assert (tmp_path / "two" / "results.csv").exists()  # rendered by the last worker to finish
    assert (tmp_path / "two" / "summary.csv").read_text() == (tmp_path / "one" / "summary.csv").read_text()


def test_static_shares_split_the_cells_by_index(tmp_path, monkeypatch):
    import brittle.train.attack_data as ad

    monkeypatch.setattr(ad, "_benign_pool", lambda pool: BENIGN)
    monkeypatch.delenv("BRITTLE_WORKER", raising=False)
    calls: list = []
    monkeypatch.setattr(attack, "_evaluate", fake_eval_factory(calls))
    cfg = _cfg(tmp_path, n=[0, 1, 2], seeds=[0])
    attack.run_attack(cfg.model_copy(update={"worker": "1/2"}))
    assert [Path(c).parent.name for c in calls] == ["benign-n1-s0"]  # cells: aligned/0, benign/1, benign/2
    assert not (tmp_path / "results.csv").exists()  # the sweep is not complete yet
    attack.run_attack(cfg.model_copy(update={"worker": "0/2"}))
    assert [Path(c).parent.name for c in calls] == ["benign-n1-s0", "aligned-n0-s0", "benign-n2-s0"]
    assert (tmp_path / "results.csv").exists()  # the last share rendered the results
    with pytest.raises(ValueError, match="i/n"):
        _cfg(tmp_path, worker="2/2")


def test_launcher_with_a_failing_worker_names_its_log(tmp_path, monkeypatch):
    """``workers=2``: two ``python -m brittle.cli attack --config …`` processes; a worker
    that fails is reported with its log file, after the results of the others are written."""
    import brittle.workers as W

    seen = {}

    def fake_launch(command, n, run_dir, *, gpus=(), cores=None, cwd=None):
        seen.update(command=list(command), n=n, gpus=list(gpus))
        return [f"worker 1/{n} failed (exit code 1): see {run_dir}/workers/worker-1.log"]

    monkeypatch.setattr(W, "launch", fake_launch)
    monkeypatch.delenv("BRITTLE_WORKER", raising=False)
    cfg = _cfg(tmp_path, workers=2, n=[1], seeds=[0])
    with pytest.raises(attack.BrittleError) as e:
        attack.run_attack(cfg)
    assert seen["command"][1:6] == ["-m", "brittle.cli", "attack", "--config", str(tmp_path / "attack_config.yaml")]
    assert seen["n"] == 2 and seen["gpus"] == []
    assert str(e.value).splitlines() == [f"worker 1/2 failed (exit code 1): see {tmp_path}/workers/worker-1.log",
                                         "1 cell(s) not finished: benign/1/0; re-run the same command to resume"]
    echoed = AttackConfig.load(tmp_path / "attack_config.yaml")
    assert echoed == cfg  # the workers read exactly this config


def test_model_args_reach_the_workers():
    from brittle.models.model_args import parse_model_args, use_model_args
    from brittle.workers import model_args_argv

    text = 'dtype=bfloat16,device_map={"": "cpu"},max_memory=0:70GiB;cpu:200GiB,trust_remote_code=true'
    with use_model_args(text) as args:
        argv = model_args_argv()
    assert argv[0] == "-M" and parse_model_args(argv[1]) == args
    assert model_args_argv() == []

