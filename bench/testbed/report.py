"""The side-by-side table (p2pchat | Serf | ratio) and the machine-readable result.

Rows are read from the result dictionaries of bench/testbed/run.py by a path of keys; a
figure one system lacks prints as "-". The ratio is p2pchat / Serf (below 1: p2pchat
is faster, lighter or quieter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# (label, path of keys into a system's result, unit, decimals)
ROWS: list[tuple[str, tuple[str, ...], str, int]] = [
    ("presence seen by 50% (median)", ("presence", "seen_by_50pct_s", "median"), "s", 3),
    ("presence seen by 99% (median)", ("presence", "seen_by_99pct_s", "median"), "s", 3),
    ("presence seen by 99% (p95)", ("presence", "seen_by_99pct_s", "p95"), "s", 3),
    ("presence seen by 100% (median)", ("presence", "seen_by_100pct_s", "median"), "s", 3),
    ("presence seen by 100% (p95)", ("presence", "seen_by_100pct_s", "p95"), "s", 3),
    ("  missed sightings", ("presence", "missed_sightings"), "", 0),
    ("  seen before the changer's answer", ("presence", "seen_before_answer"), "", 0),
    ("  CPU of all agents per change (median)",
     ("presence", "cpu_s_all_agents_per_change", "median"), "s", 3),
    ("  at 5% loss: seen by 100% (median)",
     ("loss", "0.05", "presence", "seen_by_100pct_s", "median"), "s", 3),
    ("  at 5% loss: seen by 100% (p95)",
     ("loss", "0.05", "presence", "seen_by_100pct_s", "p95"), "s", 3),
    ("silent host offline everywhere (median)",
     ("crash", "offline_everywhere_s", "median"), "s", 2),
    ("silent host offline at median node (median)",
     ("crash", "offline_at_median_observer_s", "median"), "s", 2),
    ("false offline marks (whole run)", ("false_offline_marks", "total"), "", 0),
    ("false offline marks (soak)", ("false_offline_marks", "soak"), "", 0),
    ("soak: bytes/s per node", ("soak", "out_bytes_per_s"), "B/s", 0),
    ("idle: bytes/s sent per node", ("idle", "out_bytes_per_s"), "B/s", 0),
    ("idle: packets/s sent per node", ("idle", "out_packets_per_s"), "/s", 1),
    ("churn 4/user/h: bytes/s per node", ("churn", "out_bytes_per_s"), "B/s", 0),
    ("churn 4/user/h: packets/s per node", ("churn", "out_packets_per_s"), "/s", 1),
    ("1% loss: bytes/s per node", ("loss", "0.01", "out_bytes_per_s"), "B/s", 0),
    ("5% loss: bytes/s per node", ("loss", "0.05", "out_bytes_per_s"), "B/s", 0),
    ("10% loss: bytes/s per node", ("loss", "0.1", "out_bytes_per_s"), "B/s", 0),
    ("10% loss: packets/s per node", ("loss", "0.1", "out_packets_per_s"), "/s", 1),
    ("RSS per node (mean)", ("idle", "rss_mib"), "MiB", 1),
    ("CPU per node, idle (mean)", ("idle", "cpu_percent"), "%", 2),
    ("cold start: all see all", ("cold_start", "all_see_all_s"), "s", 1),
    ("cold start: last agent up", ("cold_start", "last_agent_up_s"), "s", 1),
    ("cold start: all see all after last up",
     ("cold_start", "all_see_all_after_last_up_s"), "s", 1),
    ("cold start: bytes sent per node, first {window} s",
     ("cold_start", "bytes_per_node_first_window"), "B", 0),
]  # fmt: skip


def lookup(result: dict[str, Any] | None, path: Sequence[str]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def _cell(value: float | None, unit: str, decimals: int) -> str:
    return "-" if value is None else f"{value:,.{decimals}f} {unit}".rstrip()


def table(p2pchat: dict[str, Any] | None, serf: dict[str, Any] | None) -> list[str]:
    lines = [f"{'':44} {'p2pchat':>14} {'Serf':>14} {'ratio':>7}"]
    window = lookup(p2pchat, ("cold_start", "window_s")) or lookup(serf, ("cold_start", "window_s"))
    for label, path, unit, decimals in ROWS:
        label = label.format(window=f"{window or 0:g}")
        ours, theirs = lookup(p2pchat, path), lookup(serf, path)
        share = ratio(ours, theirs)
        lines.append(
            f"{label:44} {_cell(ours, unit, decimals):>14} {_cell(theirs, unit, decimals):>14} "
            f"{'-' if share is None else f'{share:.2f}':>7}"
        )
    return lines


def rooms_table(rooms: dict[str, Any]) -> list[str]:
    lines = [
        f"{'room (p2pchat)':16} {'all have it: median':>20} {'p95':>8} {'at 5% loss':>11} "
        f"{'bytes/member/msg':>17} {'frames':>7} {'x payload':>10} {'net of idle':>12} "
        f"{'warm-up':>8} {'CPU/msg':>8}"
    ]
    for size, room in rooms.items():
        if "failed" in room:
            lines.append(f"{size + ' members':16} failed after {room['failed_after_s']} s: "
                         f"{room['failed']}")  # fmt: skip
            continue
        everyone = room["all_members_s"]
        lines.append(
            f"{size + ' members':16} {_cell(everyone['median'], 's', 3):>20} "
            f"{_cell(everyone['p95'], 's', 3):>8} "
            f"{room['at_5pct_loss']['delivered_pct']:>10.1f}% "
            f"{room['bytes_per_member_per_message']:>15,.0f} B "
            f"{room['frames_per_member_per_message']:>7.1f} "
            f"{room['payload_multiple']:>9.1f}x {room['payload_multiple_net_of_idle']:>11.1f}x "
            f"{room['warmup']['payload_multiple_net_of_idle']:>7.1f}x "
            f"{_cell(room.get('cpu_s_all_members_per_message', {}).get('median'), 's', 3):>8}"
        )
    return lines


def ratios(p2pchat: dict[str, Any] | None, serf: dict[str, Any] | None) -> dict[str, float | None]:
    """Keyed by the figure's path in a system's result, e.g. ``idle.out_bytes_per_s``."""
    return {".".join(path): ratio(lookup(p2pchat, path), lookup(serf, path))
            for _, path, _, _ in ROWS}  # fmt: skip
