"""The simulator's CPU model (a busy node delays what comes next), its percentiles, and
the tcp model as the scenario runs it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from p2pchat.sim.__main__ import main
from p2pchat.sim.costs import CostTable, Linear
from p2pchat.sim.cpu import Processors
from p2pchat.sim.engine import SimSettings
from p2pchat.sim.measure import percentile, reached, spread
from p2pchat.sim.scenarios import simulate


def test_a_busy_node_queues_its_next_job() -> None:
    cpu = Processors(2)
    cpu.submit(0, "first")
    cpu.submit(0, "second")
    cpu.submit(1, "other")
    assert list(cpu.startable()) == [(0, "first"), (1, "other")]
    assert list(cpu.startable()) == []  # node 0 is busy with "first"
    cpu.done(0)
    assert list(cpu.startable()) == [(0, "second")]


def test_shared_cores_make_nodes_wait_for_each_other() -> None:
    cpu = Processors(3, cores=1)
    for node in range(3):
        cpu.submit(node, node)
    assert list(cpu.startable()) == [(0, 0)]
    cpu.done(0)
    assert list(cpu.startable()) == [(1, 1)]
    cpu.done(1)
    assert list(cpu.startable()) == [(2, 2)]


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([], 0.5) is None
    arrivals = [float(n) for n in range(1, 100)]  # 99 observers, one a second
    fifty, ninety_nine, everyone = spread(arrivals, 99)
    assert fifty == 50.0 and everyone == 99.0
    assert ninety_nine == pytest.approx(98.02)  # not the last arrival, as it used to be
    assert reached(arrivals[:-1], 99, 1.0) is None  # one never got it
    assert reached(arrivals[:-1], 99, 0.99) is None  # ...and 99% needs it in part
    assert reached(arrivals[:-1], 99, 0.98) == pytest.approx(97.04)


def slow(factor: float) -> CostTable:
    """Every message costs ``factor`` ms to handle."""
    return CostTable(handle={"*": Linear(factor / 1000)}, measured="test")


def test_a_slower_cpu_slows_the_spread_of_a_change() -> None:
    base = SimSettings(nodes=30, seed=2, transport="tcp", seconds=3, changes=3)
    free = simulate(base)
    busy = simulate(dataclasses.replace(base, costs=slow(5.0)))
    assert free.converge_100_s is not None and busy.converge_100_s is not None
    # Each hop now waits at least 5 ms for its node's CPU.
    assert busy.converge_100_s >= free.converge_100_s + 0.01
    assert busy.cpu_percent > free.cpu_percent == 0


def test_the_tcp_model_counts_every_frame_on_the_wire() -> None:
    report = simulate(SimSettings(nodes=20, seed=3, transport="tcp", seconds=10))
    # Each message sent is at least one frame with 66 bytes of headers, plus ACKs.
    assert report.wire_packets_per_node_s >= report.msgs_per_node_s > 0
    assert report.wire_bytes_per_node_s >= report.bytes_per_node_s + 66 * report.msgs_per_node_s
    assert report.sessions_dialled_per_node > 0


def test_loss_on_tcp_delays_but_loses_nothing() -> None:
    report = simulate(
        SimSettings(nodes=20, seed=4, transport="tcp", loss=0.2, seconds=5, changes=5)
    )
    assert report.changes_incomplete == 0
    assert report.false_offline == 0


def test_many_seeds_print_medians_and_p95(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--nodes", "12", "--seed", "5", "--seconds", "3", "--idle", "2", "--json"]
    assert main([*args, "--seeds", "3", "--changes", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seeds"] == [5, 6, 7] and result["changes"] == 6
    spread_all = result["converge_100_s"]
    assert spread_all["runs"] == 6 and spread_all["median"] <= spread_all["p95"]
    assert main([*args, "--latency-ms", "3,1"]) == 2
    assert main([*args, "--costs", "/nonexistent.json"]) == 2
