"""Sharded, resumable, fingerprinted on-disk feature store.

Layout (``root/<fingerprint>/``)::

    manifest.json              fingerprint, planned shards (ids per shard), meta
    shard-00000.safetensors    tensor "features" [n, k]; metadata "ids" (JSON list)
    ...
    index.json                 written by merge(): {id: [shard file, row]}

The shard *plan* (which examples form shard j) is fixed up front from the whole pool,
so a resumed run recomputes exactly the missing shards with the same batch composition
— the final features are bit-identical to an uninterrupted run. Each shard is written
to a temporary file, fsync'ed and atomically renamed, so a ``kill -9`` leaves either a
whole shard or none. Multi-process: shard j belongs to rank ``j % world_size``; every
rank writes only its shards; ``merge()`` builds the global index once all exist.

Concurrent starts: the manifest is created exclusively (``os.link`` of a fsynced temp
file), so ranks that start together agree on one plan. A shard that cannot be read or
does not match the plan (bit rot, a hand edit) is *quarantined* — renamed to
``<shard>.corrupt`` with a warning — and recomputed by :meth:`FeatureStore.pending`'s
caller; a corrupt manifest is one BrittleError naming the file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brittle.errors import BrittleError

log = logging.getLogger(__name__)


def _shard_errors() -> tuple[type[BaseException], ...]:
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - older safetensors
        return (OSError, ValueError, KeyError, TypeError, RuntimeError)
    return (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError)


_SHARD_ERRORS = _shard_errors()  # what reading a damaged shard raises


def _synced_tmp(path: Path, data: bytes) -> Path:
    """``data`` written and fsynced to a process-private temporary file beside ``path``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    os.replace(_synced_tmp(path, data), path)


