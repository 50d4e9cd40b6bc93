"""Several worker processes sharing one run directory's cells (one process per GPU).

A *cell* is an independent unit of a sweep (an attack cell ``kind/n/seed``, a selection arm
``name|seed``) identified by a string key; its result is one record in the stage's
:class:`~brittle.store.JsonlStore` (multi-writer safe). Workers split the cells in one of two
ways:

* **dynamic claims** (default of ``--workers N``, and under torchrun): before running a cell
  a worker creates ``run_dir/claims/<key>.claim`` with ``O_CREAT | O_EXCL`` (pid, host, time,
  a token); whoever creates it runs the cell, the others skip it, so uneven cells balance. A
  cell whose record is in the store is done whatever its claim says. A claim is released
  after the record is appended (or the cell failed); a claim left by a dead process (same
  host) or not refreshed for ``ttl`` seconds (a heartbeat touches held claims) is *stale* and
  taken over. Claims and take-overs happen under an ``flock`` on ``claims/.lock``, so two
  workers never take over the same stale claim.
* **static split** ``--worker i/n``: worker i runs the cells whose index (in the sweep's own
  order) is ``i mod n`` — deterministic, no claims directory needed.

Identity (:func:`current_worker`): an explicit ``i/n`` share; else ``BRITTLE_WORKER=i/n``,
set by the launcher (:func:`launch`) on its children; else torchrun's ``RANK`` /
``WORLD_SIZE`` (``WORLD_SIZE > 1``, device ``LOCAL_RANK``), read the same way
``brittle features`` reads them. :func:`isolate` turns a torchrun rank into a plain worker
on its own GPU (``CUDA_VISIBLE_DEVICES``) without the distributed environment, so the
Trainer of one cell never joins the other ranks' cells in DDP.

Plain processes and files rather than Ray: the run directory is the unit of resume, claims
work on a shared file system across nodes, and nothing new needs installing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from brittle.errors import BrittleError
from brittle.store import ensure_dir, file_lock

log = logging.getLogger(__name__)

WORKER_ENV = "BRITTLE_WORKER"  # "i/n": a launched (or isolated torchrun) claiming worker
CLAIMS = "claims"
WORKERS = "workers"  # run_dir/workers/worker-<i>.log
DEFAULT_TTL = 900.0  # seconds without a heartbeat after which a claim is stale
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT",
                "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS")

T = TypeVar("T")


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Worker:
    """This process's place among ``count`` workers."""

    index: int
    count: int
    claims: bool = True  # dynamic claims; False: static split (cell index mod count)
    local_rank: int | None = None  # torchrun: the node-local GPU index, until isolate()

    def share(self, items: Sequence[T]) -> list[T]:
        """Static split: the items whose index is ``index mod count``."""
        return [x for j, x in enumerate(items) if j % self.count == self.index]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_share(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    i, sep, n = str(text).strip().partition("/")
    try:
        a, b = int(i), int(n)
    except ValueError:
        a, b = -1, 0
    if not sep or not 0 <= a < b:
        raise BrittleError(f"worker {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return a, b


def current_worker(share: str | None = None, env: Mapping[str, str] | None = None) -> Worker | None:
    """The worker identity of this process (see module docstring), or None for a lone process."""
    env = os.environ if env is None else env
    if share:
        i, n = parse_share(share)
        return Worker(i, n, claims=False)
    if env.get(WORKER_ENV):
        i, n = parse_share(env[WORKER_ENV])
        return Worker(i, n)
    world = int(env.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        rank = int(env.get("RANK", "0") or 0)
        return Worker(rank, world, local_rank=int(env.get("LOCAL_RANK", str(rank)) or rank))
    return None


def isolate(worker: Worker | None, env: MutableMapping[str, str] | None = None) -> Worker | None:
    """A torchrun rank becomes a plain claiming worker on its own GPU: ``CUDA_VISIBLE_DEVICES``
    narrowed to the ``LOCAL_RANK``-th visible device (when CUDA is not initialised yet; else the
    rank's device is made current), the distributed variables removed (each cell trains alone,
    not in DDP with the other ranks) and ``BRITTLE_WORKER`` set so later calls see the same
    identity. Other workers are returned unchanged."""
    if worker is None or worker.local_rank is None:
        return worker
    env = os.environ if env is None else env
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.set_device(worker.local_rank)
        log.warning("worker %s: CUDA was initialised before the worker started; using cuda:%d "
                    "with every GPU visible", worker, worker.local_rank)
    else:
        visible = [d.strip() for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        if visible:
            env["CUDA_VISIBLE_DEVICES"] = visible[worker.local_rank % len(visible)]
        else:
            env["CUDA_VISIBLE_DEVICES"] = str(worker.local_rank)
    for k in TORCHRUN_ENV:
        env.pop(k, None)
    env[WORKER_ENV] = str(worker)
    return Worker(worker.index, worker.count)


# --------------------------------------------------------------------------- locks and claims


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_name(key: str) -> str:
    """A file name for ``key`` (``/`` and other specials quoted; long keys hashed)."""
    name = quote(key, safe="-_.=+@")
    if len(name) > 180:
        name = name[:120] + "-" + sha1(key.encode()).hexdigest()
    return name + ".claim"


class Claims:
    """Claim files under ``root`` (``run_dir/claims``); see the module docstring."""

    def __init__(self, root: str | Path, *, ttl: float = DEFAULT_TTL, owner: str = ""):
        self.root = ensure_dir(root)
        self.ttl = float(ttl)
        self.owner = owner
        self.host = socket.gethostname()

    def path(self, key: str) -> Path:
        return self.root / claim_name(key)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def stale(self, key: str, now: float | None = None) -> bool:
        """Is the claim on ``key`` abandoned: its process dead (same host), or no heartbeat
        for ``ttl`` seconds? (No claim: False.)"""
        path = self.path(key)
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return False
        rec = self._read(path) or {}
        if rec.get("host") == self.host and isinstance(rec.get("pid"), int) and not _pid_alive(rec["pid"]):
            return True
        last = max(mtime, float(rec.get("time") or 0))
        return (time.time() if now is None else now) - last > self.ttl

    def claim(self, key: str) -> str | None:
        """Claim ``key``: a token (pass it to :meth:`release`) or None when another live
        worker holds it. A stale claim is taken over (logged)."""
        path = self.path(key)
        token = uuid.uuid4().hex
        rec = {"key": key, "pid": os.getpid(), "host": self.host, "time": time.time(),
               "owner": self.owner, "token": token}
        with file_lock(self.root / ".lock"):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self.stale(key):
                    return None
                old = self._read(path) or {}
                log.warning("cell %s: taking over the stale claim of pid %s on %s", key, old.get("pid"),
                            old.get("host"))
                path.unlink(missing_ok=True)
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:  # only without flock: someone else was faster
                    return None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(rec, f)
                f.flush()
                os.fsync(f.fileno())
        return token

    def release(self, key: str, token: str) -> None:
        """Remove the claim if it is still ours (a taken-over claim belongs to its new owner)."""
        path = self.path(key)
        with file_lock(self.root / ".lock"):
            if (self._read(path) or {}).get("token") == token:
                path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        """``with claims.hold(key) as mine:`` — True when this worker holds ``key`` for the
        block (a heartbeat keeps the claim fresh), released at the end, also on error."""
        token = self.claim(key)
        if token is None:
            yield False
            return
        stop = threading.Event()
        path = self.path(key)

        def beat() -> None:
            while not stop.wait(max(self.ttl / 4, 0.05)):
                with contextlib.suppress(OSError):
                    os.utime(path)

        t = threading.Thread(target=beat, name=f"claim-heartbeat {key}", daemon=True)
        t.start()
        try:
            yield True
        finally:
            stop.set()
            t.join()
            self.release(key, token)


class NoClaims:
    """The lone process: every cell is its own."""

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        yield True


def claims_for(worker: Worker | None, run_dir: str | Path, ttl: float = DEFAULT_TTL) -> Claims | NoClaims:
    """Claims under ``run_dir/claims`` for a claiming worker, else :class:`NoClaims`."""
    if worker is None or not worker.claims:
        return NoClaims()
    return Claims(Path(run_dir) / CLAIMS, ttl=ttl, owner=str(worker))


@contextlib.contextmanager
def once_at_a_time(worker: Worker | None, run_dir: str | Path, name: str) -> Iterator[None]:
    """Serialise a setup step (installing the alignment adapter, generating demonstrations,
    rendering results) across the workers of ``run_dir``; a no-op for a lone process. The
    first worker does the work, the next ones find it cached."""
    if worker is None:
        yield
        return
    with file_lock(Path(run_dir) / CLAIMS / f".{name}.lock"):
        yield


# --------------------------------------------------------------------------- launcher


def visible_gpus(device: str) -> list[str]:
    """The GPUs a launcher hands out (``CUDA_VISIBLE_DEVICES`` entries or 0..count-1); none
    for device cpu or without CUDA."""
    if device == "cpu":
        return []
    if device.startswith("cuda:"):
        raise BrittleError(f"--workers with device {device}: use device auto or cuda "
                           "(each worker gets its own GPU)")
    import torch

    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env:
        return [d.strip() for d in env.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def worker_env(i: int, n: int, *, gpus: Sequence[str], cores: int,
               base: Mapping[str, str]) -> dict[str, str]:
    """The environment of launched worker ``i`` of ``n``: ``BRITTLE_WORKER=i/n``; its own GPU
    (``CUDA_VISIBLE_DEVICES``; several workers share a GPU round-robin when n > GPUs) or,
    on CPU, ``OMP_NUM_THREADS = max(1, cores // n)``; no torchrun variables."""
    env = {k: v for k, v in base.items() if k not in TORCHRUN_ENV}
    env[WORKER_ENV] = f"{i}/{n}"
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
    else:
        env["OMP_NUM_THREADS"] = str(max(1, cores // n))
    return env


def model_args_argv() -> list[str]:
    """``["-M", "k=v,..."]`` re-creating the running command's model arguments in a child."""
    from brittle.models.model_args import current_model_args

    parts = []
    for k, v in current_model_args().given().items():
        if isinstance(v, bool):
            v = str(v).lower()
        elif isinstance(v, (dict, list)):
            v = json.dumps(v)
        parts.append(f"{k}={v}")
    return ["-M", ",".join(parts)] if parts else []


def launch(command: Sequence[str], n: int, run_dir: str | Path, *, gpus: Sequence[str] = (),
           cores: int | None = None, cwd: str | Path | None = None) -> list[str]:
    """Run ``command`` as ``n`` worker processes (:func:`worker_env` each, output to
    ``run_dir/workers/worker-<i>.log``), wait for all; return one line per failed worker
    naming its exit code and log (empty: all succeeded). Ctrl-C terminates the workers."""
    logs = ensure_dir(Path(run_dir) / WORKERS)
    cores = cores or os.cpu_count() or 1
    procs: list[tuple[int, subprocess.Popen, Path]] = []
    log.info("launching %d workers (%s); logs in %s", n,
             f"GPUs {','.join(gpus)}" if gpus else f"CPU, {max(1, cores // n)} threads each", logs)
    try:
        for i in range(n):
            path = logs / f"worker-{i}.log"
            with open(path, "wb") as out:  # the child keeps its own handle
                p = subprocess.Popen(list(command), env=worker_env(i, n, gpus=gpus, cores=cores, base=os.environ),
                                     stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
            procs.append((i, p, path))
        for _, p, _ in procs:
            p.wait()
    except BaseException:
        for _, p, _ in procs:
            if p.poll() is None:
                p.terminate()
        for _, p, _ in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
        raise
    return [f"worker {i}/{n} failed (exit code {p.returncode}): see {path}"
            for i, p, path in procs if p.returncode != 0]
