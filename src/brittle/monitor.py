"""Peak resident memory of a block of work (this process and its children).

``resource.getrusage`` only knows the peak since the process started, so a stage's own peak
is sampled: a daemon thread reads the resident set size (psutil) of the process and its
children every ``interval`` seconds while the block runs. The reading is a lower bound of
the true peak (a spike shorter than the interval can be missed); the process-lifetime peak
(``ru_maxrss``) is recorded beside it.
"""

from __future__ import annotations

import resource
import sys
import threading
from types import TracebackType
from typing import Self


def rss_bytes() -> int:
    """Resident set size of this process plus its live children, in bytes."""
    import psutil

    proc = psutil.Process()
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:  # exited meanwhile
            pass
    return total


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op
    elsewhere), so memory freed by one cell or stage (a model, a training step's activations)
    does not stay resident while the next one runs."""
    import ctypes
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl)
            pass


def lifetime_peak_bytes() -> int:
    """``ru_maxrss`` of this process (KiB on Linux, bytes on macOS) in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.peak_bytes`` (sampled) and ``m.lifetime_bytes``."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self.lifetime_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, rss_bytes())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Self:
        self.peak_bytes = rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, rss_bytes())
        self.lifetime_bytes = lifetime_peak_bytes()

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)
