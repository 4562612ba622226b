"""Keep freed heap memory for reuse (glibc), so large numpy temporaries skip page faults.

Each (M, Q) temporary above glibc's mmap threshold is a fresh mmap whose pages fault
in one by one; on these machines that made a 64 x 4096 RBF evaluation ~2x slower
than the arithmetic (benchmarks/particle_step.py measures it). Raising the mmap and
trim thresholds lets the allocator recycle those blocks. No-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_THRESHOLD = 32 * 2**20  # glibc's largest mmap threshold on 64-bit
#: Freed heap kept before returning it to the OS: the fused particle step keeps up to 64 MiB
#: of unit-matrix blocks between its two passes, and a lower threshold let glibc return and
#: re-fault that memory every step (109 -> 151 ms at n = 2^16, d = 25).
_TRIM_THRESHOLD = 2**30
_done = False


def reuse_freed_memory() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True if applied."""
    global _done
    if _done:
        return True
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _done
