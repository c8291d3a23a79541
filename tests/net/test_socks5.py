"""The SOCKS5 client the onion transport dials Tor with (p2pchat/net/socks5.py): the
exchange fed whole and a byte at a time, every refusal in words, malformed replies
refused, and over loopback through a stub proxy that forwards to a real server."""

from __future__ import annotations

import ipaddress
from functools import partial

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.net.socks5 import REPLIES, Socks5Client, Socks5Error, open_via_socks5

ONION = "p2pchatxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxid.onion"


def reply(code: int = 0, bound: bytes = b"\x01\x7f\x00\x00\x01", port: int = 9) -> bytes:
    return bytes([5, code, 0]) + bound + port.to_bytes(2, "big")


def run(client: Socks5Client, answers: bytes, *, step: int | None = None) -> list[bytes]:
    """Feed the proxy's ``answers`` (in pieces of ``step``, or as much as wanted),
    returning what the client sent after its greeting."""
    sent = []
    data = memoryview(answers)
    while not client.done:
        take = client.wanted if step is None else min(step, client.wanted)
        piece, data = bytes(data[:take]), data[take:]
        if not piece:
            raise AssertionError("the client wants more than the proxy said")
        out = client.feed(piece)
        if out:
            sent.append(out)
    return sent


@pytest.mark.parametrize("step", [None, 1, 3])
def test_a_connect_to_an_onion_name_fed_whole_or_byte_by_byte(step: int | None) -> None:
    client = Socks5Client(ONION, 7676)
    assert client.greeting() == b"\x05\x01\x00"
    sent = run(client, b"\x05\x00" + reply(bound=b"\x03\x05tor.x", port=1), step=step)
    name = ONION.encode()
    assert sent == [b"\x05\x01\x00\x03" + bytes([len(name)]) + name + (7676).to_bytes(2, "big")]
    assert client.done and client.wanted == 0
    assert client.bound == ("tor.x", 1)


def test_ip_addresses_go_as_addresses_and_replies_of_each_type_are_read() -> None:
    v4, v6 = Socks5Client("198.18.0.7", 80), Socks5Client("2001:db8::1", 80)
    assert run(v4, b"\x05\x00" + reply())[0][3:8] == b"\x01\xc6\x12\x00\x07"
    bound6 = b"\x04" + ipaddress.ip_address("::1").packed
    assert run(v6, b"\x05\x00" + reply(bound=bound6, port=443))[0][3] == 4
    assert v6.bound == ("::1", 443)


@pytest.mark.parametrize("code", sorted(REPLIES))
def test_each_refusal_is_said_in_words(code: int) -> None:
    client = Socks5Client(ONION, 1)
    with pytest.raises(Socks5Error) as refused:
        run(client, b"\x05\x00" + reply(code))
    assert refused.value.code == code
    assert str(refused.value) == REPLIES[code]


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (b"\x04\x00", "does not speak SOCKS5"),
        (b"\x05\xff", "wants authentication"),
        (b"\x05\x02", "unknown method"),
        (b"\x05\x00\x05\x00\x01\x09\x00", "malformed"),  # reserved byte not zero
        (b"\x05\x00\x05\x00\x00\x07\x00", "unknown address type"),
        (b"\x05\x00\x05\x42\x00\x01\x00", "code 0x42"),
    ],
)
def test_a_broken_proxy_is_refused(answers: bytes, reason: str) -> None:
    client = Socks5Client(ONION, 1)
    with pytest.raises(Socks5Error, match=reason):
        run(client, answers)


def test_bytes_past_the_reply_are_never_taken() -> None:
    client = Socks5Client(ONION, 1)
    client.feed(b"\x05\x00")
    with pytest.raises(ValueError, match="wanted"):
        client.feed(reply() + b"stream bytes")


def test_names_and_ports_the_protocol_cannot_carry_are_refused_before_dialling() -> None:
    with pytest.raises(ValueError, match="256 bytes"):
        Socks5Client("a" * 256, 1)
    for port in (0, 65536):
        with pytest.raises(ValueError, match="out of range"):
            Socks5Client(ONION, port)


