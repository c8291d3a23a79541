"""Memory measured with tracemalloc around a block, for the parser's bounds."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Traced:
    """Bytes traced since the block began: ``now()`` held now, ``peak()`` the most held
    at once, each over what was held when the block began."""

    before: int

    def now(self) -> int:
        return tracemalloc.get_traced_memory()[0] - self.before

    def peak(self) -> int:
        return tracemalloc.get_traced_memory()[1] - self.before


@contextmanager
def traced() -> Iterator[Traced]:
    """tracemalloc on for the block (left on if it already was), its peak reset."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        yield Traced(tracemalloc.get_traced_memory()[0])
    finally:
        if not tracing:
            tracemalloc.stop()
