"""How a dial reaches an address: straight over TCP, or, for an onion address, through
our own tor's SOCKS port (docs/protocol.md §19). One object per node, shared by every
connection it makes (it sits in the node's ConnectionConfig): the onion side comes on
when the node's tor is up, and goes off with it."""

from __future__ import annotations

import trio

from p2pchat.net.socks5 import Socks5Error, open_via_socks5
from p2pchat.tor.onion import is_onion, parse_onion

DIRECT_TIMEOUT = 10.0  # s for a TCP connection on the LAN or the internet
# s for a stream to an onion service: tor fetches its descriptor and meets it at a
# rendezvous point, which takes a few seconds on the Tor network.
ONION_TIMEOUT = 60.0
# Refusals that say a circuit failed on the way, not that the service is away: tried
# again at once (a fresh circuit), within ONION_TIMEOUT, at most ONION_TRIES times in
# all. "Not published" (0xF0) is not among them: an offline contact would cost a
# directory lookup a second; node/remote.py tries it again minutes later instead.
TRANSIENT = frozenset({1, 6, 0xF2, 0xF3, 0xF7})
ONION_TRIES = 3
# A dial that is *patient* (an invite code's: its maker is online, but its onion service
# may have been published a moment ago, and not every directory has it yet) also tries
# again after "not published", waiting 1, 2, 4 … s in between, within ONION_TIMEOUT.
NOT_PUBLISHED = 0xF0
PATIENT_TRIES = 6


class NoTor(ConnectionError):
    """An onion address, and no tor of ours to reach it through."""


class Transports:
    def __init__(self) -> None:
        self.tor_socks: tuple[str, int] | None = None  # our tor's SOCKS port, once it runs

    @staticmethod
    def kind(host: str) -> str:
        """``onion`` or ``direct``: how an address is reached (what the UI shows)."""
        return "onion" if is_onion(host) else "direct"

    async def open(
        self, host: str, port: int, *, patient: bool = False, first: bytes = b""
    ) -> trio.abc.Stream:
        """A stream to ``host:port``; OSError (ConnectionError) saying why not.
        ``patient``: an onion service that is not published yet is asked again.
        ``first``: the bytes to send first (sent again on each try: the other end of a
        failed one never had them); through Tor, they go with the request (socks5.py)."""
        if not is_onion(host):
            with trio.fail_after(DIRECT_TIMEOUT):
                stream = await trio.open_tcp_stream(host, port)
            if first:
                try:
                    await stream.send_all(first)
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
            return stream
        try:
            parse_onion(host)
        except ValueError as error:
            raise ConnectionError(f"{host}: {error}") from None
        if self.tor_socks is None:
            raise NoTor(f"{host} is reached through Tor, and Tor is off: start p2pchat with --tor")
        deadline = trio.current_time() + ONION_TIMEOUT
        tries = PATIENT_TRIES if patient else ONION_TRIES
        pause = 0.5
        for attempt in range(1, tries + 1):
            left = deadline - trio.current_time()
            try:
                return await open_via_socks5(self.tor_socks, host, port, timeout=left, first=first)
            except Socks5Error as error:
                waiting = patient and error.code == NOT_PUBLISHED
                if (error.code not in TRANSIENT and not waiting) or attempt == tries:
                    raise
                if waiting:
                    pause *= 2
                    if deadline - trio.current_time() < pause + 1:
                        raise
                    await trio.sleep(pause)
                elif deadline - trio.current_time() < 1:
                    raise
        raise AssertionError("unreachable")
