"""The testbed switch's own capacity, against a veth pair measured in the same run.

    python -m bench.testbed.capacity [--hosts 50] [--seconds 2]

For two hosts, once joined by a veth pair (the kernel's own wire: the baseline) and
once through the switch with 0 ms configured: TCP round trips of 64 bytes (median, so
the switch's added delay per frame is half the difference), small UDP frames per second
with 128 in flight, and a TCP bulk transfer (frames per second as the switch counts
them, data and ACKs). Then with 1 ms configured, how close a round trip comes to 2 ms
and how late the switch's timer delivered. Then ``--hosts`` hosts with half of them
sending bulk TCP to the other half at once (the switch's aggregate), how long the lab
takes to build and remove, and the switch's CPU while idle. The driver (this process)
runs both ends of every connection, so its own speed bounds the figures equally on
both sides of each ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import trio

from bench.testbed.kernel import in_netns
from bench.testbed.lab import Lab
from bench.testbed.netns import delete_namespaces, run_ip

PORT = 7100
ROUND_TRIPS = 2000
UDP_FRAMES = 50_000
WINDOW = 128
CHUNK = 1 << 16
SO_RCVBUFFORCE = 33  # Linux; not in the socket module

Maker = Callable[[int, int], socket.socket]  # (host index, socket kind) -> socket


@contextlib.asynccontextmanager
async def veth_pair() -> AsyncIterator[tuple[Maker, list[str]]]:
    """Two namespaces joined by a veth pair (no switch): the baseline."""
    names = [f"tb-{os.getpid()}-v{index}" for index in range(2)]
    addresses = ["198.19.250.1", "198.19.250.2"]
    try:
        run_ip(batch=[f"netns add {name}" for name in names])
        run_ip(
            "-n",
            names[0],
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            names[1],
        )
        for name, address in zip(names, addresses, strict=True):
            run_ip(
                "-n",
                name,
                batch=[
                    "link set dev lo up",
                    "link set dev eth0 up",
                    f"address add {address}/16 dev eth0",
                ],
            )

        def make(index: int, kind: int) -> socket.socket:
            return in_netns(names[index], lambda: socket.socket(socket.AF_INET, kind))

        yield make, addresses
    finally:
        delete_namespaces(names)


def lab_maker(lab: Lab) -> Maker:
    return lambda index, kind: lab.socket(lab.hosts[index], kind)


async def tcp_pair(
    make: Maker, addresses: list[str], a: int, b: int
) -> tuple[trio.SocketStream, trio.SocketStream]:
    listener = trio.socket.from_stdlib_socket(make(b, socket.SOCK_STREAM))
    await listener.bind((addresses[b], PORT + a))
    listener.listen()
    client = trio.socket.from_stdlib_socket(make(a, socket.SOCK_STREAM))
    await client.connect((addresses[b], PORT + a))
    server, _ = await listener.accept()
    listener.close()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return trio.SocketStream(client), trio.SocketStream(server)


async def round_trip_us(make: Maker, addresses: list[str]) -> float:
    """Median TCP round trip of 64 bytes, in microseconds."""
    client, server = await tcp_pair(make, addresses, 0, 1)
    message = b"r" * 64
    times = []

    async def echo() -> None:
        while data := await server.receive_some(CHUNK):
            await server.send_all(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        for _ in range(ROUND_TRIPS):
            started = time.perf_counter()
            await client.send_all(message)
            got = 0
            while got < len(message):
                got += len(await client.receive_some(CHUNK))
            times.append(time.perf_counter() - started)
        await client.aclose()
    await server.aclose()
    return statistics.median(times) * 1e6


async def udp_frames_per_second(make: Maker, addresses: list[str]) -> float:
    """64-byte datagrams one way with WINDOW in flight; the receiver paces the sender."""
    sender = trio.socket.from_stdlib_socket(make(0, socket.SOCK_DGRAM))
    receiver = trio.socket.from_stdlib_socket(make(1, socket.SOCK_DGRAM))
    receiver.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 22)
    await receiver.bind((addresses[1], PORT))
    await sender.connect((addresses[1], PORT))
    payload = b"u" * 64
    await sender.send(payload)  # ARP first, outside the timing
    await receiver.recv(100)
    started = time.perf_counter()
    for _ in range(WINDOW):
        await sender.send(payload)
    received = 0
    for sent in range(WINDOW, UDP_FRAMES + WINDOW):
        with trio.move_on_after(1):  # a frame lost somewhere must not stop the bench
            await receiver.recv(100)
            received += 1
        if sent < UDP_FRAMES:
            await sender.send(payload)
    elapsed = time.perf_counter() - started
    sender.close()
    receiver.close()
    if received < UDP_FRAMES:
        print(f"  ({UDP_FRAMES - received} of {UDP_FRAMES} datagrams lost)")
    return received / elapsed


async def bulk(make: Maker, addresses: list[str], pairs: int, seconds: float) -> float:
    """Bytes per second of ``pairs`` TCP transfers at once, host 2k to host 2k+1."""
    streams = [await tcp_pair(make, addresses, 2 * k, 2 * k + 1) for k in range(pairs)]
    received = 0
    chunk = b"b" * CHUNK

    async def send(stream: trio.SocketStream) -> None:
        while True:
            await stream.send_all(chunk)

    async def drain(stream: trio.SocketStream) -> None:
        nonlocal received
        while True:
            data = await stream.receive_some(CHUNK)  # not "+= len(await ...)": tasks interleave
            received += len(data)

    started = time.perf_counter()
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            for client, server in streams:
                nursery.start_soon(send, client)
                nursery.start_soon(drain, server)
    elapsed = time.perf_counter() - started
    for client, server in streams:
        await client.aclose()
        await server.aclose()
    return received / elapsed


async def switch_frames(lab: Lab) -> int:
    return sum(counter.rx_frames for counter in await lab.counters())


async def bulk_through(lab: Lab, pairs: int, seconds: float) -> tuple[str, float]:
    """Bulk TCP through the switch: bytes, frames and the switch's CPU per frame."""
    assert lab.switch_pid is not None
    addresses = [host.address for host in lab.hosts]
    frames_before, cpu_before = await switch_frames(lab), cpu_seconds(lab.switch_pid)
    started = time.perf_counter()
    through = await bulk(lab_maker(lab), addresses, pairs, seconds)
    elapsed = time.perf_counter() - started
    frames = await switch_frames(lab) - frames_before
    user, system = (
        after - before
        for after, before in zip(cpu_seconds(lab.switch_pid), cpu_before, strict=True)
    )
    per_frame = (user + system) / frames
    return (
        f"TCP bulk {through / 1e6:.0f} MB/s, {frames / elapsed:,.0f} frames/s through the "
        f"switch, which used {(user + system) / elapsed:.2f} of a core "
        f"({user / (user + system):.0%} in Python): {per_frame * 1e6:.1f} us per frame, "
        f"so at most ~{1 / per_frame:,.0f} frames/s per core"
    ), through


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def main(hosts: int, seconds: float) -> None:
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min average, {os.cpu_count()} cores)")
    async with veth_pair() as (make, addresses):
        base_rtt = await round_trip_us(make, addresses)
        base_udp = await udp_frames_per_second(make, addresses)
        base_bulk = await bulk(make, addresses, 1, seconds)
    print(
        f"veth pair (baseline): TCP round trip {base_rtt:.0f} us median; "
        f"UDP {base_udp:,.0f} frames/s; TCP bulk {base_bulk / 1e6:.0f} MB/s"
    )

    async with Lab(2, latency_ms=0) as lab:
        addresses = [host.address for host in lab.hosts]
        make = lab_maker(lab)
        rtt = await round_trip_us(make, addresses)
        udp = await udp_frames_per_second(make, addresses)
        text, through = await bulk_through(lab, 1, seconds)
        print(
            f"switch ({lab.switch_priority} priority), 0 ms: TCP round trip {rtt:.0f} us "
            f"median (x{rtt / base_rtt:.2f}; +{(rtt - base_rtt) / 2:.0f} us per frame one way); "
            f"UDP {udp:,.0f} frames/s (x{udp / base_udp:.2f}); {text} "
            f"(x{through / base_bulk:.2f} of the veth pair's bytes)"
        )
        await lab.set_link(latency_ms=1.0)
        rtt_1ms = await round_trip_us(make, addresses)
        stats = await lab.switch_stats()
        print(
            f"switch, 1 ms: TCP round trip {rtt_1ms:.0f} us median (2000 configured + "
            f"{rtt_1ms - 2000:.0f}); delayed frames delivered late by "
            f"{stats['mean_ms'] * 1000:.0f} us mean, {stats['worst_ms'] * 1000:.0f} us worst"
        )

    started = time.perf_counter()
    async with Lab(hosts, latency_ms=0) as lab:
        built = time.perf_counter() - started
        assert lab.switch_pid is not None
        idle_from = sum(cpu_seconds(lab.switch_pid))
        await trio.sleep(seconds)
        idle = (sum(cpu_seconds(lab.switch_pid)) - idle_from) / seconds
        text, _ = await bulk_through(lab, hosts // 2, seconds)
        closing = time.perf_counter()
    removed = time.perf_counter() - closing
    print(
        f"switch, {hosts} hosts ({hosts // 2} TCP transfers at once): built in {built:.2f} s, "
        f"removed in {removed:.2f} s; idle switch CPU {idle:.1%}; {text}"
    )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    trio.run(main, args.hosts, args.seconds)
