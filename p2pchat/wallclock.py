"""The wall clock as the chat and the store count it: milliseconds since the epoch.

Message times, expiries and retry deadlines that are stored or sent are wall-clock
milliseconds (trio's clock restarts with the process); the pure cores take them as
arguments, and this is where the services read them.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
