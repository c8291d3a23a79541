"""Our own tor (p2pchat/tor/process.py) on the private Tor network: started with a
private folder, reached on its control port, bootstrapped, an onion service published
with a key of ours and reached through another tor's SOCKS port; and what a person is
told when tor is missing or fails."""

from __future__ import annotations

import os
import shutil
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pchat.tor.control import Reply, TorControlError
from p2pchat.tor.onion import onion_address, tor_key
from p2pchat.tor.process import TorError, TorSettings, run_tor
from tests.tor.privnet import TorNetwork
from tests.tor.test_privnet import dial_until_published, echo


async def uploaded(control_events: trio.MemoryReceiveChannel[Reply], service: str) -> None:
    async for event in control_events:
        words = event.lines[0].split()
        if words[:3] == ["HS_DESC", "UPLOADED", service]:
            return


def test_our_tor_publishes_an_onion_service_that_another_reaches(
    network: TorNetwork,
    tmp_path: Path,
) -> None:
    async def main() -> None:
        settings = TorSettings(tmp_path, extra=network.client_torrc())
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            target = ("127.0.0.1", listeners[0].socket.getsockname()[1])
            async with (run_tor(tmp_path / "ann", settings) as ann,
                        run_tor(tmp_path / "bob", settings) as bob):  # fmt: skip
                assert ann.socks[0] == "127.0.0.1" and ann.socks != bob.socks
                await ann.wait_bootstrapped(120)
                await bob.wait_bootstrapped(120)
                await ann.control.command("SETEVENTS HS_DESC")
                started = time.monotonic()
                seed = os.urandom(32)
                service = await ann.control.add_onion(tor_key(seed), 7676, target)
                assert f"{service}.onion" == onion_address(seed), "tor agrees on our address"
                with trio.fail_after(60):
                    await uploaded(ann.control.events, service)
                published = time.monotonic() - started
                stream = await dial_until_published(bob.socks, f"{service}.onion",
                                                    time.monotonic() + 120)  # fmt: skip
                async with stream:
                    await stream.send_all(b"hello onion")
                    got = b""
                    while len(got) < 11:
                        got += await stream.receive_some()
                    assert got == b"hello onion"
                print(f"onion service published in {published:.2f} s")
                # Tor refuses what it cannot do, in its words.
                with pytest.raises(TorControlError, match="ADD_ONION"):
                    await ann.control.add_onion("ED25519-V3:not-a-key", 1, target)
                process = ann.process
            assert process.returncode is not None, "our tor stops with us"
            nursery.cancel_scope.cancel()

    trio.run(main)


async def test_a_missing_tor_is_said_with_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(TorError, match="apt install tor"):
        async with run_tor(tmp_path, TorSettings(tmp_path, executable="no-such-tor")):
            pass


async def test_a_tor_that_cannot_start_says_why(tmp_path: Path) -> None:
    if shutil.which("tor") is None:
        # CI installs tor, so there a missing one is a failure (as for the other labs).
        if os.environ.get("P2PCHAT_LAB_REQUIRED") == "1":
            pytest.fail("needs tor (Debian package tor)")
        pytest.skip("needs tor (Debian package tor)")
    settings = TorSettings(tmp_path / "tor", extra="NoSuchOption 1")
    with pytest.raises(TorError, match=r"tor stopped at start: .*NoSuchOption"):
        async with run_tor(tmp_path / "tor", settings):
            pass
