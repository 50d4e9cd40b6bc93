"""Cell claiming across workers (brittle.workers): each key claimed exactly once under a race
of threads and of processes; stale claims taken over, live ones not; identities and
launcher environments."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from brittle.errors import BrittleError
from brittle.workers import (
    Claims,
    NoClaims,
    Worker,
    claim_name,
    claims_for,
    current_worker,
    isolate,
    launch,
    parse_share,
    worker_env,
)

KEYS = [f"harmful/{n}/{s}" for n in range(50) for s in range(4)]  # 200 keys with '/' in them


def _claim_all(root: str, out: str, barrier) -> None:
    """Try every key once; write the ones this process got. Both processes start claiming
    together and stay alive until both are done: a claim of an exited process is stale and
    rightly taken over, which is not the race under test."""
    claims = Claims(root)
    barrier.wait()
    got = [k for k in KEYS if claims.claim(k) is not None]
    with open(out, "w") as f:
        json.dump(got, f)
    barrier.wait()


def test_threads_racing_claim_each_key_exactly_once(tmp_path):
    claims = [Claims(tmp_path / "claims") for _ in range(4)]  # one object per thread, like workers
    got: list[list[str]] = [[] for _ in claims]
    barrier = threading.Barrier(len(claims))

    def run(i: int) -> None:
        barrier.wait()
        got[i] = [k for k in KEYS if claims[i].claim(k) is not None]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(claims))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [k for g in got for k in g]
    assert sorted(flat) == sorted(KEYS) and len(flat) == len(set(flat)) == 200
    assert len(list((tmp_path / "claims").glob("*.claim"))) == 200


def test_processes_racing_claim_each_key_exactly_once(tmp_path):
    ctx = mp.get_context("spawn")
    outs = [str(tmp_path / f"got-{i}.json") for i in range(2)]
    barrier = ctx.Barrier(len(outs), timeout=60)
    procs = [ctx.Process(target=_claim_all, args=(str(tmp_path / "claims"), o, barrier)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = [json.loads(Path(o).read_text()) for o in outs]
    assert len(got[0]) + len(got[1]) == 200 and set(got[0]) | set(got[1]) == set(KEYS)
    assert not set(got[0]) & set(got[1])


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_claim(claims: Claims, key: str, **rec) -> None:
    claims.path(key).write_text(json.dumps({"key": key, "token": "old", **rec}))


def test_stale_claims_are_taken_over_live_ones_not(tmp_path):
    claims = Claims(tmp_path, ttl=60)
    now = time.time()
    _write_claim(claims, "dead", pid=_dead_pid(), host=claims.host, time=now)
    _write_claim(claims, "live", pid=os.getpid(), host=claims.host, time=now)
    _write_claim(claims, "far-fresh", pid=1, host="another-node", time=now)
    _write_claim(claims, "far-old", pid=1, host="another-node", time=now - 3600)
    os.utime(claims.path("far-old"), (now - 3600, now - 3600))  # no heartbeat for an hour
    assert claims.stale("dead") and claims.stale("far-old")
    assert not claims.stale("live") and not claims.stale("far-fresh") and not claims.stale("absent")
    assert claims.claim("live") is None and claims.claim("far-fresh") is None
    token = claims.claim("dead")
    assert token is not None and json.loads(claims.path("dead").read_text())["pid"] == os.getpid()
    assert claims.claim("far-old") is not None
    # releasing with a foreign token leaves the claim; with ours removes it
    claims.release("dead", "not-ours")
    assert claims.path("dead").exists()
    claims.release("dead", token)
    assert not claims.path("dead").exists()


def test_hold_heartbeats_and_releases_also_on_error(tmp_path):
    claims = Claims(tmp_path, ttl=0.4)
    with claims.hold("a/1/0") as mine:
        assert mine
        os.utime(claims.path("a/1/0"), (0, 0))  # as if the last beat was long ago
        time.sleep(0.3)
        assert claims.path("a/1/0").stat().st_mtime > time.time() - 5  # the heartbeat touched it
        with Claims(tmp_path).hold("a/1/0") as other:
            assert not other  # a second worker skips a held cell
    assert not claims.path("a/1/0").exists()
    with pytest.raises(RuntimeError), claims.hold("b") as mine:
        raise RuntimeError("cell failed")
    assert not claims.path("b").exists()  # another worker may retry it


def test_claim_names_are_distinct_files():
    names = {claim_name(k) for k in ("a/1/0", "a|1|0", "a%2F1%2F0", "x" * 400, "x" * 401)}
    assert len(names) == 5 and all("/" not in n and len(n) < 255 for n in names)


def test_worker_identity_from_share_launcher_and_torchrun():
    assert current_worker(env={}) is None
    assert current_worker(env={"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert current_worker("1/3", env={}) == Worker(1, 3, claims=False)
    assert current_worker(env={"BRITTLE_WORKER": "2/4"}) == Worker(2, 4)
    w = current_worker(env={"WORLD_SIZE": "8", "RANK": "9", "LOCAL_RANK": "1"})
    assert w == Worker(9, 8, local_rank=1)
    for bad in ("3/3", "x", "1", "-1/2"):
        with pytest.raises(BrittleError, match="i/n"):
            parse_share(bad)
    assert Worker(1, 3, claims=False).share(list(range(8))) == [1, 4, 7]
    assert isinstance(claims_for(Worker(0, 2, claims=False), "."), NoClaims)
    assert isinstance(claims_for(None, "."), NoClaims)


def test_isolate_turns_a_torchrun_rank_into_a_worker_on_its_gpu():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "CUDA_VISIBLE_DEVICES": "4,5",
           "PATH": "/bin"}
    w = isolate(current_worker(env=env), env)
    assert w == Worker(3, 4)
    assert env == {"CUDA_VISIBLE_DEVICES": "5", "BRITTLE_WORKER": "3/4", "PATH": "/bin"}
    assert current_worker(env=env) == Worker(3, 4)  # later calls see the same worker


def test_worker_env_gpus_or_cpu_threads():
    base = {"PATH": "/bin", "RANK": "0", "WORLD_SIZE": "2"}
    e = worker_env(3, 4, gpus=["0", "1", "2", "3"], cores=16, base=base)
    assert e == {"PATH": "/bin", "BRITTLE_WORKER": "3/4", "CUDA_VISIBLE_DEVICES": "3"}
    assert worker_env(5, 6, gpus=["2", "7"], cores=16, base=base)["CUDA_VISIBLE_DEVICES"] == "7"
    cpu = worker_env(1, 3, gpus=[], cores=8, base=base)
    assert cpu["OMP_NUM_THREADS"] == "2" and "CUDA_VISIBLE_DEVICES" not in cpu
    assert worker_env(0, 8, gpus=[], cores=2, base=base)["OMP_NUM_THREADS"] == "1"


def test_launch_reports_each_failed_worker_with_its_log(tmp_path):
    code = ("import os, sys; i = int(os.environ['BRITTLE_WORKER'].split('/')[0]); "
            "print('worker', os.environ['BRITTLE_WORKER'], os.environ['OMP_NUM_THREADS']); sys.exit(3 if i == 1 else 0)")
    failed = launch([sys.executable, "-c", code], 3, tmp_path, cores=6)
    log1 = tmp_path / "workers" / "worker-1.log"
    assert failed == [f"worker 1/3 failed (exit code 3): see {log1}"]
    assert (tmp_path / "workers" / "worker-0.log").read_text().strip() == "worker 0/3 2"
    assert log1.read_text().strip() == "worker 1/3 2"
