"""Contacts-only discovery: a stranger's mDNS record is reported, never dialled.

No real mDNS: a fake browser hands ``watch`` the records, and the verification (the
handshake a record costs) is replaced by a recorder, so the test sees exactly which
records the watcher decided to dial.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import trio

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

    async def verify(peer: DiscoveredPeer, identity: Identity, authorize: Any) -> Verification:
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
