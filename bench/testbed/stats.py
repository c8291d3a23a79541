"""Percentiles and summaries of the testbed's timings (pure: no sockets, no clock).

The percentile rule is linear interpolation between closest ranks (Hyndman and Fan's
type 7, NumPy's default): the q-th percentile of n sorted values x[0..n-1] lies at rank
h = (n - 1) q, and is x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]). So the
99th percentile of 99 values is not simply the largest; the 100th is the largest. A
value that never came (a node that never saw a change) counts as infinity, and a
percentile that needs it is infinity: "not reached".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NEVER = math.inf


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th quantile (0 ≤ q ≤ 1) of ``values`` by linear interpolation."""
    if not values:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile lies in [0, 1], not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    if ordered[high] == NEVER:
        return NEVER if rank > low or ordered[low] == NEVER else ordered[low]
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def reach_times(delays: Sequence[float], fractions: Sequence[float]) -> list[float]:
    """For one change: how long until each fraction of the observers had it.

    ``delays`` has one entry per observer that should see the change (NEVER for one
    that did not); the time for fraction f is the f-th percentile of the delays."""
    return [percentile(delays, f) for f in fractions]


def median_p95(values: Sequence[float]) -> dict[str, float | int | None]:
    """Median and 95th percentile over many trials, as JSON-ready numbers (None for
    "not reached", so the result stays valid JSON)."""
    if not values:
        return {"n": 0, "median": None, "p95": None}
    return {
        "n": len(values),
        "median": finite_or_none(percentile(values, 0.5)),
        "p95": finite_or_none(percentile(values, 0.95)),
    }


def finite_or_none(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else value
