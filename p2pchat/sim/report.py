"""The figures a simulated run yields, and how they are printed."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

from p2pchat.sim.engine import Simulation


@dataclass(slots=True)
class Report:
    nodes: int
    seed: int
    loss: float
    warmup_s: float = 0.0
    join_s: float | None = None
    converge_999_s: float | None = None
    converge_100_s: float | None = None
    detect_median_s: float | None = None
    detect_max_s: float | None = None
    heal_s: float | None = None
    false_suspicions: int = 0
    false_offline: int = 0
    msgs_per_node_s: float = 0.0
    bytes_per_node_s: float = 0.0
    idle_msgs_per_node_s: float = 0.0
    idle_bytes_per_node_s: float = 0.0
    active_view_mean: float = 0.0
    active_view_max: int = 0
    simulated_s: float = 0.0
    wall_s: float = 0.0


@dataclass(slots=True)
class RoomReport:
    room_members: int
    room_online: int = 0
    room_degree_mean: float = 0.0
    room_delivery_100_s: float | None = None  # median over the measured messages
    room_delivery_max_s: float | None = None
    room_incomplete: int = 0  # measured messages some online member never got
    room_redundancy: float | None = None
    room_control_msgs_per_member: float = 0.0  # IHave, Graft, Prune, Digest per message
    flood_delivery_100_s: float | None = None
    flood_delivery_max_s: float | None = None
    flood_incomplete: int = 0
    flood_redundancy: float | None = None


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def room_figures(
    sim: Simulation, topic: bytes, sent: list[tuple[bytes, float]], online: int
) -> tuple[float | None, float | None, int, float | None]:
    """Median and max time to reach every online member, misses, redundancy."""
    times: list[float] = []
    incomplete = 0
    payloads = reached = 0
    for msg_id, at in sent:
        deliveries = sim.room_deliveries.get((topic, msg_id), [])
        payloads += sim.room_payload_sends.get((topic, msg_id), 0)
        reached += max(0, len(deliveries) - 1)  # the origin is not reached by a send
        if len(deliveries) >= online:
            times.append(max(deliveries) - at)
        else:
            incomplete += 1
    median = statistics.median(times) if times else None
    worst = max(times) if times and not incomplete else None
    redundancy = payloads / reached - 1 if reached else None
    return rounded(median), rounded(worst), incomplete, rounded(redundancy)


def printed(report: Report, room: RoomReport | None, *, as_json: bool) -> str:
    """One JSON object, or one aligned ``name  value`` line per figure."""
    fields = {name: getattr(report, name) for name in Report.__slots__}
    if room is not None:
        fields.update({name: getattr(room, name) for name in RoomReport.__slots__})
    if as_json:
        return json.dumps(fields)
    width = max(len(name) for name in fields)
    return "\n".join(
        f"{name:<{width}}  {'-' if value is None else value}" for name, value in fields.items()
    )
