"""Contacts-only discovery: a stranger's mDNS record is reported, never dialled.

No real mDNS: a fake browser hands ``watch`` the records, and the verification (the
handshake a record costs) is replaced by a recorder, so the test sees exactly which
records the watcher decided to dial.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import trio
import trio.testing

import p2pchat.discovery.watch as watch_module
from p2pchat.discovery.mdns import DiscoveryEvent, Mdns, PeerSeen
from p2pchat.discovery.records import DiscoveredPeer
from p2pchat.discovery.verify import Verdict, Verification
from p2pchat.discovery.watch import watch
from p2pchat.identity import Identity


class FakeMdns:
    def __init__(self, events: list[DiscoveryEvent]) -> None:
        self.events = events

    async def browse(
        self,
        send: trio.MemorySendChannel[DiscoveryEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        for event in self.events:
            await send.send(event)
        await trio.sleep_forever()

    async def announce(self, announcement: Any) -> str:
        return "fake"

    def ignore(self, instance: str) -> None:
        pass


def seen(identity: Identity, nick: str, port: int) -> PeerSeen:
    peer = DiscoveredPeer(
        instance=f"{nick} ({identity.peer_id[:8]})",
        peer_id=identity.peer_id,
        peer_key=identity.public_key,
        addresses=("127.0.0.1",),
        port=port,
        versions=(1,),
        nick=nick,
        status=None,
    )
    return PeerSeen(peer, first=True)


@pytest.mark.parametrize("contacts_only", [True, False])
async def test_only_contacts_records_are_dialled_in_contacts_only_mode(
    monkeypatch: pytest.MonkeyPatch, contacts_only: bool
) -> None:
    me, friend, stranger = Identity.generate(), Identity.generate(), Identity.generate()
    dialled: list[str] = []
    done = trio.Event()

    async def verify(
        peer: DiscoveredPeer, identity: Identity, authorize: Any, **_: Any
    ) -> Verification:
        dialled.append(peer.peer_id)
        done.set()
        return Verification(Verdict.UNREACHABLE, None, "not really dialled")

    monkeypatch.setattr(watch_module, "verify_peer", verify)
    reports: list[tuple[str, dict[str, Any]]] = []

    def report(name: str, text: str, **fields: Any) -> None:
        reports.append((name, {"text": text, **fields}))

    # The stranger's record comes first: had it been dialled, it would be before the
    # friend's in `dialled`.
    fake = FakeMdns([seen(stranger, "eve", 7001), seen(friend, "bob", 7002)])
    wanted = (lambda peer_id: peer_id == friend.peer_id) if contacts_only else None
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: watch(
                cast(Mdns, fake),
                me,
                report,
                announcement=None,
                wanted=wanted,
                task_status=task_status,
            )
        )
        with trio.fail_after(5):
            await done.wait()
            while len(reports) < 2:
                await trio.sleep(0.01)
        await trio.sleep(0.05)  # a stranger's dial, if any, would be started by now
        nursery.cancel_scope.cancel()
    if contacts_only:
        assert dialled == [friend.peer_id]
    else:
        assert sorted(dialled) == sorted([stranger.peer_id, friend.peer_id])
    eve = next(fields for name, fields in reports if fields["id"] == stranger.peer_id)
    assert eve["verified"] is False
    if contacts_only:
        assert eve["dialled"] is False
        assert "not a contact: not dialled" in eve["text"]
    else:
        assert "dialled" not in eve


async def test_a_record_of_a_contacts_only_node_is_refused_once_not_verified(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handshake proves the announced id, but the node behind it talks to its
    contacts only: the record is reported refused (with the code), not verified, the
    node is not joined, and an update of the same record is not dialled again."""
    from p2pchat.discovery.verify import verify_peer
    from p2pchat.node.node import NodeSettings, open_node

    me = Identity.generate()
    verified: list[str] = []
    dials: list[str] = []
    reports: list[tuple[str, dict[str, Any]]] = []

    async def counting(
        peer: DiscoveredPeer, identity: Identity, authorize: Any, **more: Any
    ) -> Verification:
        dials.append(peer.peer_id)
        return await verify_peer(peer, identity, authorize, **more)

    def report(name: str, text: str, **fields: Any) -> None:
        reports.append((name, {"text": text, **fields}))

    monkeypatch.setattr(watch_module, "verify_peer", counting)
    settings = NodeSettings(nick="ann", host="127.0.0.1", mdns=False, contacts_only=True)
    async with open_node(Identity.generate(), settings) as ann:
        port = int(ann.addresses[0].rsplit(":", 1)[1])
        record = seen(ann.identity, "ann", port)
        send, later = trio.open_memory_channel[DiscoveryEvent](4)
        fake = LaterMdns([record], later)
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: watch(
                    cast(Mdns, fake),
                    me,
                    report,
                    announcement=None,
                    on_verified=lambda peer_id, address, nick: verified.append(peer_id),
                    task_status=task_status,
                )
            )
            with trio.fail_after(30):
                while not any(name == "refused" for name, _ in reports):
                    await trio.sleep(0.01)
                await send.send(PeerSeen(record.peer, first=False))  # its status changed
                while not any(name == "updated" for name, _ in reports):
                    await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    [fields] = [f for n, f in reports if n == "refused"]
    assert fields["code"] == "contacts-only" and fields["by_peer"] is True
    assert "contacts only" in fields["text"]
    assert verified == [] and not any(name == "verified" for name, _ in reports)
    assert dials == [ann.peer_id], "the update was not dialled again"


class LaterMdns(FakeMdns):
    """Hands over its events, then whatever the test sends later."""

    def __init__(
        self, events: list[DiscoveryEvent], later: trio.MemoryReceiveChannel[DiscoveryEvent]
    ) -> None:
        super().__init__(events)
        self.later = later

    async def browse(
        self,
        send: trio.MemorySendChannel[DiscoveryEvent],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        for event in self.events:
            await send.send(event)
        async for event in self.later:
            await send.send(event)
