"""The allocator tuning of p2pchat/allocator.py: block-sized buffers come from the
heap, not from mappings of their own (checked in a child process, so this test run's
own allocator is left as it is)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import ctypes, sys
from p2pchat.allocator import keep_freed_buffers

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mapped_while_held(size):
    before = libc.mallinfo2().hblks
    held = bytearray(size)
    return libc.mallinfo2().hblks - before

print(mapped_while_held(512 * 1024), keep_freed_buffers(), mapped_while_held(512 * 1024))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_block_sized_buffers_come_from_the_heap_once_tuned() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    if "mallinfo2" in result.stderr:
        pytest.skip("this C library has no mallinfo2 (not glibc 2.33 or later)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True", "0"]
