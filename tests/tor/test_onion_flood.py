"""A flood of inbound onion connections, on the private Tor network: a stranger's own tor
opens, through ann's onion service, sockets that never say a word and sessions of fresh
identities, re-opening each as soon as ann drops it, for as long as the test lasts.

Every connection tor hands ann comes from 127.0.0.1, on the listener her onion service
leads to, so the bounds that apply are those of one address (docs/security.md): at
most 16 sessions of strangers through Tor at once, at most 32 handshakes waiting (the
oldest dropped first). What must hold meanwhile: dave, who was given an invite code,
redeems it through Tor and his messages arrive; carol, on the LAN, is served as if
nothing happened; ann keeps running, and logs a bounded number of lines about it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from p2pchat.addresses import parse_host_port
from p2pchat.net.slots import LinkLimits
from p2pchat.net.socks5 import Socks5Error, open_via_socks5
from tests.adversary.client import Peer, identity, open_session
from tests.adversary.wire import HandshakeFailed
from tests.discovery.nodes import Node
from tests.tor.privnet import TorClient, TorNetwork
from tests.tor.test_onion_chat import TOR_UP_WITHIN, daemon, onion_only

SILENT = 48  # more than the 32 handshakes one address may have waiting
STRANGERS = 40  # more than the 16 sessions of strangers one address may hold
MESSAGES = 5
STRANGER_SESSIONS = LinkLimits().max_links_per_address
LOG_LINES = 32  # what the flood may add to ann's log: one line per host and reason a minute


@dataclass
class Flood:
    silent_opened: int = 0
    sessions_opened: int = 0  # sessions ann answered a Ping on
    refused: int = 0
    census: int = -1  # sessions still answering once the attacker stopped opening any


async def flood(proxy: tuple[str, int], address: str, stop: threading.Event, result: Flood) -> None:
    """Until ``stop`` is set (by the test's thread); then the census: with no new session
    opened (so nobody is evicted any more), each held session pings ann once, and those
    she answers are the ones she holds. The attacker's own count runs ahead of hers
    while her Close of an evicted session crosses Tor."""
    host, port = parse_host_port(address)
    census = trio.Event()
    counted: list[bool] = []

    async def silent() -> None:
        while not stop.is_set():
            try:
                stream = await open_via_socks5(proxy, host, port, timeout=60)
            except Socks5Error:
                await trio.sleep(0.5)
                continue
            result.silent_opened += 1
            async with stream:
                try:
                    while await stream.receive_some(1024):
                        pass  # ann's answers to nothing: there are none
                except trio.BrokenResourceError:
                    pass

    opening = [0]  # sessions being opened: the census waits for them (each may evict)

    async def stranger() -> None:
        while not stop.is_set():
            opening[0] += 1
            try:
                peer = await admitted()
            finally:
                opening[0] -= 1
            if peer is None:
                result.refused += 1
                await trio.sleep(0.5)
            else:
                await hold(peer)

    async def admitted() -> Peer | None:
        """A session ann answered a Ping on, or None: refused (her Close came instead,
        or the connection broke)."""
        try:
            stream = await open_via_socks5(proxy, host, port, timeout=60)
            peer = await open_session(0, identity(), stream=stream)
        except (Socks5Error, HandshakeFailed, OSError):
            return None
        try:
            if await peer.round_trip():
                return peer
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await peer.aclose()
        return None

    async def hold(peer: Peer) -> None:
        result.sessions_opened += 1
        try:
            while not peer.closed and not census.is_set():
                with trio.move_on_after(0.5):
                    await peer.read()  # answers ann's Pings: a live session
            if census.is_set():
                counted.append(await peer.round_trip())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await peer.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(SILENT):
            nursery.start_soon(silent)
        async with trio.open_nursery() as strangers:
            for _ in range(STRANGERS):
                strangers.start_soon(stranger)
            while not stop.is_set() or opening[0]:
                await trio.sleep(0.2)
            census.set()  # the strangers' loops end with their sessions' answers
        result.census = sum(counted)
        nursery.cancel_scope.cancel()


@pytest.mark.timeout(600)  # its own guards wait for tor several times: a busy machine
def test_a_flood_through_tor_leaves_invited_contacts_and_the_lan_served(
    network: TorNetwork, tmp_path: Path
) -> None:
    torrc = tmp_path / "privnet.torrc"
    torrc.write_text(network.client_torrc())
    ann = daemon(tmp_path / "ann", torrc)
    dave = daemon(tmp_path / "dave", torrc)
    carol = Node(tmp_path / "carol", "--listen", "127.0.0.1:0", "--no-mdns", stdin=True)
    attacker = TorClient(network, tmp_path / "attacker")
    stop = threading.Event()
    result = Flood()
    try:
        carol.command({"cmd": "connect", "target": ann.address, "tag": "lan"})
        assert carol.wait_for("connect", tag="lan")["state"] == "verified"
        for one, other in ((ann, carol), (carol, ann)):
            one.command({"cmd": "add_contact", "id": other.id, "tag": "c"})
            one.wait_for("add_contact", tag="c")
        onion = str(ann.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)["address"])
        dave.wait_for("tor", state="on", timeout=TOR_UP_WITHIN)
        attacker.start()
        attacker.wait_bootstrapped()
        ann.command({"cmd": "invite", "tag": "code"})
        code = onion_only(ann.wait_for("invite", tag="code")["invite"])
        log_before = ann.log_path.read_text().count("\n")

        proxy = ("127.0.0.1", attacker.socks_port)
        attack = threading.Thread(target=trio.run, args=(flood, proxy, onion, stop, result))
        attack.start()
        try:
            wait_for_flood(result)
            dave.command({"cmd": "connect", "target": code, "tag": "in"})
            connected = dave.wait_for("connect", tag="in", timeout=TOR_UP_WITHIN)
            assert connected["state"] == "verified", connected.get("detail")
            for n in range(MESSAGES):
                dave.command({"cmd": "send", "to": ann.id, "text": f"dave {n}", "tag": f"d{n}"})
                carol.command({"cmd": "send", "to": ann.id, "text": f"carol {n}", "tag": f"c{n}"})
            for n in range(MESSAGES):
                ann.wait_for("message", text=f"dave {n}", timeout=TOR_UP_WITHIN)
                ann.wait_for("message", text=f"carol {n}", timeout=TOR_UP_WITHIN)
        finally:
            stop.set()
            attack.join(timeout=120)

        print(f"flood: {result}")  # the figures, for the closing note (pytest -s)
        assert ann.process.poll() is None, "ann died under the flood"
        assert result.silent_opened >= SILENT and result.sessions_opened >= STRANGER_SESSIONS, (
            f"the attack did not take hold: {result}"
        )
        assert 0 < result.census <= STRANGER_SESSIONS, result
        assert result.refused > 0, result  # strangers beyond the cap were turned away
        added = ann.log_path.read_text().count("\n") - log_before
        assert added <= LOG_LINES, f"{added} log lines"
    finally:
        attacker.stop()
        for node in (ann, dave, carol):
            node.stop()


def wait_for_flood(result: Flood) -> None:
    """Until the attack holds what it can (its tor builds circuits first)."""
    deadline = time.monotonic() + TOR_UP_WITHIN
    while result.silent_opened < SILENT or result.sessions_opened < STRANGER_SESSIONS:
        assert time.monotonic() < deadline, f"the attack did not take hold: {result}"
        time.sleep(0.2)
