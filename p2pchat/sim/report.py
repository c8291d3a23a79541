"""The figures a simulated run yields, and how they are printed."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from p2pchat.sim.engine import SimSettings, Simulation
from p2pchat.sim.measure import percentile

if TYPE_CHECKING:
    from p2pchat.sim.phases import Load

NOT_PRINTED = frozenset({"change_spreads"})


@dataclass(slots=True)
class Report:
    nodes: int
    seed: int
    loss: float
    model: str = ""
    warmup_s: float = 0.0
    all_see_all_s: float | None = None  # from the start (0.5 s steps)
    first_window_wire_bytes_per_node: float | None = None  # tcp: sent in the first window
    join_s: float | None = None
    # Seconds until 50 / 99 / 100% of the other nodes hold a presence change: medians
    # over the run's changes (interpolated between arrivals, see measure.py), and the
    # 95th percentile of the 100% figure. converge_999_s is the median 99% figure's
    # old name, kept for scripts.
    converge_50_s: float | None = None
    converge_99_s: float | None = None
    converge_999_s: float | None = None
    converge_100_s: float | None = None
    converge_100_p95_s: float | None = None
    changes_incomplete: int = 0
    detect_median_s: float | None = None
    detect_max_s: float | None = None
    detect_median_node_s: float | None = None  # until half the others marked it offline
    heal_s: float | None = None
    false_suspicions: int = 0
    false_offline: int = 0
    msgs_per_node_s: float = 0.0
    bytes_per_node_s: float = 0.0
    idle_msgs_per_node_s: float = 0.0
    idle_bytes_per_node_s: float = 0.0
    active_view_mean: float = 0.0
    active_view_max: int = 0
    # The tcp model: frames and bytes each node puts on the wire (Ethernet frames with
    # every header, ACKs and set-up included) and its CPU, per node and second.
    idle_wire_packets_per_node_s: float = 0.0
    idle_wire_bytes_per_node_s: float = 0.0
    idle_cpu_percent: float = 0.0
    wire_packets_per_node_s: float = 0.0
    wire_bytes_per_node_s: float = 0.0
    cpu_percent: float = 0.0
    sessions_dialled_per_node: float = 0.0
    churn_changes: int = 0
    simulated_s: float = 0.0
    wall_s: float = 0.0
    change_spreads: list[tuple[float | None, ...]] = field(default_factory=list)


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


def model_name(settings: SimSettings) -> str:
    if settings.transport != "tcp":
        return "datagram"
    cores = "a core per node" if settings.cores is None else f"{settings.cores} shared cores"
    costs = "no CPU costs" if settings.costs.free else f"costs x{settings.costs.scale:g}"
    return f"tcp, {costs}, {cores}"


def record_idle(report: Report, load: Load) -> None:
    report.idle_msgs_per_node_s = load.msgs
    report.idle_bytes_per_node_s = load.bytes
    report.idle_wire_packets_per_node_s = load.wire_packets
    report.idle_wire_bytes_per_node_s = load.wire_bytes
    report.idle_cpu_percent = load.cpu_percent


def record_window(report: Report, load: Load, sim: Simulation) -> None:
    report.msgs_per_node_s = load.msgs
    report.bytes_per_node_s = load.bytes
    report.wire_packets_per_node_s = load.wire_packets
    report.wire_bytes_per_node_s = load.wire_bytes
    report.cpu_percent = load.cpu_percent
    if sim.transport is not None:
        report.sessions_dialled_per_node = round(sim.transport.dials / len(sim.nodes), 2)
    if sim.first_window_wire is not None:
        per_node = sim.first_window_wire[1] / max(sim.settings.nodes, 1)
        report.first_window_wire_bytes_per_node = round(per_node)


def record_spreads(report: Report, spreads: list[tuple[float | None, ...]]) -> None:
    """Medians over the changes of the seconds to 50/99/100% (complete changes only)."""
    report.change_spreads = spreads
    complete = [s for s in spreads if s[-1] is not None]
    report.changes_incomplete = len(spreads) - len(complete)

    def median_of(index: int) -> float | None:
        values = [v for s in spreads if (v := s[index]) is not None]
        return rounded(statistics.median(values)) if values else None

    report.converge_50_s = median_of(0)
    report.converge_99_s = report.converge_999_s = median_of(1)
    report.converge_100_s = median_of(2)
    report.converge_100_p95_s = rounded(
        percentile([v for s in complete if (v := s[2]) is not None], 0.95)
    )


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
    fields = {name: getattr(report, name) for name in Report.__slots__ if name not in NOT_PRINTED}
    if room is not None:
        fields.update({name: getattr(room, name) for name in RoomReport.__slots__})
    if as_json:
        return json.dumps(fields)
    width = max(len(name) for name in fields)
    return "\n".join(
        f"{name:<{width}}  {'-' if value is None else value}" for name, value in fields.items()
    )
