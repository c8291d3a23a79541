"""The private Tor network the onion transport is tested on (tests/tor/privnet.py):
made and started offline on 127.0.0.1, it carries a stream from one client through
Tor's SOCKS port (our SOCKS5 client) to another client's onion service and back."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pchat.net.socks5 import Socks5Error, open_via_socks5
from tests.tor.privnet import TorClient, TorNetwork

# Codes that say the service cannot be reached this way at all; any other refusal may
# be a descriptor not in the directories yet, or a circuit that failed (tor's network
# is minutes old here, on a busy machine): tried again until the deadline.
FINAL = {0xF4, 0xF5, 0xF6}


async def echo(stream: trio.SocketStream) -> None:
    async for data in stream:
        await stream.send_all(data)


async def dial_until_published(
    proxy: tuple[str, int], onion: str, deadline: float
) -> trio.SocketStream:
    """Dial ``onion`` until its descriptor has reached the directories (each try says
    why it failed; a failure past ``deadline`` is the test's)."""
    while True:
        try:
            return await open_via_socks5(proxy, onion, 7676, timeout=30)
        except Socks5Error as error:
            if error.code in FINAL or time.monotonic() > deadline:
                raise
            await trio.sleep(0.5)


def test_a_stream_reaches_an_onion_service_across_the_private_network(
    network: TorNetwork, tmp_path: Path
) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            target = ("127.0.0.1", listeners[0].socket.getsockname()[1])
            service = TorClient(network, tmp_path / "service", target=target, onion_port=7676)
            caller = TorClient(network, tmp_path / "caller")
            try:
                service.start()
                caller.start()
                await trio.to_thread.run_sync(service.wait_bootstrapped)
                await trio.to_thread.run_sync(caller.wait_bootstrapped)
                proxy = ("127.0.0.1", caller.socks_port)
                stream = await dial_until_published(proxy, service.onion, time.monotonic() + 120)
                async with stream:
                    for size in (1, 1000, 100_000):
                        sent = os.urandom(size)
                        await stream.send_all(sent)
                        got = b""
                        while len(got) < size:
                            got += await stream.receive_some()
                        assert got == sent
                # An onion address nobody publishes is refused with tor's reason.
                unknown = "a" * 56 + ".onion"
                with pytest.raises(Socks5Error) as refused:
                    await open_via_socks5(proxy, unknown, 7676, timeout=60)
                # Its checksum is wrong: tor refuses it as invalid without asking anyone.
                assert refused.value.code in {0xF0, 0xF6}, refused.value
            finally:
                service.stop()
                caller.stop()
            nursery.cancel_scope.cancel()

    trio.run(main)
