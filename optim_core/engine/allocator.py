"""Keep freed (K, d) temporaries in the heap instead of handing them back to the kernel.

Every NumPy operation of a step allocates a fresh (K, d) temporary. Above glibc's mmap
threshold (128 KiB at first, K·d > 16,384) each one is a fresh mapping whose pages fault in,
zero-filled, on first touch, and freeing it unmaps them again: at K = 65,536 that doubled
the engine's time (measured: 3.4 s → 1.7 s for 300 Adam steps). The fused path's arrays
are few but as large, (K, window) loss rings: its fixed cost at K = 4,096 fell from ~5.5 to
~1.6 ms, a 1,000-step batch from 18 to 14 ms. Raising the mmap and trim
thresholds lets malloc reuse the same blocks step after step, as torch's caching allocator
does. It is a process-wide setting of the C allocator, made once, only under glibc, and
only when the engine first meets a batch that large; freed memory up to TRIM_THRESHOLD
stays with the process for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 128 * 1024 * 1024
LARGE_BATCH = 16_384  # K·d above which temporaries pass the default threshold
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
_done = False
_lock = threading.Lock()


def reuse_large_blocks(k: int, d: int) -> bool:
    """Raise glibc's thresholds once, for a batch with K·d above LARGE_BATCH (d: the width of
    its widest per-run array); True if set."""
    global _done
    if _done or k * d <= LARGE_BATCH:
        return _done
    with _lock:
        if not _done:
            _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False  # not glibc (musl, macOS): nothing to tune
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
