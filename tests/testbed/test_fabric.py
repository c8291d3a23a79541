"""The switch's pure core: forwarding decision, frame scheduling, loss draw, faults, counters."""

from __future__ import annotations

import math
import random

import pytest

from bench.testbed.fabric import Fabric, LinkSettings, port_mac

BROADCAST = b"\xff" * 6
MDNS_GROUP = bytes.fromhex("01005e0000fb")


def frame(destination: bytes, source: int, payload: bytes = b"x" * 46) -> bytes:
    return destination + port_mac(source) + b"\x08\x00" + payload


class Wire:
    """Records what the fabric writes: (time, port, frame); refuses ports in ``full``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.written: list[tuple[float, int, bytes]] = []
        self.full: set[int] = set()

    def write(self, port: int, data: bytes) -> bool:
        if port in self.full:
            return False
        self.written.append((self.now, port, data))
        return True

    def ports(self) -> list[int]:
        return [port for _, port, _ in self.written]


def fabric(
    ports: int,
    wire: Wire,
    *,
    seed: int = 1,
    latency: float = 0.001,
    jitter: float = 0.0,
    loss: float = 0.0,
    reorder: bool = False,
) -> Fabric:
    link = LinkSettings(latency=latency, jitter=jitter, loss=loss, reorder=reorder)
    return Fabric(ports, wire.write, seed=seed, link=link)


def run(made: Fabric, wire: Wire, until: float) -> None:
    """Let the fake clock reach ``until``, delivering as the switch's timer would."""
    while (due := made.next_due()) is not None and due <= until:
        wire.now = due
        made.deliver_due(due)
    wire.now = until


def copies(made: Fabric) -> int:
    """How many copies the frames received so far made (one per unicast frame)."""
    return sum(
        rx - flooded + flooded * (made.ports - 1)
        for rx, flooded in zip(made.rx_frames, made.flooded_frames, strict=True)
    )


def undelivered(made: Fabric) -> int:
    return sum(made.lost_frames) + sum(made.blocked_frames) + sum(made.overflow_frames)


def test_unicast_goes_to_the_port_of_its_mac_and_group_addresses_are_flooded() -> None:
    made = fabric(4, Wire())
    assert made.destinations(0, frame(port_mac(2), 0)) == [2]
    assert made.destinations(3, frame(BROADCAST, 3)) == [0, 1, 2]
    assert made.destinations(1, frame(MDNS_GROUP, 1)) == [0, 2, 3]
    unknown = bytes.fromhex("020000000063")
    assert made.destinations(1, frame(unknown, 1)) == [0, 2, 3]


def test_with_no_latency_a_frame_is_written_while_it_is_received() -> None:
    wire = Wire()
    made = fabric(3, wire, latency=0.0)
    made.receive(5.0, 0, frame(port_mac(1), 0))
    made.receive(5.0, 2, frame(BROADCAST, 2))
    assert wire.ports() == [1, 0, 1]
    assert made.pending() == 0


def test_a_frame_arrives_exactly_one_latency_after_it_was_read() -> None:
    wire = Wire()
    made = fabric(2, wire, latency=0.004)
    made.receive(10.0, 0, frame(port_mac(1), 0))
    run(made, wire, 10.0039)
    assert wire.written == []
    run(made, wire, 10.01)
    assert [(when, port) for when, port, _ in wire.written] == [(10.004, 1)]


def test_jitter_spreads_the_delay_but_never_reorders_the_frames_of_a_link() -> None:
    wire = Wire()
    made = fabric(3, wire, latency=0.005, jitter=0.004)
    sent: dict[int, list[bytes]] = {1: [], 2: []}
    for number in range(400):
        destination = 1 + number % 2
        data = frame(port_mac(destination), 0, number.to_bytes(4, "big") + b"x" * 42)
        sent[destination].append(data)
        made.receive(number * 0.0005, 0, data)
    run(made, wire, 1.0)
    for destination, frames in sent.items():
        assert [data for _, port, data in wire.written if port == destination] == frames
    # The delays did spread, within latency +- jitter (the FIFO clamp only adds).
    delays = sorted(when - int.from_bytes(data[14:18], "big") * 0.0005
                    for when, _, data in wire.written)  # fmt: skip
    assert delays[0] >= 0.001 - 1e-9 and delays[-1] <= 0.009 + 1e-9
    assert delays[-1] - delays[0] > 0.004


