"""One scenario over many seeds: every figure as its median and 95th percentile over
the runs, and the spread of presence changes over every change of every run (the
testbed's figures are medians and p95 over changes, too)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from p2pchat.sim.engine import SimSettings
from p2pchat.sim.measure import SPREAD_FRACTIONS, percentile
from p2pchat.sim.report import NOT_PRINTED, Report, RoomReport, rounded
from p2pchat.sim.scenarios import simulate_all

# Figures that are not summed up as median/p95 over runs.
LABELS = ("nodes", "seed", "loss", "model")
SPREADS = ("converge_50_s", "converge_99_s", "converge_100_s")


def simulate_seeds(settings: SimSettings, seeds: int) -> list[tuple[Report, RoomReport | None]]:
    """The scenario with seeds ``settings.seed``, ``settings.seed + 1``, ..."""
    return [
        simulate_all(dataclasses.replace(settings, seed=settings.seed + k)) for k in range(seeds)
    ]


def summary(runs: list[tuple[Report, RoomReport | None]]) -> dict[str, Any]:
    """``{figure: {"median": m, "p95": p, "runs": n}}`` (n: runs that had the figure),
    the labels of the first run as they are, and the spreads pooled over changes."""
    first, first_room = runs[0]
    result: dict[str, Any] = {name: getattr(first, name) for name in LABELS}
    result["seeds"] = [report.seed for report, _ in runs]
    names = [n for n in Report.__slots__ if n not in LABELS and n not in NOT_PRINTED]
    rows: list[tuple[str, list[Any]]] = [(n, [getattr(r, n) for r, _ in runs]) for n in names]
    if first_room is not None:
        rows += [
            (n, [getattr(room, n) for _, room in runs if room is not None])
            for n in RoomReport.__slots__
        ]
    pooled = [spread for report, _ in runs for spread in report.change_spreads]
    for name, values in rows:
        if name in SPREADS:
            index = SPREADS.index(name)
            values = [spread[index] for spread in pooled]
        numbers = [float(v) for v in values if v is not None]
        result[name] = {
            "median": rounded(percentile(numbers, 0.5)),
            "p95": rounded(percentile(numbers, 0.95)),
            "runs": len(numbers),
        }
    result["changes"] = len(pooled)
    result["spread_fractions"] = list(SPREAD_FRACTIONS)
    return result


def printed_summary(result: dict[str, Any], *, as_json: bool) -> str:
    if as_json:
        return json.dumps(result)
    width = max(len(name) for name in result)
    lines = [f"{'figure':<{width}}  {'median':>10}  {'p95':>10}  n"]
    for name, value in result.items():
        if isinstance(value, dict):

            def show(x: float | None) -> str:
                return "-" if x is None else f"{x:g}"

            lines.append(
                f"{name:<{width}}  {show(value['median']):>10}  {show(value['p95']):>10}"
                f"  {value['runs']}"
            )
        else:
            lines.append(f"{name:<{width}}  {value}")
    return "\n".join(lines)
