"""How the C allocator treats the large buffers a file transfer goes through.

Every block of a file (256 KiB) is read, framed, encrypted, decrypted and joined in
fresh buffers. glibc serves a request that large with a mapping of its own, or from the
top of the heap that it gives back to the kernel as soon as it is free, so each new
buffer costs a page fault and a page cleared for every 4 KiB of it: on the machine of
docs/performance.md ("Files"), about 5 % of a transfer's CPU. Raising both thresholds
keeps such buffers in the heap and lets a few MiB of freed heap wait for the next
block (the window of a transfer is 8 MiB), for a resident size a few MiB higher.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20  # requests this large still get a mapping of their own
TRIM_THRESHOLD = 8 << 20  # free heap kept at its top before it is given back


def keep_freed_buffers() -> bool:
    """Tune glibc's malloc for this process as above; False where there is no glibc
    (other C libraries and systems keep their own defaults)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
