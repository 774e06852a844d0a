"""glibc's allocator, set for the encoder's large temporaries (Linux with glibc only; elsewhere a no-op).

The encoder allocates and frees many arrays of 1-100 MiB (a span's tables, the fit's features,
a chunk's products).  glibc serves allocations above its mmap threshold with fresh pages from the
kernel, and its threshold moves with the sizes last freed, so the same encode ran 1.3-1.6x slower
or faster depending on what ran before it (kodim23, `fast`: its scan 6.1 s or 12.8 s with the
same bytes; docs/PROFILE.md).  :func:`coding` fixes the threshold at 256 MiB and keeps up to 1 GiB
of freed memory in the process while it codes, then returns what is free (``malloc_trim``).
``ARMCODEC_MALLOC_TUNE=0`` leaves the allocator alone.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30

_libc = None
_depth = 0


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux") and os.environ.get("ARMCODEC_MALLOC_TUNE", "1") != "0":
            try:
                libc = ctypes.CDLL("libc.so.6")
                if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
                    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                    _libc = libc
            except OSError:
                pass
    return _libc


@contextlib.contextmanager
def coding():
    """Around one encode or decode: the thresholds above (set once per process), and the memory
    freed while coding returned to the system afterwards (nested calls: at the outer one's end)."""
    global _depth
    libc = _glibc()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if libc and not _depth:
            libc.malloc_trim(0)


def release() -> None:
    """Return the memory freed so far to the system now (between the frames of a video, so what
    one frame freed is not kept while the next is coded: the peak stays that of one frame)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