@given(st.binary(max_size=300))
def test_any_answer_ends_in_a_reply_a_refusal_or_a_wait(answers: bytes) -> None:
    client = Socks5Client(ONION, 1)
    data = answers
    try:
        while data and not client.done:
            take = client.wanted
            client.feed(data[:take])
            data = data[take:]
    except Socks5Error:
        return
    assert client.done or client.wanted > 0


# ---------------------------------------------------------------- over loopback


async def stub_proxy(
    listeners: list[trio.SocketListener], *, answer: int = 0, silent: bool = False
) -> None:
    """A SOCKS5 proxy on 127.0.0.1 that forwards CONNECTs to IPv4 targets (code 0), or
    refuses with ``answer``, or says nothing at all (``silent``)."""

    async def serve(client: trio.SocketStream) -> None:
        async with client:
            if silent:
                await trio.sleep_forever()
            assert await client.receive_some(3) == b"\x05\x01\x00"
            await client.send_all(b"\x05\x00")
            head = await client.receive_some(4)
            assert head[:3] == b"\x05\x01\x00" and head[3] == 1
            rest = b""
            while len(rest) < 6:
                rest += await client.receive_some(6 - len(rest))
            if answer:
                await client.send_all(reply(answer))
                return
            target = await trio.open_tcp_stream(str(ipaddress.ip_address(rest[:4])),
                                                int.from_bytes(rest[4:], "big"))  # fmt: skip
            async with target:
                await client.send_all(reply())
                async with trio.open_nursery() as pipes:
                    pipes.start_soon(pipe, client, target)
                    pipes.start_soon(pipe, target, client)

    await trio.serve_listeners(serve, listeners)


async def pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    async for data in source:
        await sink.send_all(data)
    await sink.send_eof()


async def echo_server(stream: trio.SocketStream) -> None:
    async for data in stream:
        await stream.send_all(data)


async def test_a_stream_through_a_proxy_carries_bytes_both_ways() -> None:
    async with trio.open_nursery() as nursery:
        echo = await nursery.start(partial(trio.serve_tcp, echo_server, 0, host="127.0.0.1"))
        proxies = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(stub_proxy, proxies)
        proxy = ("127.0.0.1", proxies[0].socket.getsockname()[1])
        stream = await open_via_socks5(proxy, "127.0.0.1", echo[0].socket.getsockname()[1],
                                       timeout=30)  # fmt: skip
        async with stream:
            await stream.send_all(b"hello through the proxy")
            got = b""
            while len(got) < 23:
                got += await stream.receive_some()
            assert got == b"hello through the proxy"
        nursery.cancel_scope.cancel()


async def test_a_refusal_through_a_real_connection_is_said() -> None:
    async with trio.open_nursery() as nursery:
        proxies = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(lambda: stub_proxy(proxies, answer=0xF0))
        proxy = ("127.0.0.1", proxies[0].socket.getsockname()[1])
        with pytest.raises(Socks5Error, match="not published now") as refused:
            await open_via_socks5(proxy, "127.0.0.1", 9, timeout=30)
        assert refused.value.code == 0xF0
        nursery.cancel_scope.cancel()


async def test_no_proxy_listening_is_said() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    with pytest.raises(Socks5Error, match="cannot reach the SOCKS proxy"):
        await open_via_socks5(("127.0.0.1", port), ONION, 1, timeout=30)


async def test_a_silent_proxy_times_out(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxies = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(lambda: stub_proxy(proxies, silent=True))
        proxy = ("127.0.0.1", proxies[0].socket.getsockname()[1])
        before = trio.current_time()
        with pytest.raises(Socks5Error, match="no answer through the proxy in 20 s"):
            await open_via_socks5(proxy, ONION, 1, timeout=20)
        assert trio.current_time() - before == pytest.approx(20, abs=0.5)
        nursery.cancel_scope.cancel()
