"""An onion dial through our tor (net/transports.py): a circuit that failed on the way
is tried again, within the onion timeout and a few tries; a service that is not
published is not (an offline contact would cost a lookup a second). Against a stub
SOCKS5 proxy on 127.0.0.1 that answers each connection with the next code of a list."""

from __future__ import annotations

import pytest
import trio

from p2pchat.net.socks5 import Socks5Error
from p2pchat.net.transports import ONION_TIMEOUT, ONION_TRIES, PATIENT_TRIES, NoTor, Transports
from p2pchat.tor.onion import onion_address
from tests.net.test_socks5 import reply

ONION = onion_address(bytes(32))  # a valid v3 address: its checksum is checked first


async def scripted_proxy(
    listeners: list[trio.SocketListener], codes: list[int], asked: list[str]
) -> None:
    """Answers the n-th CONNECT with ``codes[n]`` (0: success, then echo)."""

    async def serve(client: trio.SocketStream) -> None:
        async with client:
            assert await client.receive_some(3) == b"\x05\x01\x00"
            await client.send_all(b"\x05\x00")
            head = await receive_exactly(client, 5)
            assert head[:4] == b"\x05\x01\x00\x03"  # a name, never an address
            name = await receive_exactly(client, head[4] + 2)
            asked.append(name[:-2].decode())
            code = codes[min(len(asked), len(codes)) - 1]
            await client.send_all(reply(code))
            if code == 0:
                async for data in client:
                    await client.send_all(data)

    await trio.serve_listeners(serve, listeners)


async def receive_exactly(stream: trio.SocketStream, count: int) -> bytes:
    got = b""
    while len(got) < count:
        got += await stream.receive_some(count - len(got))
    return got


async def dial(
    codes: list[int], *, patient: bool = False
) -> tuple[trio.abc.Stream | Socks5Error, list[str]]:
    asked: list[str] = []
    transports = Transports()
    async with trio.open_nursery() as nursery:
        proxies = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(scripted_proxy, proxies, codes, asked)
        transports.tor_socks = ("127.0.0.1", proxies[0].socket.getsockname()[1])
        outcome: trio.abc.Stream | Socks5Error
        try:
            outcome = await transports.open(ONION, 7676, patient=patient)
        except Socks5Error as error:
            outcome = error
        else:
            async with outcome:
                await outcome.send_all(b"ping")
                assert await receive_exactly(outcome, 4) == b"ping"  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
    return outcome, asked


@pytest.mark.parametrize("failure", [0x01, 0x06, 0xF2, 0xF3, 0xF7])
async def test_a_circuit_that_failed_is_tried_again(failure: int) -> None:
    outcome, asked = await dial([failure, 0])
    assert not isinstance(outcome, Socks5Error), outcome
    assert asked == [ONION, ONION]


@pytest.mark.parametrize("final", [0xF0, 0xF4, 0xF5, 0xF6, 0x05])
async def test_a_service_away_or_refusing_is_said_at_once(final: int) -> None:
    outcome, asked = await dial([final, 0])
    assert isinstance(outcome, Socks5Error) and outcome.code == final
    assert len(asked) == 1


async def test_tries_are_few() -> None:
    outcome, asked = await dial([0xF2] * 10)
    assert isinstance(outcome, Socks5Error) and outcome.code == 0xF2
    assert len(asked) == ONION_TRIES


async def test_without_tor_an_onion_address_is_refused_with_advice() -> None:
    with pytest.raises(NoTor, match="--tor"):
        await Transports().open(ONION, 7676)


async def test_an_invite_codes_dial_waits_for_a_service_published_a_moment_ago(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Its maker is online: "not published" then means not in every directory yet."""
    began = trio.current_time()
    outcome, asked = await dial([0xF0, 0xF0, 0xF0, 0], patient=True)
    assert not isinstance(outcome, Socks5Error), outcome
    assert len(asked) == 4
    assert 1 + 2 + 4 <= trio.current_time() - began < ONION_TIMEOUT  # 1, 2, 4 s apart


async def test_a_patient_dial_gives_up_within_the_onion_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    began = trio.current_time()
    outcome, asked = await dial([0xF0] * 20, patient=True)
    assert isinstance(outcome, Socks5Error) and outcome.code == 0xF0
    assert len(asked) <= PATIENT_TRIES
    assert trio.current_time() - began < ONION_TIMEOUT


async def test_the_first_bytes_go_with_the_request_before_the_reply_on_every_try() -> None:
    """Message 1 rides with the CONNECT request (tor delivers it with the stream: the
    onion service's node never sees a silent handshake), and again with each try."""
    early: list[bytes] = []
    first = b"handshake message 1"

    async def serve(client: trio.SocketStream) -> None:
        async with client:
            assert await client.receive_some(3) == b"\x05\x01\x00"
            await client.send_all(b"\x05\x00")
            head = await receive_exactly(client, 5)
            await receive_exactly(client, head[4] + 2)
            # Before any reply: the client cannot be waiting for one to send these.
            with trio.fail_after(30):  # a guard: they are already in the socket
                early.append(await receive_exactly(client, len(first)))
            if len(early) == 1:
                await client.send_all(reply(0x06))  # a circuit failed: tried again
                return
            await client.send_all(reply(0))
            async for data in client:
                await client.send_all(data)

    transports = Transports()
    async with trio.open_nursery() as nursery:
        proxies = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, serve, proxies)
        transports.tor_socks = ("127.0.0.1", proxies[0].socket.getsockname()[1])
        stream = await transports.open(ONION, 7676, first=first)
        async with stream:
            await stream.send_all(b"more")
            assert await receive_exactly(stream, 4) == b"more"  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
    assert early == [first, first]
