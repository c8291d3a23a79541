"""The zeroconf adapter in-process, on 127.0.0.1 only: updates and name conflicts."""

from __future__ import annotations

import trio

from p2pchat.discovery.mdns import DiscoveryEvent, PeerSeen, open_mdns
from p2pchat.discovery.records import Announcement
from p2pchat.identity import Identity
from p2pchat.wire.messages import Status
from tests.discovery.nodes import LOOPBACK_MDNS

pytestmark = LOOPBACK_MDNS

LOOPBACK = ["127.0.0.1"]


async def next_seen(events: trio.MemoryReceiveChannel[DiscoveryEvent], peer_id: str) -> PeerSeen:
    with trio.fail_after(60):  # a guard: zeroconf's thread is slow on a busy machine
        async for event in events:
            if isinstance(event, PeerSeen) and event.peer.peer_id == peer_id:
                return event
    raise AssertionError("channel closed")


async def test_status_and_nick_changes_update_the_txt_record() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    send, events = trio.open_memory_channel[DiscoveryEvent](64)
    async with (
        open_mdns(own_peer_id=bob.peer_id, supported_versions=(1,), interfaces=LOOPBACK) as seer,
        open_mdns(own_peer_id=alice.peer_id, supported_versions=(1,), interfaces=LOOPBACK) as mdns,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(seer.browse, send)
        first = Announcement(alice.peer_id, 7001, (1,), nick="alice", status=Status.AVAILABLE)
        name = await mdns.announce(first)
        seen = await next_seen(events, alice.peer_id)
        assert seen.first and seen.peer.status is Status.AVAILABLE
        changed = Announcement(alice.peer_id, 7001, (1,), nick="alice b", status=Status.AWAY)
        assert await mdns.announce(changed) == name  # same instance, new TXT
        update = await next_seen(events, alice.peer_id)
        assert not update.first
        assert update.peer.status is Status.AWAY and update.peer.nick == "alice b"
        nursery.cancel_scope.cancel()


async def test_an_instance_name_conflict_is_resolved_by_renaming() -> None:
    alice = Identity.generate()
    same = Announcement(alice.peer_id, 7002, (1,), nick="twin")
    async with (
        open_mdns(own_peer_id="x", supported_versions=(1,), interfaces=LOOPBACK) as one,
        open_mdns(own_peer_id="y", supported_versions=(1,), interfaces=LOOPBACK) as two,
    ):
        first = await one.announce(same)
        second = await two.announce(same)
    assert first != second
    assert second.startswith(same.instance_name())


async def test_a_flood_of_records_is_bounded() -> None:
    import socket

    from zeroconf import ServiceInfo

    from p2pchat.discovery import mdns as mdns_module
    from p2pchat.discovery.records import SERVICE_TYPE

    async with open_mdns(own_peer_id="me", supported_versions=(1,), interfaces=LOOPBACK) as mdns:
        accepted = 0
        for index in range(mdns_module.MAX_KNOWN_INSTANCES + 50):
            owner = Identity(index.to_bytes(32, "big"))
            name = f"fake{index}.{SERVICE_TYPE}"
            txt = Announcement(owner.peer_id, 9, (1,)).txt()
            loopback = [socket.inet_aton("127.0.0.1")]
            info = ServiceInfo(SERVICE_TYPE, name, addresses=loopback, port=9, properties=txt)
            if mdns._judge(name, info) is not None:
                accepted += 1
        assert accepted == mdns_module.MAX_KNOWN_INSTANCES


async def test_a_flood_of_anonymous_private_records_is_bounded() -> None:
    """Private records no key recognises (§10.2) are only counted, and the count is
    bounded like the tracked instances; each costs one recognition, asked once."""
    import socket

    from zeroconf import ServiceInfo

    from p2pchat.discovery import mdns as mdns_module
    from p2pchat.discovery.records import SERVICE_TYPE, PrivateAnnouncement
    from p2pchat.discovery.tokens import make_token

    asked: list[str] = []

    def nobody(token: str) -> bytes | None:
        asked.append(token)
        return None

    async with open_mdns(own_peer_id="me", supported_versions=(1,), interfaces=LOOPBACK) as mdns:
        mdns.recognise = nobody
        flood = mdns_module.MAX_KNOWN_INSTANCES + 50
        for index in range(flood):
            name = f"p2pchat-{index:010x}.{SERVICE_TYPE}"
            txt = PrivateAnnouncement(9, (1,), make_token(bytes(32), 0)).txt()
            loopback = [socket.inet_aton("127.0.0.1")]
            info = ServiceInfo(SERVICE_TYPE, name, addresses=loopback, port=9, properties=txt)
            assert mdns._judge(name, info) is None  # anonymous: nothing to report or dial
        assert len(mdns.anonymous) == mdns_module.MAX_KNOWN_INSTANCES
        assert len(asked) == flood


async def test_a_networks_service_type_takes_only_its_members_private_records() -> None:
    """Anyone on the link can announce under a private network's service type (its name
    is no secret): a record with an id, or a token no member made, is ignored, never
    dialled (docs/protocol.md §17.2)."""
    import socket

    from zeroconf import ServiceInfo

    from p2pchat.discovery.records import PrivateAnnouncement
    from p2pchat.discovery.tokens import make_token, recognise
    from p2pchat.networks.keys import Network

    network = Network("crew", bytes([3]) * 32)
    async with open_mdns(own_peer_id="me", supported_versions=(1,), interfaces=LOOPBACK) as main:
        mdns = main.sibling(network.service_type)
        mdns.private_only = True
        mdns.recognise = lambda token: recognise(token, {bytes(32): network.announce_key}, 0)
        service = network.service_type
        loopback = [socket.inet_aton("127.0.0.1")]

        def judged(name: str, txt: dict[str, str]) -> object:
            info = ServiceInfo(service, f"{name}.{service}", addresses=loopback, port=9,
                               properties=txt)  # fmt: skip
            return mdns._judge(f"{name}.{service}", info)

        impostor = Announcement(Identity.generate().peer_id, 9, (1,), nick="evil")
        assert judged("evil", impostor.txt()) is None
        stranger = PrivateAnnouncement(9, (1,), make_token(bytes([4]) * 32, 0))
        assert judged("p2pchat-0000000001", stranger.txt()) is None
        member = PrivateAnnouncement(9, (1,), make_token(network.announce_key, 0))
        assert isinstance(judged("p2pchat-0000000002", member.txt()), PeerSeen)