def _exclusive_create(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists (atomic, whole or nothing); True if created."""
    tmp = _synced_tmp(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


class FeatureStore:
    """Features of one (model, adapter, data, config) fingerprint under ``root``."""

    def __init__(self, root: str | Path, fingerprint: str, *, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise BrittleError(f"rank {rank} outside world size {world_size}")
        self.root, self.fingerprint = Path(root), fingerprint
        self.dir = self.root / fingerprint
        self.rank, self.world_size = rank, world_size

    # ---------------------------------------------------------------- plan
    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def plan(self, shards: Sequence[Sequence[str]], meta: dict[str, Any] | None = None) -> list[list[str]]:
        """Record the shard plan (ids per shard) or return the existing one (resume)."""
        if self.manifest_path.exists():
            return self.manifest()["shards"]
        flat = [i for s in shards for i in s]
        if len(set(flat)) != len(flat):
            raise BrittleError("duplicate example ids in the feature pool")
        from brittle.store import ensure_dir

        ensure_dir(self.dir)
        doc = {"fingerprint": self.fingerprint, "shards": [list(s) for s in shards], "meta": meta or {}}
        if not _exclusive_create(self.manifest_path, json.dumps(doc).encode()):
            return self.manifest()["shards"]  # another rank planned first: use its plan
        return doc["shards"]

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            raise BrittleError(f"{self.dir}: no feature store here (run `brittle features` first)")
        try:
            doc = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            doc, why = None, str(e)
        else:
            why = "no shard plan"
        if not isinstance(doc, dict) or not isinstance(doc.get("shards"), list):
            raise BrittleError(f"{self.manifest_path}: corrupt feature-store manifest ({why}); "
                               f"delete {self.dir} to recompute")
        return doc

    def shard_path(self, j: int) -> Path:
        return self.dir / f"shard-{j:05d}.safetensors"

    def my_shards(self) -> list[int]:
        """Shard indices owned by this rank (round-robin)."""
        n = len(self.manifest()["shards"])
        return [j for j in range(n) if j % self.world_size == self.rank]

    def pending(self) -> list[int]:
        """This rank's shards not yet on disk; a shard that is unreadable or differs from
        the plan is quarantined (``<shard>.corrupt``) and pending again."""
        plan = self.manifest()["shards"]
        out = []
        for j in self.my_shards():
            path = self.shard_path(j)
            if path.exists() and not self._valid_shard(j, plan[j]):
                self.quarantine(j)
            if not path.exists():
                out.append(j)
        return out

    def _valid_shard(self, j: int, planned: list[str]) -> bool:
        """Header-only check: the file opens and its ids equal the plan."""
        from safetensors import safe_open

        try:
            with safe_open(str(self.shard_path(j)), framework="pt") as f:
                ids = json.loads(f.metadata()["ids"])
                rows = f.get_slice("features").get_shape()[0]
        except _SHARD_ERRORS:  # any unreadable file
            return False
        return ids == planned and rows == len(planned)

    def quarantine(self, j: int) -> Path:
        """Move shard ``j`` aside to ``<shard>.corrupt`` (kept for inspection); returns it."""
        path = self.shard_path(j)
        dest = path.with_name(path.name + ".corrupt")
        os.replace(path, dest)
        log.warning("%s: unreadable or not the planned shard; moved to %s and recomputed",
                    path, dest.name)
        return dest

    # ---------------------------------------------------------------- write / read
    def write_shard(self, j: int, ids: Sequence[str], feats: Any) -> Path:
        """Atomically write shard ``j`` (ids must match the plan)."""
        from safetensors.torch import save

        planned = self.manifest()["shards"][j]
        if list(ids) != planned:
            raise BrittleError(f"shard {j}: ids differ from the plan")
        if feats.shape[0] != len(ids):
            raise BrittleError(f"shard {j}: {feats.shape[0]} rows for {len(ids)} ids")
        data = save({"features": feats.detach().cpu().contiguous()}, metadata={"ids": json.dumps(list(ids))})
        path = self.shard_path(j)
        _atomic_write_bytes(path, data)
        return path

    def read_shard(self, j: int) -> tuple[list[str], Any]:
        from safetensors import safe_open

        try:
            with safe_open(str(self.shard_path(j)), framework="pt") as f:
                return json.loads(f.metadata()["ids"]), f.get_tensor("features")
        except _SHARD_ERRORS as e:
            raise BrittleError(f"{self.shard_path(j)}: unreadable feature shard ({type(e).__name__}: "
                               f"{str(e)[:200]}); rerun `brittle features` to recompute it") from None

    def complete(self) -> bool:
        return all(self.shard_path(j).exists() for j in range(len(self.manifest()["shards"])))

    def merge(self) -> dict[str, list]:
        """Build ``index.json`` ({id: [shard file, row]}) from all shards; checks coverage."""
        m = self.manifest()
        index: dict[str, list] = {}
        for j, planned in enumerate(m["shards"]):
            if not self.shard_path(j).exists():
                raise BrittleError(f"{self.dir}: shard {j} missing; run the remaining ranks first")
            ids, feats = self.read_shard(j)
            if ids != planned or feats.shape[0] != len(ids):
                raise BrittleError(f"{self.shard_path(j)}: corrupt shard (ids or rows differ from plan)")
            for r, i in enumerate(ids):
                if i in index:
                    raise BrittleError(f"duplicate id {i!r} in shards")
                index[i] = [self.shard_path(j).name, r]
        _atomic_write_bytes(self.dir / "index.json", json.dumps(index).encode())
        return index

    def index(self) -> dict[str, list]:
        path = self.dir / "index.json"
        return json.loads(path.read_text()) if path.exists() else self.merge()

    def load(self, ids: Sequence[str] | None = None) -> tuple[list[str], Any]:
        """``(ids, Tensor[n, k])`` in plan order, or in the order of ``ids``."""
        import torch

        shards = [self.read_shard(j) for j in range(len(self.manifest()["shards"]))]
        all_ids = [i for s, _ in shards for i in s]
        feats = torch.cat([f for _, f in shards]) if shards else torch.empty(0, 0)
        if ids is None:
            return all_ids, feats
        pos = {i: r for r, i in enumerate(all_ids)}
        missing = [i for i in ids if i not in pos]
        if missing:
            raise BrittleError(f"{len(missing)} ids not in the feature store, e.g. {missing[0]!r}")
        return list(ids), feats[[pos[i] for i in ids]]

    def __len__(self) -> int:
        return sum(len(s) for s in self.manifest()["shards"]) if self.manifest_path.exists() else 0
