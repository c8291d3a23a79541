"""The testbed's network with real namespaces: TCP through the switch, latency, loss,
freeze, partitions, counters, and the lab's own cleanup."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
from collections.abc import Callable

import pytest
import trio

from bench.testbed.lab import Host, Lab, PortCounters
from bench.testbed.netns import lab_links, lab_namespaces, running

# Labs share the machine's namespace list: tests that leave leftovers on purpose
# (test_cleanup.py) must not run while another worker opens a lab.
pytestmark = [pytest.mark.xdist_group("testbed"), pytest.mark.usefixtures("testbed")]

PORT = 7000


async def udp(lab: Lab, host: Host) -> trio.socket.SocketType:
    sock = trio.socket.from_stdlib_socket(lab.socket(host, socket.SOCK_DGRAM))
    await sock.bind((host.address, PORT))
    return sock


async def counters_when(
    lab: Lab, ready: Callable[[list[PortCounters]], bool]
) -> list[PortCounters]:
    """The switch's counters once ``ready`` holds for them (polled: the switch is another
    process and tells nobody when a frame passes)."""
    while not ready(counters := await lab.counters()):
        await trio.sleep(0.005)
    return counters


async def sent_at_least(lab: Lab, host: Host, frames: int) -> None:
    """Until the switch has read ``frames`` frames from ``host`` in all."""
    await counters_when(lab, lambda counts: counts[host.index].rx_frames >= frames)


def kernel_counts(host: Host) -> tuple[int, int, int, int]:
    """eth0's own statistics in the host: sent bytes, sent frames, received bytes, frames."""
    shown = subprocess.run(["ip", "-n", host.netns, "-j", "-s", "link", "show", "dev", "eth0"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    stats = json.loads(shown)[0]["stats64"]
    return (stats["tx"]["bytes"], stats["tx"]["packets"],
            stats["rx"]["bytes"], stats["rx"]["packets"])  # fmt: skip


async def warm(sender: trio.socket.SocketType, receiver: trio.socket.SocketType, to: Host) -> None:
    """One datagram across, so that the path works before the test's own frames."""
    await sender.sendto(b"warm", (to.address, PORT))
    assert await receiver.recv(100) == b"warm"


async def test_tcp_between_hosts_crosses_the_switch_and_its_counts_match_the_kernels() -> None:
    async with Lab(3, latency_ms=0.5, static_arp=False) as lab:  # ARP broadcasts: floods
        ann, bob, _ = lab.hosts
        server = trio.socket.from_stdlib_socket(lab.socket(bob))
        await server.bind((bob.address, PORT))
        server.listen()
        client = trio.socket.from_stdlib_socket(lab.socket(ann))
        await client.connect((bob.address, PORT))
        accepted, peer = await server.accept()
        assert peer[0] == ann.address
        payload = os.urandom(200_000)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.SocketStream(client).send_all, payload)
            received = b""
            while len(received) < len(payload):
                received += await accepted.recv(65536)
        assert received == payload
        for sock in (client, accepted, server):
            sock.close()

        def settled(counts: list[PortCounters]) -> bool:
            kernel = [kernel_counts(host) for host in lab.hosts]
            return all(
                (c.rx_bytes, c.rx_frames, c.tx_bytes, c.tx_frames) == k
                for c, k in zip(counts, kernel, strict=True)
            )

        # Each host's eth0 counts what it sent and got; the switch counted the same frames.
        counts = await counters_when(lab, settled)
        assert await lab.queue_drops() == [0, 0, 0]
        assert counts[0].rx_bytes > len(payload) and counts[1].tx_bytes > len(payload)
        assert counts[2].rx_frames == 0 and counts[2].tx_frames >= 1  # only ARP broadcasts
        assert sum(c.lost_frames + c.blocked_frames + c.overflow_frames for c in counts) == 0
        flood = sum(c.flooded_frames for c in counts)
        unicast = sum(c.rx_frames for c in counts) - flood
        assert sum(c.tx_frames for c in counts) == unicast + flood * 2


async def test_every_frame_waits_the_configured_latency_each_way() -> None:
    async with Lab(2, latency_ms=15) as lab:
        ann, bob = lab.hosts
        ann_socket, bob_socket = await udp(lab, ann), await udp(lab, bob)
        await warm(ann_socket, bob_socket, bob)
        for _ in range(3):
            started = trio.current_time()
            await ann_socket.sendto(b"ping", (bob.address, PORT))
            await bob_socket.sendto(await bob_socket.recv(100), (ann.address, PORT))
            assert await ann_socket.recv(100) == b"ping"
            # A lower bound only: a busy machine can make it longer, never shorter.
            assert trio.current_time() - started >= 2 * 0.015
        stats = await lab.switch_stats()
        assert stats["pending"] == 0 and stats["delivered"] == 1 + 3 * 2  # warm-up, pings
        # With static ARP (the default) nothing needed flooding: every frame had one port.
        assert [c.flooded_frames for c in await lab.counters()] == [0, 0]


async def test_configured_loss_drops_its_binomial_share_of_frames() -> None:
    sent, loss = 2000, 0.25
    async with Lab(2, latency_ms=0, seed=5) as lab:
        ann, bob = lab.hosts
        ann_socket, bob_socket = await udp(lab, ann), await udp(lab, bob)
        await warm(ann_socket, bob_socket, bob)
        before = await lab.counters()
        await lab.set_link(loss=loss)
        for batch in range(0, sent, 100):  # in batches: never overrun the TAP's queue
            for _ in range(100):
                await ann_socket.sendto(b"d" * 64, (bob.address, PORT))
            await sent_at_least(lab, ann, before[0].rx_frames + batch + 100)
        after = await lab.counters()
        frames = after[0].rx_frames - before[0].rx_frames
        lost = after[0].lost_frames - before[0].lost_frames
        assert lost + (after[1].tx_frames - before[1].tx_frames) == frames
        spread = 5 * math.sqrt(frames * loss * (1 - loss))  # five standard deviations
        assert abs(lost - frames * loss) <= spread


async def test_a_frozen_host_is_silent_both_ways_until_thawed() -> None:
    async with Lab(2, latency_ms=1) as lab:
        ann, bob = lab.hosts
        ann_socket, bob_socket = await udp(lab, ann), await udp(lab, bob)
        await warm(ann_socket, bob_socket, bob)
        await warm(bob_socket, ann_socket, ann)
        await lab.freeze(bob)
        before = await lab.counters()
        for _ in range(10):
            await ann_socket.sendto(b"lost", (bob.address, PORT))
            await bob_socket.sendto(b"lost", (ann.address, PORT))

        def all_blocked(counts: list[PortCounters]) -> bool:
            return all(counts[i].blocked_frames - before[i].blocked_frames >= 10 for i in (0, 1))

        after = await counters_when(lab, all_blocked)
        assert [c.tx_frames for c in after] == [c.tx_frames for c in before]
        await lab.thaw(bob)
        await ann_socket.sendto(b"back", (bob.address, PORT))
        assert await bob_socket.recv(100) == b"back"  # nothing of the frozen time before it


async def test_a_partition_keeps_frames_inside_groups_until_healed() -> None:
    async with Lab(3, latency_ms=0.5) as lab:
        ann, bob, cy = lab.hosts
        sockets = [await udp(lab, host) for host in lab.hosts]
        for sender, receiver in ((0, 1), (1, 2), (2, 0)):
            await warm(sockets[sender], sockets[receiver], lab.hosts[receiver])
        await lab.partition([[ann], [bob, cy]])
        before = await lab.counters()
        await sockets[0].sendto(b"across", (bob.address, PORT))
        await sockets[2].sendto(b"across", (ann.address, PORT))
        await sockets[1].sendto(b"inside", (cy.address, PORT))
        assert await sockets[2].recv(100) == b"inside"
        await counters_when(lab, lambda c: c[0].blocked_frames > before[0].blocked_frames
                            and c[2].blocked_frames > before[2].blocked_frames)  # fmt: skip
        await lab.heal()
        await sockets[0].sendto(b"healed", (bob.address, PORT))
        assert await sockets[1].recv(100) == b"healed"


async def test_frames_the_switch_could_not_read_in_time_show_as_queue_drops() -> None:
    async with Lab(2, latency_ms=0) as lab:
        ann, bob = lab.hosts
        sender = lab.socket(ann, socket.SOCK_DGRAM)
        sender.connect((bob.address, PORT))
        assert lab.switch_pid is not None
        os.kill(lab.switch_pid, signal.SIGSTOP)  # an overloaded switch, at the extreme
        try:
            for _ in range(3000):  # more than the TAP's queue holds
                sender.send(b"q" * 64)
        finally:
            os.kill(lab.switch_pid, signal.SIGCONT)
        sender.close()
        drops = await lab.queue_drops()
        assert drops[0] > 0 and drops[1] == 0
        await sent_at_least(lab, ann, 3000 - drops[0])
        assert (await lab.counters())[0].rx_frames == 3000 - drops[0]


async def test_the_lab_removes_what_it_made_on_exit_and_on_error() -> None:
    for fail in (False, True):
        lab = Lab(2)
        with pytest.raises(ZeroDivisionError) if fail else contextlib.nullcontext():
            async with lab:
                assert len([n for n in lab_namespaces() if n.startswith(lab.prefix)]) == 2
                assert [n for n in lab_links() if n.startswith(lab.prefix)] == []  # moved
                switch = lab.switch_pid
                assert switch is not None and running(switch)
                if fail:
                    1 / 0  # noqa: B018
        assert [n for n in lab_namespaces() if n.startswith(lab.prefix)] == []
        assert not running(switch)
