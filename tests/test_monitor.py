"""Peak-memory sampling sees an allocation made and freed inside the block."""

from __future__ import annotations

import time

import numpy as np

from brittle.monitor import PeakMemory, rss_bytes


def test_peak_sees_a_transient_allocation():
    before = rss_bytes()
    with PeakMemory(interval=0.02) as m:
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
        time.sleep(0.15)
        del block
    assert m.peak_bytes - before > 150 * 2**20
    assert rss_bytes() < m.peak_bytes
    assert m.lifetime_bytes >= m.peak_bytes * 0.5 and m.peak_mb > 150