def test_jitter_reorders_a_link_when_asked_to() -> None:
    wire = Wire()
    made = fabric(2, wire, latency=0.005, jitter=0.004, reorder=True)
    for number in range(200):
        made.receive(number * 0.0005, 0, frame(port_mac(1), 0, number.to_bytes(4, "big")))
    run(made, wire, 1.0)
    order = [int.from_bytes(data[14:18], "big") for _, _, data in wire.written]
    assert sorted(order) == list(range(200)) and order != sorted(order)


def test_loss_drops_its_share_of_copies_as_the_binomial_allows_and_the_seed_repeats_it() -> None:
    sent, loss = 10_000, 0.1

    def dropped(seed: int) -> list[int]:
        wire = Wire()
        made = fabric(2, wire, seed=seed, latency=0.0, loss=loss)
        for number in range(sent):
            made.receive(0.0, 0, frame(port_mac(1), 0, number.to_bytes(4, "big") + b"x" * 42))
        delivered = {int.from_bytes(data[14:18], "big") for _, _, data in wire.written}
        assert made.lost_frames[0] == sent - len(delivered)
        return sorted(set(range(sent)) - delivered)

    first = dropped(seed=7)
    spread = 5 * math.sqrt(sent * loss * (1 - loss))  # five standard deviations
    assert abs(len(first) - sent * loss) <= spread
    assert dropped(seed=7) == first
    assert dropped(seed=8) != first


def test_a_frozen_port_neither_sends_nor_receives_and_frames_in_flight_are_lost() -> None:
    wire = Wire()
    made = fabric(3, wire, latency=0.001)
    made.receive(0.0, 0, frame(port_mac(1), 0))  # in flight when 1 freezes
    made.freeze(1)
    made.receive(0.0, 1, frame(port_mac(0), 1))
    made.receive(0.0, 2, frame(port_mac(1), 2))
    made.receive(0.0, 2, frame(BROADCAST, 2))  # reaches 0 only
    run(made, wire, 0.01)
    assert wire.ports() == [0]
    assert made.blocked_frames == [1, 1, 2]
    made.freeze(1, frozen=False)
    made.receive(0.02, 0, frame(port_mac(1), 0))
    run(made, wire, 0.03)
    assert wire.ports() == [0, 1]


def test_a_partition_keeps_frames_inside_groups_and_unnamed_ports_form_one_more() -> None:
    wire = Wire()
    made = fabric(5, wire, latency=0.0)
    made.partition([[0, 1], [2]])  # 3 and 4 together in a third group
    made.receive(0.0, 0, frame(BROADCAST, 0))
    made.receive(0.0, 3, frame(port_mac(4), 3))
    made.receive(0.0, 2, frame(port_mac(0), 2))
    assert wire.ports() == [1, 4]
    made.heal()
    made.receive(0.0, 2, frame(port_mac(0), 2))
    assert wire.ports() == [1, 4, 0]
    with pytest.raises(ValueError, match="two groups"):
        made.partition([[0], [0, 1]])


def test_a_refused_write_counts_as_overflow_on_the_sending_port() -> None:
    wire = Wire()
    made = fabric(2, wire, latency=0.0)
    wire.full.add(1)
    made.receive(0.0, 0, frame(port_mac(1), 0))
    assert made.overflow_frames == [1, 0] and made.tx_frames == [0, 0]


def test_counters_add_up_whatever_happens_to_the_frames() -> None:
    wire = Wire()
    made = fabric(6, wire, seed=3, latency=0.002, jitter=0.001, loss=0.2)
    draw = random.Random(11)
    for step in range(3000):
        now = step * 0.0001
        if step == 1000:
            made.freeze(4)
        if step == 2000:
            made.partition([[0, 1, 2]])
        run(made, wire, now)
        source = draw.randrange(6)
        destination = BROADCAST if draw.random() < 0.1 else port_mac(draw.randrange(6))
        made.receive(now, source, frame(destination, source, b"y" * draw.randrange(46, 1500)))
    run(made, wire, 1.0)
    assert made.pending() == 0
    assert sum(made.tx_frames) == len(wire.written)
    assert sum(made.tx_bytes) == sum(len(data) for _, _, data in wire.written)
    assert sum(made.tx_frames) + undelivered(made) == copies(made)
    assert min(made.lost_frames) > 0 and made.blocked_frames[4] > 0
    rows = made.counters()
    assert [row[1] for row in rows] == made.rx_frames and len(rows[0]) == 8
