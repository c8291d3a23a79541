"""Announce ourselves and report what mDNS shows, verifying each new peer by handshake."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from p2pchat.addresses import format_host_port
from p2pchat.discovery.mdns import DiscoveryEvent, Mdns, PeerGone, PeerSeen
from p2pchat.discovery.records import Announcement, DiscoveredPeer
from p2pchat.discovery.verify import Verdict, verify_peer
from p2pchat.identity import Identity

log = logging.getLogger("p2pchat.discovery")

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
    return f"{name} ({peer.peer_id[:12]}…) at {format_host_port(peer.addresses[0], peer.port)}"


async def watch(
    mdns: Mdns,
    identity: Identity,
    report: Reporter,
    *,
    announcement: Announcement | None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Announce (unless ``announcement`` is None), then browse and report until cancelled."""
    send, events = trio.open_memory_channel[DiscoveryEvent](256)
    async with trio.open_nursery() as nursery:
        await nursery.start(mdns.browse, send)
        if announcement is not None:
            await mdns.announce(announcement)
        task_status.started()
        async for event in events:
            if isinstance(event, PeerSeen):
                fields = peer_fields(event.peer, verified=False)
                if event.first:
                    report("discovered", f"discovered: {describe(event.peer)}", **fields)
                    nursery.start_soon(_verify, mdns, identity, event.peer, report)
                else:
                    report("updated", f"updated: {describe(event.peer)}", **fields)
            elif isinstance(event, PeerGone) and event.peer is not None:
                report("gone", f"gone: {describe(event.peer)}", id=event.peer.peer_id)


async def _verify(mdns: Mdns, identity: Identity, peer: DiscoveredPeer, report: Reporter) -> None:
    result = await verify_peer(peer, identity)
    if result.verdict is Verdict.VERIFIED:
        report("verified", f"verified: {describe(peer)}", **peer_fields(peer, verified=True))
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
