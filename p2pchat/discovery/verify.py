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
from p2pchat.net.server import open_secure_connection
from p2pchat.session.core import Authorizer

log = logging.getLogger("p2pchat.discovery")

VERIFY_TIMEOUT = 5.0


class Verdict(enum.Enum):
    VERIFIED = "verified"
    SPOOFED = "spoofed"  # someone else answered at the announced address
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Verification:
    verdict: Verdict
    address: str | None
    detail: str


async def verify_peer(
    peer: DiscoveredPeer, identity: Identity, authorize: Authorizer | None = None
) -> Verification:
    """Handshake with the announced addresses in turn, expecting the announced id;
    ``authorize``: our own policy (a blocked identity is not verified)."""
    failures = []
    for host in peer.addresses:
        address = format_host_port(host, peer.port)
        try:
            with trio.fail_after(VERIFY_TIMEOUT):
                async with open_secure_connection(
                    host, peer.port, identity, expected_peer=peer.peer_key, authorize=authorize
                ) as connection:
                    await connection.aclose("bye", "verified")
        except ConnectionClosed as closed:
            if closed.code == "unexpected-identity":
                return Verification(Verdict.SPOOFED, address, str(closed))
            failures.append(f"{address}: {closed}")
        except (OSError, trio.TooSlowError) as error:
            failures.append(f"{address}: {error or 'timed out'}")
        else:
            return Verification(Verdict.VERIFIED, address, "handshake proved the id")
    detail = "; ".join(failures) or "no address"
    log.debug("could not verify %s: %s", peer.peer_id, detail)
    return Verification(Verdict.UNREACHABLE, None, detail)
