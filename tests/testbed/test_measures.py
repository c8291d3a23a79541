"""The testbed's pure parts: percentiles, Serf's log lines, the daemons' JSON lines,
/proc parsing, views, traffic rates, the side-by-side table, and the pipe reader (on a
plain pipe). No sockets."""

from __future__ import annotations

import math
import os
import random
import threading
import time
from types import SimpleNamespace

import pytest

from bench.testbed import presence, report
from bench.testbed.p2pchat_agents import parse_line, seed_addresses
from bench.testbed.pipes import PipeReader
from bench.testbed.procstat import cpu_seconds, rss_kib
from bench.testbed.rooms import room_sizes, sessions_opened
from bench.testbed.serf_agents import node_index
from bench.testbed.serf_log import SerfMemberEvent, parse_member_event
from bench.testbed.stats import NEVER, median_p95, percentile, reach_times
from bench.testbed.traffic import Snapshot, per_node_rates
from bench.testbed.views import View, delays, everyone_sees_everyone


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 100)]  # 1..99
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 1.0) == 99.0
    assert percentile(values, 0.99) == pytest.approx(98.02)  # not simply the largest
    assert percentile([3.0, 1.0], 0.25) == pytest.approx(1.5)
    assert percentile([7.0], 0.95) == 7.0


def test_a_sighting_that_never_came_makes_only_the_percentiles_that_need_it_infinite() -> None:
    seen = [0.1, 0.2, 0.3, NEVER]
    assert reach_times(seen, [0.5, 0.99, 1.0])[0] == pytest.approx(0.25)
    assert reach_times(seen, [0.5, 0.99, 1.0])[1:] == [NEVER, NEVER]
    assert percentile([0.1, NEVER], 0.0) == 0.1
    assert median_p95([1.0, 2.0, NEVER]) == {"n": 3, "median": 2.0, "p95": None}
    assert median_p95([]) == {"n": 0, "median": None, "p95": None}
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_serf_member_events_are_read_from_its_log_lines() -> None:
    assert parse_member_event(
        "    2026/12/02 07:08:43 [INFO] serf: EventMemberFailed: h2 198.19.0.3"
    ) == SerfMemberEvent("failed", "h2", "198.19.0.3")
    assert parse_member_event(
        "    2026/12/02 07:08:35 [INFO] serf: EventMemberUpdate: h1"
    ) == SerfMemberEvent("update", "h1", None)
    assert parse_member_event("2026/12/02 [INFO] serf: EventMemberJoin: h0 198.19.0.1") == (
        SerfMemberEvent("join", "h0", "198.19.0.1")
    )
    for other in (
        "    2026/12/02 07:08:44 [INFO] agent: Received event: member-failed",
        "    2026/12/02 07:08:39 [INFO] memberlist: Suspect h2 has failed, no acks received",
        "==> Serf agent running!",
    ):
        assert parse_member_event(other) is None
    assert node_index("h17") == 17
    assert node_index("web") is None


def test_daemon_lines_are_timed_by_the_daemon_stamp_else_by_arrival() -> None:
    line = b'{"event":"presence","id":"x","status":"away","at_us":1700000000123456}'
    at, event = parse_line(line, arrived=1800000000.0) or (0.0, {})
    assert at == pytest.approx(1700000000.123456) and event["status"] == "away"
    assert parse_line(b'{"event":"dropped","count":3}', arrived=5.0) == (
        5.0,
        {"event": "dropped", "count": 3},
    )
    assert parse_line(b"not json", arrived=5.0) is None
    assert parse_line(b"[1, 2]", arrived=5.0) is None


def test_proc_files_give_rss_and_cpu_time() -> None:
    status = "Name:\tpython3\nVmPeak:\t  50000 kB\nVmRSS:\t   40960 kB\nThreads:\t3\n"
    assert rss_kib(status) == 40960
    with pytest.raises(ValueError):
        rss_kib("Name:\tzombie\n")
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30  # utime, stime in ticks
    stat = "1234 (a (weird) name) " + " ".join(fields)
    assert cpu_seconds(stat) == pytest.approx(300 / _ticks())


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def test_a_view_is_complete_when_it_has_seen_every_other_agent() -> None:
    view = View(index=0)
    view.mark_online(10.0, 0)  # itself: not counted
    view.mark_online(11.0, 1)
    assert view.complete_at({0, 1, 2}) is None
    view.mark_online(12.0, 2)
    assert view.complete_at({0, 1, 2}) == 12.0
    assert view.complete_at({0, 1}) == 11.0  # agent 2 left the run (it crashed)
    view.mark_offline(13.0, 2)
    view.mark_online(14.0, 2)
    assert view.complete_at({0, 1, 2}) == 12.0  # the first time counts
    assert view.first_offline(2, since=12.5) == 13.0
    assert view.first_offline(2, since=13.5) is None
    other = View(index=1)
    assert not everyone_sees_everyone([view, other], {0, 1})
    other.mark_online(1.0, 0)
    assert everyone_sees_everyone([view, other], {0, 1})


def test_a_change_is_found_by_its_key_after_it_was_made() -> None:
    view = View(index=0)
    view.update(5.0, 1, "c1")
    view.update(6.0, 1, "c2")
    assert view.first_update(1, "c2", since=0.0) == 6.0
    assert view.first_update(1, None, since=5.5) == 6.0  # Serf's changes carry no key
    assert view.first_update(1, "c1", since=5.5) is None
    assert delays([6.5, None], start=6.0) == [0.5, math.inf]


class Port:
    def __init__(self, rx_bytes: int, rx_frames: int, tx_bytes: int, tx_frames: int) -> None:
        self.rx_bytes, self.rx_frames = rx_bytes, rx_frames
        self.tx_bytes, self.tx_frames = tx_bytes, tx_frames


