"""Session benchmarks: handshakes, bulk throughput, small-message rate, idle memory.

Each figure is printed next to a baseline measured in the same run (the machines are
noisy): the `noiseprotocol` package for handshakes, raw trio TCP and raw libsodium
ChaCha20-Poly1305 for throughput. Run:  python bench/session.py [--quick]
Sender and receiver of the throughput runs are separate processes (one core each),
as two real peers would be.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import nacl.bindings
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from noise.connection import Keypair, NoiseConnection

from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.net.handshakes import HandshakeLimits
from p2pchat.net.server import (
    listener_addresses,
    open_secure_connection,
    serve_secure,
)
from p2pchat.noise import HandshakeState
from p2pchat.session import SessionConfig
from p2pchat.wire.framing import FrameDecoder, encode_frame
from p2pchat.wire.messages import wire_message

XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
RECEIVER_LIMIT_S = 300


@wire_message(60_100)
@dataclass(frozen=True, slots=True)
class BenchData:
    """A bench-only application message (ids 60000+ are reserved for tests)."""

    TYPE_ID: ClassVar[int]
    data: bytes = b""
    last: bool = False


# ------------------------------------------------------------------ handshakes


class _Ours:
    def __init__(self, initiator: bool) -> None:
        self.hs = HandshakeState(XX, initiator=initiator, s=os.urandom(32))

    def write(self) -> bytes:
        return self.hs.write_message(b"")

    def read(self, message: memoryview) -> None:
        self.hs.read_message(bytes(message))


class _Theirs:
    def __init__(self, initiator: bool) -> None:
        self.conn = NoiseConnection.from_name(XX.encode())
        if initiator:
            self.conn.set_as_initiator()
        else:
            self.conn.set_as_responder()
        self.conn.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
        self.conn.start_handshake()

    def write(self) -> bytes:
        return bytes(self.conn.write_message(b""))

    def read(self, message: memoryview) -> None:
        self.conn.read_message(bytes(message))


async def _recv_frame(stream: trio.SocketStream, decoder: FrameDecoder) -> memoryview:
    while (frame := decoder.next_frame()) is None:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError
        decoder.feed(data)
    return frame


async def bare_xx_over_tcp(engine: type[_Ours] | type[_Theirs], count: int) -> list[float]:
    """Latency of a bare XX handshake (no payloads) over loopback TCP, both ends here."""
    latencies: list[float] = []

    async def responder(stream: trio.SocketStream) -> None:
        decoder = FrameDecoder()
        side = engine(False)
        side.read(await _recv_frame(stream, decoder))
        await stream.send_all(encode_frame(side.write()))
        side.read(await _recv_frame(stream, decoder))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, responder, 0, host="127.0.0.1"))
        port = listener_addresses(listeners)[0][1]
        for _ in range(count):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            start = time.perf_counter()
            decoder = FrameDecoder()
            side = engine(True)
            await stream.send_all(encode_frame(side.write()))
            side.read(await _recv_frame(stream, decoder))
            await stream.send_all(encode_frame(side.write()))
            latencies.append(time.perf_counter() - start)
            await stream.aclose()
        nursery.cancel_scope.cancel()
    return latencies


async def full_session_handshakes(count: int) -> list[float]:
    """A complete p2pchat handshake (identity payloads, signatures) over loopback."""
    server_identity, client_identity = Identity.generate(), Identity.generate()
    latencies: list[float] = []

    async def handler(connection: SecureConnection) -> None:
        return

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve_secure(
                handler, server_identity, host="127.0.0.1", port=0, task_status=task_status
            )
        )
        port = listener_addresses(listeners)[0][1]
        for _ in range(count):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            from p2pchat.net.connection import secure_connection

            start = time.perf_counter()
            async with secure_connection(stream, client_identity, initiator=True):
                latencies.append(time.perf_counter() - start)
        nursery.cancel_scope.cancel()
    return latencies


# ------------------------------------------------------------------ throughput


def raw_aead_rate(size: int, seconds: float) -> float:
    """Bytes/s of raw libsodium ChaCha20-Poly1305 on one core (encrypt only)."""
    key, message = os.urandom(32), os.urandom(size)
    encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
    done, start = 0, time.perf_counter()
    nonce = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(64):
            encrypt(message, None, nonce.to_bytes(12, "little"), key)
            nonce += 1
        done += 64
    return done * size / elapsed


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=300)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def _receiver_raw(port_file: str) -> None:
    done = trio.Event()
    result: dict[str, float] = {}

    async def handle(stream: trio.SocketStream) -> None:
        total, start = 0, 0.0
        while data := await stream.receive_some(1 << 18):
            if not start:
                start = time.perf_counter()
            total += len(data)
        result.update(bytes=total, seconds=time.perf_counter() - start)
        done.set()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        Path(port_file).write_text(str(listener_addresses(listeners)[0][1]))
        with trio.move_on_after(RECEIVER_LIMIT_S):  # never outlive a failed sender
            await done.wait()
        nursery.cancel_scope.cancel()
    print(json.dumps(result))


async def _receiver_secure(port_file: str) -> None:
    done = trio.Event()
    result: dict[str, float] = {}

    async def handle(connection: SecureConnection) -> None:
        total, count, start = 0, 0, 0.0
        async for message in connection:
            if not start:
                start = time.perf_counter()
            total += len(message.data)
            count += 1
            if message.last:
                break
        result.update(bytes=total, messages=count, seconds=time.perf_counter() - start)
        done.set()

    config = ConnectionConfig()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve_secure(
                handle,
                Identity.generate(),
                host="127.0.0.1",
                port=0,
                config=config,
                task_status=task_status,
            )
        )
        Path(port_file).write_text(str(listener_addresses(listeners)[0][1]))
        with trio.move_on_after(RECEIVER_LIMIT_S):  # never outlive a failed sender
            await done.wait()
        nursery.cancel_scope.cancel()
    print(json.dumps(result))


def _wait_port(port_file: Path) -> int:
    for _ in range(500):
        if port_file.exists() and port_file.read_text():
            port = int(port_file.read_text())
            port_file.unlink()  # the next run of the same kind writes a fresh one
            return port
        time.sleep(0.01)
    raise RuntimeError("receiver did not start")


def raw_tcp_rate(size: int, total_bytes: int, tmp: Path) -> float:
    port_file = tmp / "raw.port"
    receiver = _spawn("--receiver-raw", str(port_file))
    port = _wait_port(port_file)

    async def send() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        chunk = os.urandom(size)
        for _ in range(total_bytes // size):
            await stream.send_all(chunk)
        await stream.aclose()

    trio.run(send)
    result = _result(receiver)
    return float(result["bytes"] / result["seconds"])


def secure_rate(
    size: int, count: int, tmp: Path, name: str, padded: bool = True
) -> dict[str, float]:
    """``padded``: the sender offers padding/1 (the receiver always does), as our
    nodes do; False measures the same without it."""
    port_file = tmp / f"{name}.port"
    receiver = _spawn("--receiver-secure", str(port_file))
    port = _wait_port(port_file)
    features = SessionConfig().features if padded else frozenset()
    config = ConnectionConfig(session=SessionConfig(features=features))

    async def send() -> None:
        async with open_secure_connection(
            "127.0.0.1", port, Identity.generate(), config=config
        ) as conn:
            message = BenchData(os.urandom(size))
            for _ in range(count - 1):
                await conn.send(message)
            await conn.send(BenchData(os.urandom(size), last=True))
            with trio.fail_after(120):
                while conn.pending_bytes:
                    await trio.sleep(0.001)

    trio.run(send)
    result = _result(receiver)
    return {
        "bytes_per_s": result["bytes"] / result["seconds"],
        "messages_per_s": result["messages"] / result["seconds"],
    }


# ------------------------------------------------------------------ idle memory


async def idle_memory(sessions: int, tmp: Path) -> dict[str, float]:
    port_file = tmp / "idle.port"
    server = _spawn("--idle-server", str(port_file))
    port = _wait_port(port_file)
    identity = Identity.generate()
    _ = identity.static_key_signature  # cache outside the measurement
    connected = 0
    tracemalloc.start()
    before_py = tracemalloc.get_traced_memory()[0]
    before_rss = _rss_bytes()
    try:
        async with trio.open_nursery() as nursery:
            ready = trio.Event()

            async def hold() -> None:
                nonlocal connected
                async with open_secure_connection("127.0.0.1", port, identity):
                    connected += 1
                    if connected == sessions:
                        ready.set()
                    await trio.sleep_forever()

            for _ in range(sessions):
                nursery.start_soon(hold)
            await ready.wait()
            await trio.sleep(0.5)
            after_py = tracemalloc.get_traced_memory()[0]
            after_rss = _rss_bytes()
            nursery.cancel_scope.cancel()
    finally:
        tracemalloc.stop()
        server.kill()
        server.wait()
    return {
        "python_heap_per_session": (after_py - before_py) / sessions,
        "rss_per_session": (after_rss - before_rss) / sessions,
    }


async def _idle_server(port_file: str) -> None:
    async def handler(connection: SecureConnection) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve_secure(
                handler,
                Identity.generate(),
                host="127.0.0.1",
                port=0,
                handshake_limits=HandshakeLimits(2000, 2000),
                task_status=task_status,
            )
        )
        Path(port_file).write_text(str(listener_addresses(listeners)[0][1]))
        await trio.sleep_forever()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--only", choices=["handshake", "throughput", "small", "memory"], help="one section"
    )
    parser.add_argument("--receiver-raw")
    parser.add_argument("--receiver-secure")
    parser.add_argument("--idle-server")
    args = parser.parse_args()
    if args.receiver_raw:
        trio.run(_receiver_raw, args.receiver_raw)
        return
    if args.receiver_secure:
        trio.run(_receiver_secure, args.receiver_secure)
        return
    if args.idle_server:
        trio.run(_idle_server, args.idle_server)
        return

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-"))
    reps = 300 if args.quick else 2000
    print(
        f"p2pchat session benchmark ({'quick' if args.quick else 'full'}), "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )

    if args.only in (None, "handshake"):
        bench_handshakes(reps)
    if args.only in (None, "throughput"):
        bench_throughput(args.quick, tmp)
    if args.only in (None, "small"):
        bench_small(args.quick, tmp)
    if args.only in (None, "memory"):
        bench_memory(tmp)


def bench_handshakes(reps: int) -> None:
    ours = trio.run(bare_xx_over_tcp, _Ours, reps)
    theirs = trio.run(bare_xx_over_tcp, _Theirs, reps)
    full = trio.run(full_session_handshakes, reps)
    m_ours, m_theirs, m_full = (statistics.median(x) * 1000 for x in (ours, theirs, full))
    print(
        f"handshake XX bare, loopback TCP: ours median {m_ours:.3f} ms "
        f"({1000 / m_ours:.0f}/s), noiseprotocol median {m_theirs:.3f} ms "
        f"({1000 / m_theirs:.0f}/s), ratio theirs/ours {m_theirs / m_ours:.2f}x"
    )
    print(
        f"handshake p2pchat full session (identity, signatures), loopback TCP: "
        f"median {m_full:.3f} ms, p99 {sorted(full)[int(len(full) * 0.99)] * 1000:.3f} ms, "
        f"{1000 / m_full:.0f}/s sequential"
    )


def bench_throughput(quick: bool, tmp: Path, rounds: int = 3) -> None:
    """Best of ``rounds`` interleaved runs of each: noise on a shared VM only slows
    things down, so the best run is the closest to what the code can do."""
    size = 64 * 1024
    total = (256 if quick else 512) * 1024 * 1024
    aead, tcp, ours = [], [], []
    for round_number in range(rounds):
        aead.append(raw_aead_rate(size, 1.0))
        tcp.append(raw_tcp_rate(size, total, tmp))
        ours.append(secure_rate(size, total // size, tmp, f"bulk{round_number}")["bytes_per_s"])
    best_aead, best_tcp, best_ours = max(aead), max(tcp), max(ours)
    print(
        f"throughput 64 KiB messages (best of {rounds}): p2pchat {best_ours / 1e6:.0f} MB/s, "
        f"raw trio TCP {best_tcp / 1e6:.0f} MB/s (ratio {best_ours / best_tcp:.2f}), "
        f"raw AEAD one core {best_aead / 1e6:.0f} MB/s (ratio {best_ours / best_aead:.2f}); "
        f"medians {statistics.median(ours) / 1e6:.0f} / {statistics.median(tcp) / 1e6:.0f} / "
        f"{statistics.median(aead) / 1e6:.0f} MB/s"
    )


def bench_small(quick: bool, tmp: Path) -> None:
    small_count = 200_000 if quick else 1_000_000
    small = secure_rate(100, small_count, tmp, "small")
    plain = secure_rate(100, small_count, tmp, "small-unpadded", padded=False)
    rate, unpadded = small["messages_per_s"], plain["messages_per_s"]
    print(
        f"small messages: {rate:.0f} 100-byte messages/s one way on one connection "
        f"({small_count} messages), padded (padding/1); without padding {unpadded:.0f}/s "
        f"(ratio {rate / unpadded:.2f})"
    )
    bench_padding()


# Chat-like sizes of one message alone in a transport message (a reply typed and sent):
# what padding adds when nothing else shares the plaintext.
PADDING_SIZES = (40, 60, 90, 140, 200, 320, 500, 800, 1300, 2100, 3400, 4100)


def bench_padding(rounds: int = 20_000) -> None:
    """The cost of padding one message per plaintext, in process: bytes on the wire and
    the time to cut and encrypt a plaintext (records.py and ChaCha20-Poly1305), padded
    and not, over PADDING_SIZES."""
    from p2pchat.noise.crypto import TAG_BYTES, encrypt_in_place
    from p2pchat.session.records import RecordWriter

    key = os.urandom(32)
    results = {}
    for pad in (False, True):
        writer = RecordWriter()
        writer.pad = pad
        wire = 0
        start = time.perf_counter()
        for n in range(rounds):
            writer.push(b"m" * PADDING_SIZES[n % len(PADDING_SIZES)])
            buffer, [size] = writer.pop_plaintexts(1, 0, TAG_BYTES)
            encrypt_in_place(key, n, b"", buffer, 0, size)
            wire += size + TAG_BYTES + 2
        results[pad] = (wire, time.perf_counter() - start)
    (plain_bytes, plain_s), (padded_bytes, padded_s) = results[False], results[True]
    print(
        f"padding, one message per transport message ({len(PADDING_SIZES)} chat-like sizes "
        f"40-4100 bytes, {rounds} messages): {padded_bytes / plain_bytes - 1:+.1%} bytes on "
        f"the wire, {padded_s / rounds * 1e6:.2f} us per message to cut and encrypt against "
        f"{plain_s / rounds * 1e6:.2f} us unpadded (ratio {padded_s / plain_s:.2f})"
    )


def bench_memory(tmp: Path) -> None:
    memory = trio.run(idle_memory, 1000, tmp)
    print(
        f"idle sessions: 1000 held, {memory['python_heap_per_session'] / 1024:.1f} KiB "
        f"Python heap each, {memory['rss_per_session'] / 1024:.1f} KiB RSS each "
        f"(client side; kernel socket buffers not included)"
    )


if __name__ == "__main__":
    main()
