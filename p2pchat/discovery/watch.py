"""Announce ourselves and report what mDNS shows, verifying each new peer by handshake."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import trio

from p2pchat.addresses import format_host_port
from p2pchat.chat.names import line_id
from p2pchat.discovery.dial import OnVerified
from p2pchat.discovery.mdns import DiscoveryEvent, Mdns, PeerGone, PeerSeen
from p2pchat.discovery.records import Announcement, DiscoveredPeer, PrivateAnnouncement
from p2pchat.discovery.tokens import WINDOW_SECONDS
from p2pchat.discovery.verify import Verdict, verify_peer
from p2pchat.identity import Identity
from p2pchat.net.connection import ConnectionConfig
from p2pchat.session.core import Authorizer

log = logging.getLogger("p2pchat.discovery")

MAX_CONCURRENT_VERIFICATIONS = 8
# How often a private node compares the wall clock with its next rotation: the hour
# comes by the wall clock, which a suspend or a clock change moves.
CLOCK_CHECK_SECONDS = 60.0

# report(event_name, human_text, **json_fields)
Reporter = Callable[..., None]


def peer_fields(peer: DiscoveredPeer, *, verified: bool) -> dict[str, Any]:
    return {
        "id": peer.peer_id,
        "nick": peer.nick,
        "status": peer.status.value if peer.status else None,
        "addresses": [format_host_port(host, peer.port) for host in peer.addresses],
        "verified": verified,
    }


def describe(peer: DiscoveredPeer) -> str:
    name = peer.nick or "(no nick)"
    places = ", ".join(format_host_port(host, peer.port) for host in peer.addresses[:3])
    more = f" and {len(peer.addresses) - 3} more" if len(peer.addresses) > 3 else ""
    return f"{name} ({line_id(peer.peer_id)}) at {places}{more}"


async def watch(
    mdns: Mdns,
    identity: Identity,
    report: Reporter,
    *,
    announcement: Announcement | PrivateAnnouncement | None,
    fresh_token: Callable[[], str] | None = None,
    on_verified: OnVerified | None = None,
    authorize: Authorizer | None = None,
    wanted: Callable[[str], bool] | None = None,
    config: ConnectionConfig | None = None,
    instead: Callable[[DiscoveredPeer], bool] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Announce (unless ``announcement`` is None), then browse and report until cancelled.

    ``instead(peer)``: true when the caller acts on the record itself rather than have
    it verified (a peer it shares a session with through Tor: the session moves to the
    record's addresses, and that dial proves the id). A verification's connection
    would itself take the place of that session on the peer's side, then close.

    Each record is proven by a handshake, unless ``wanted(peer_id)`` says no: then it is
    reported (not verified, ``"dialled": false``) and nobody is dialled for it. That is
    contacts-only mode: a stranger's record would cost a handshake we would refuse.
    ``authorize``: our own policy in the handshakes we make; ``config``: the node's
    connection settings (its features: the verified peer may keep the session).
    """
    send, events = trio.open_memory_channel[DiscoveryEvent](256)
    # Where each instance was last proven: a record that moves (a restart on a new
    # port, a new address, or a stale cache entry that is then corrected) is proven
    # again, so "verified" always refers to the addresses being reported.
    proven: dict[str, tuple[tuple[str, ...], int]] = {}
    # ...and where each instance refused us (its policy): not dialled again there.
    refused: dict[str, tuple[tuple[str, ...], int]] = {}
    # Records can name any address: bound how many handshakes they make us start.
    dialling = trio.CapacityLimiter(MAX_CONCURRENT_VERIFICATIONS)
    async with trio.open_nursery() as nursery:
        await nursery.start(mdns.browse, send)
        if announcement is not None:
            await mdns.announce(announcement)
        if isinstance(announcement, PrivateAnnouncement) and fresh_token is not None:
            nursery.start_soon(rotate_announcement, mdns, announcement, fresh_token)
        task_status.started()
        async for event in events:
            if isinstance(event, PeerSeen):
                peer = event.peer
                place = (peer.addresses, peer.port)
                verified = proven.get(peer.instance) == place
                fields = peer_fields(peer, verified=verified)
                dial = wanted is None or wanted(peer.peer_id)
                note = "" if dial else " (not a contact: not dialled, contacts-only mode)"
                if not dial:
                    fields["dialled"] = False
                if event.first:
                    report("discovered", f"discovered: {describe(peer)}{note}", **fields)
                else:
                    report("updated", f"updated: {describe(peer)}{note}", **fields)
                if not verified and dial and instead is not None and instead(peer):
                    continue
                if not verified and dial and refused.get(peer.instance) != place:
                    nursery.start_soon(
                        _verify, mdns, identity, peer, report, (proven, refused), on_verified,
                        dialling, authorize, config,
                    )  # fmt: skip
            elif isinstance(event, PeerGone) and event.peer is not None:
                proven.pop(event.instance, None)
                refused.pop(event.instance, None)
                report("gone", f"gone: {describe(event.peer)}", id=event.peer.peer_id)


