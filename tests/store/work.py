"""How much work a store call does, counted in SQLite virtual-machine instructions.

"Fast" asserted as a time fails on a busy machine; the work a query does is the same
on any machine, and it is what grows when a query stops using its index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from p2pchat.store import Store

T = TypeVar("T")

STEP = 100  # the progress handler runs once per this many instructions


def counting_instructions(store: Store, action: Callable[[], T]) -> tuple[T, int]:
    """``action()``'s result and about how many SQLite instructions it ran."""
    calls = 0

    def tick() -> int:
        nonlocal calls
        calls += 1
        return 0  # go on

    store._conn.set_progress_handler(tick, STEP)
    try:
        result = action()
    finally:
        store._conn.set_progress_handler(None, 0)
    return result, calls * STEP
