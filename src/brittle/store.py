"""Append-only JSONL result stores: the unit of resume.

Long jobs append one record per finished unit of work (flushed + fsynced) and, on
re-run, skip the keys already present. A crash can leave at most one partial last line;
:meth:`JsonlStore.records` drops it (and :meth:`JsonlStore.repair` truncates it), so a
resumed run equals an uninterrupted one with no duplicates.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class JsonlStore:
    def __init__(self, path: str | Path, key: Callable[[dict[str, Any]], str] | str = "id"):
        self.path = Path(path)
        self._key = (lambda r: str(r[key])) if isinstance(key, str) else key
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _lines(self) -> Iterator[tuple[int, dict[str, Any] | None]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for offset_line in f:
                try:
                    yield len(offset_line), json.loads(offset_line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    yield len(offset_line), None

    def repair(self) -> int:
        """Truncate a partial trailing line left by a crash; returns bytes removed."""
        if not self.path.exists():
            return 0
        good = 0
        bad_tail = 0
        for n, rec in self._lines():
            if rec is None:
                bad_tail += n
            else:
                if bad_tail:
                    raise ValueError(f"{self.path}: corrupt record in the middle of the file")
                good += n
        if bad_tail:
            log.warning("%s: dropping %d bytes of a partial record (crash?)", self.path, bad_tail)
            with open(self.path, "r+b") as f:
                f.truncate(good)
        return bad_tail

    def records(self) -> list[dict[str, Any]]:
        """All complete records, last write wins per key, in first-seen order."""
        out: dict[str, dict[str, Any]] = {}
        for _, rec in self._lines():
            if rec is not None:
                out[self._key(rec)] = rec
        return list(out.values())

    def done(self) -> set[str]:
        return {self._key(r) for r in self.records()}

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append and fsync (a record is either fully on disk or dropped on resume)."""
        self.repair()
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (tmp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
