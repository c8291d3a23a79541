"""Turning a discovered record into a verified peer: a handshake must prove its id."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import trio

from p2pchat.addresses import format_host_port
from p2pchat.discovery.records import DiscoveredPeer
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig, SecureConnection
from p2pchat.net.server import open_secure_connection
from p2pchat.session.core import Authorizer

log = logging.getLogger("p2pchat.discovery")

VERIFY_TIMEOUT = 5.0
STAGGER = 0.25  # s an address has to answer before the next one is tried beside it


class Verdict(enum.Enum):
    VERIFIED = "verified"
    SPOOFED = "spoofed"  # someone else answered at the announced address
    UNREACHABLE = "unreachable"
    REFUSED = "refused"  # the id is proven, but it will not talk to us (its policy)


# Refusals by a peer's policy: it is there and proved who it is, but will not talk.
POLICY_CODES = frozenset({"contacts-only", "not-authorized"})


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: Verdict
    address: str | None
    detail: str
    code: str = ""  # the refusal's code (REFUSED)


async def verify_peer(
    peer: DiscoveredPeer,
    identity: Identity,
    authorize: Authorizer | None = None,
    *,
    config: ConnectionConfig | None = None,
) -> Verification:
    """Handshake with the announced addresses, expecting the announced id;
    ``authorize``: our own policy (a blocked identity is not verified).

    A record names every address its node has, some of which we may not reach (its
    other network, where a packet vanishes): the addresses are tried in their order,
    the next one starting when the last failed or after :data:`STAGGER` seconds
    without an answer, and the first handshake that settles anything wins."""
    failures: list[str] = []
    settled: list[Verification] = []

    async def attempt(host: str, over: trio.Event) -> None:
        try:
            outcome = await _handshake(peer, host, identity, authorize, config)
        finally:
            over.set()
        if isinstance(outcome, str):
            failures.append(outcome)
        elif not settled:
            settled.append(outcome)
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for host in peer.addresses:
            over = trio.Event()
            nursery.start_soon(attempt, host, over)
            with trio.move_on_after(STAGGER):
                await over.wait()
    if settled:
        return settled[0]
    detail = "; ".join(failures) or "no address"
    log.debug("could not verify %s: %s", peer.peer_id, detail)
    return Verification(Verdict.UNREACHABLE, None, detail)


async def _handshake(
    peer: DiscoveredPeer,
    host: str,
    identity: Identity,
    authorize: Authorizer | None,
    config: ConnectionConfig | None,
) -> Verification | str:
    """One address: a verdict, or why it gave none."""
    address = format_host_port(host, peer.port)
    try:
        with trio.fail_after(VERIFY_TIMEOUT):
            async with open_secure_connection(
                host,
                peer.port,
                identity,
                expected_peer=peer.peer_key,
                authorize=authorize,
                config=config,
            ) as connection:
                await _ask_whether_admitted(connection)
                await connection.aclose("bye", "identity check done")
    except ConnectionClosed as closed:
        if closed.code == "unexpected-identity":
            return Verification(Verdict.SPOOFED, address, str(closed))
        if closed.code in POLICY_CODES:
            return Verification(Verdict.REFUSED, address, str(closed), closed.code)
        return f"{address}: {closed}"
    except (OSError, trio.TooSlowError) as error:
        return f"{address}: {error or 'timed out'}"
    return Verification(Verdict.VERIFIED, address, "handshake proved the id")


async def _ask_whether_admitted(connection: SecureConnection) -> None:
    """The responder judges us on handshake message 3, which completes the handshake
    on our side first: a Ping shows whether it admitted us. Any other close (most often
    ``duplicate``: we already share a session with it) still leaves the id proven."""
    try:
        await connection.ping()
    except ConnectionClosed as closed:
        if closed.code in POLICY_CODES:
            raise
