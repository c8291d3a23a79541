"""How the simulator turns times into figures: percentiles by linear interpolation,
and the spread of one presence change (seconds until 50/99/100% of the other nodes
hold it).

Interpolated, because an order statistic alone says little at these sizes: with 99
other nodes, "99.9% of them" rounds up to all 99 of them, so a 99.9% figure taken as
``arrivals[ceil(0.999 * others) - 1]`` is the 100% figure again. The rule is linear
interpolation between closest ranks (Hyndman and Fan's type 7, NumPy's default): the
q-quantile of n sorted values lies at rank (n - 1) q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SPREAD_FRACTIONS = (0.5, 0.99, 1.0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of ``values``, interpolated between neighbours (like
    numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def reached(arrivals: Sequence[float], others: int, fraction: float) -> float | None:
    """Seconds until ``fraction`` of ``others`` nodes held the news: the
    ``fraction``-quantile of their delays, a node that never got it counting as never
    (the rule of bench/testbed/stats.py, so both print the same figure). None if the
    quantile needs a node that never got it."""
    if others <= 0 or not arrivals:
        return None
    delays = sorted(arrivals)[:others] + [math.inf] * max(0, others - len(arrivals))
    position = fraction * (others - 1)
    low = math.floor(position)
    high = min(low + 1, others - 1)
    if delays[low] == math.inf or (position > low and delays[high] == math.inf):
        return None
    if position == low:
        return delays[low]
    return delays[low] + (delays[high] - delays[low]) * (position - low)


def spread(arrivals: Sequence[float], others: int) -> tuple[float | None, ...]:
    """Seconds to 50, 99 and 100% of the other nodes."""
    return tuple(reached(arrivals, others, q) for q in SPREAD_FRACTIONS)