async def rotate_announcement(
    mdns: Mdns,
    announcement: PrivateAnnouncement,
    fresh_token: Callable[[], str],
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """A private announcement is withdrawn and made again, with a new token and a new
    instance label, at the start of every hour (a little after, at random: nodes that
    started together do not all rotate in the same second), and as soon as the machine
    is on another network (a new network's listeners must not be able to link the
    record to the one heard on the last; Mdns.move withdrew that one). Nothing links
    the new record to the old one but the address."""

    def next_hour() -> float:
        return clock() + WINDOW_SECONDS - clock() % WINDOW_SECONDS + random.uniform(1, 30)

    due = next_hour()
    moves = mdns.moves
    while True:
        with trio.move_on_after(max(0.0, min(CLOCK_CHECK_SECONDS, due - clock()))):
            await mdns.wait_moved(moves)
        if mdns.moves == moves and clock() < due:
            continue
        moves = mdns.moves
        announcement = PrivateAnnouncement(announcement.port, announcement.versions, fresh_token())
        await mdns.withdraw()
        await mdns.announce(announcement)
        due = next_hour()


async def _verify(
    mdns: Mdns,
    identity: Identity,
    peer: DiscoveredPeer,
    report: Reporter,
    places: tuple[dict[str, tuple[tuple[str, ...], int]], dict[str, tuple[tuple[str, ...], int]]],
    on_verified: OnVerified | None,
    dialling: trio.CapacityLimiter,
    authorize: Authorizer | None,
    config: ConnectionConfig | None,
) -> None:
    async with dialling:
        result = await verify_peer(peer, identity, authorize, config=config)
    proven, refused = places
    if result.verdict is Verdict.VERIFIED:
        proven[peer.instance] = (peer.addresses, peer.port)
        if on_verified is not None and result.address is not None:
            on_verified(peer.peer_id, result.address, peer.nick)
        report("verified", f"proven: {describe(peer)}", **peer_fields(peer, verified=True))
    elif result.verdict is Verdict.REFUSED:
        refused[peer.instance] = (peer.addresses, peer.port)
        why = "it talks to its contacts only" if result.code == "contacts-only" else "refused"
        report("refused", f"refused: {describe(peer)}: {why} ({result.detail})",
               id=peer.peer_id, address=result.address, code=result.code, by_peer=True,
               detail=result.detail)  # fmt: skip
    elif result.verdict is Verdict.SPOOFED:
        mdns.ignore(peer.instance)
        log.warning("spoofed mDNS record for %s: %s", peer.peer_id, result.detail)
        report(
            "spoof",
            f"warning: a record claiming to be {peer.peer_id} is false ({result.detail}); "
            "ignoring it",
            id=peer.peer_id,
            address=result.address,
            detail=result.detail,
        )