class _AnsweredLate:
    """Three agents; the one after the changer is its neighbour and applies each change
    before the changer's answer is stamped (the changer was descheduled between writing
    the news into its socket and writing its answer); the third 0.1 s after."""

    name = "fake"

    def __init__(self) -> None:
        self.views = [View(index) for index in range(3)]

    async def change(self, index: int, serial: int) -> tuple[float, str | None]:
        key = f"c{serial}"
        issued = time.time()
        for view in self.views:
            if view.index != index:
                delay = -0.003 if view.index == (index + 1) % 3 else 0.1
                view.update(issued + 0.005 + delay, index, key)
        return issued + 0.005, key  # the answer's stamp

    def pids(self) -> list[int]:
        return [os.getpid()] * 3


async def test_a_neighbour_that_applied_a_change_before_the_changers_answer_saw_it() -> None:
    result = await presence.changes(
        _AnsweredLate(),  # type: ignore[arg-type]
        [0, 1, 2],
        2,
        random.Random(1),
        [0],
        timeout=2,
        gap=0,
    )
    assert result["missed_sightings"] == 0
    assert result["seen_before_answer"] == 2
    assert result["seen_by_50pct_s"]["median"] == pytest.approx(0.05, abs=0.01)
    assert result["seen_by_100pct_s"]["median"] == pytest.approx(0.1, abs=0.01)


def test_traffic_is_per_node_per_second_over_the_hosts_asked_for() -> None:
    first = Snapshot(100.0, [Port(0, 0, 0, 0), Port(0, 0, 0, 0), Port(0, 0, 0, 0)])
    last = Snapshot(110.0, [Port(1000, 10, 2000, 20), Port(3000, 30, 0, 0), Port(9, 9, 9, 9)])
    rates = per_node_rates(first, last, [0, 1])
    assert rates["out_bytes_per_s"] == 200.0  # (1000 + 3000) / 2 nodes / 10 s
    assert rates["out_packets_per_s"] == 2.0
    assert rates["in_bytes_per_s"] == 100.0


def test_the_table_shows_both_systems_and_their_ratio() -> None:
    ours = {"idle": {"out_bytes_per_s": 700.0}, "presence": {}}
    theirs = {"idle": {"out_bytes_per_s": 350.0}}
    line = next(row for row in report.table(ours, theirs) if row.startswith("idle: bytes"))
    assert "700 B/s" in line and "350 B/s" in line and line.endswith("2.00")
    assert report.lookup(ours, ("presence", "seen_by_50pct_s", "median")) is None
    assert report.ratios(ours, None)["idle.out_bytes_per_s"] is None


def test_the_room_table_shows_the_cpu_all_members_spent_per_message() -> None:
    room = {
        "all_members_s": {"median": 0.33, "p95": 0.41},
        "at_5pct_loss": {"delivered_pct": 100.0},
        "bytes_per_member_per_message": 1331.0,
        "frames_per_member_per_message": 7.0,
        "payload_multiple": 4.4,
        "payload_multiple_net_of_idle": 3.9,
        "warmup": {"payload_multiple_net_of_idle": 507.6},
        "cpu_s_all_members_per_message": {"n": 20, "median": 0.61, "p95": 0.7},
    }
    header, line = report.rooms_table({"200": room})
    assert header.endswith("CPU/msg")
    assert line.startswith("200 members") and line.endswith("0.610 s")
    del room["cpu_s_all_members_per_message"]  # a result from before the column
    assert report.rooms_table({"200": room})[1].endswith("-")


def test_sessions_opened_count_each_session_once_from_its_two_ends() -> None:
    ends = [[1.0, 2.0, 9.0], [1.0, 2.5], [2.0, 2.5]]  # three sessions by t = 3, one later
    agents = SimpleNamespace(daemons=[SimpleNamespace(sessions_up=times) for times in ends])
    assert sessions_opened(agents, [0, 1, 2], 0.0, 3.0) == 3  # type: ignore[arg-type]
    assert sessions_opened(agents, [0, 1, 2], 3.0, 10.0) == 1  # type: ignore[arg-type]


class Host:
    def __init__(self, index: int) -> None:
        self.index = index
        self.netns = f"ns{index}"
        self.address = f"198.19.0.{index + 1}"


def test_every_host_dials_the_first_three_but_itself() -> None:
    hosts = [Host(i) for i in range(5)]
    assert seed_addresses(hosts, 0, 7483) == ["198.19.0.2:7483", "198.19.0.3:7483"]
    assert seed_addresses(hosts, 4, 7483) == [
        "198.19.0.1:7483",
        "198.19.0.2:7483",
        "198.19.0.3:7483",
    ]
    assert room_sizes(3) == [3]
    assert room_sizes(50) == [20, 50]
    assert room_sizes(500) == [20, 200]


def test_the_pipe_reader_hands_on_whole_lines_with_their_arrival_time() -> None:
    got: list[tuple[bytes, float]] = []
    done = threading.Event()

    def handle(line: bytes, at: float) -> None:
        got.append((line, at))
        if line == b"last":
            done.set()

    reader = PipeReader()
    read_end, write_end = os.pipe()
    try:
        reader.add(read_end, handle)
        os.write(write_end, b'{"a":')
        os.write(write_end, b"1}\n\nsecond\nla")
        os.write(write_end, b"st")
        os.close(write_end)  # the end of the pipe delivers the unfinished line
        assert done.wait(timeout=30)
    finally:
        reader.close()
        os.close(read_end)
    assert [line for line, _ in got] == [b'{"a":1}', b"second", b"last"]
    assert all(at > 0 for _, at in got)
