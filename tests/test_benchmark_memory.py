"""benchmarks.memory: the kernel's resident-set peak, reset between stretches of work (Linux only)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import memory

pytestmark = pytest.mark.skipif(not memory.supported(), reason="needs Linux's /proc/self/clear_refs")


def _hold(mb: int) -> np.ndarray:
    return np.ones(mb * 2**20, dtype=np.uint8)  # written, so every page is resident


def test_a_peak_counts_what_the_work_held_and_a_reset_forgets_it():
    start = memory.reset_peak()
    held = _hold(200)
    assert memory.peak_mb() - start >= 190
    del held
    start = memory.reset_peak()
    small = _hold(20)
    assert 15 <= memory.peak_mb() - start < 150, "the reset did not forget the earlier 200 MB"
    del small


def test_status_names_a_missing_field():
    with pytest.raises(OSError, match="no VmNothing"):
        memory.status_mb("VmNothing")
