"""Rooms between real nodes over loopback: ten members, catch-up, removal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from p2pchat.chat.rooms import RoomKeys, open_room_message
from p2pchat.errors import RemoteProtocolError
from p2pchat.node.rooms import RoomService
from p2pchat.wire.codec import Codec
from tests.net.chatpeers import ChatPeer, wait_for

pytestmark = pytest.mark.slow


def rooms_of(peer: ChatPeer) -> RoomService:
    assert peer.node is not None and peer.node.rooms is not None
    return peer.node.rooms


def texts(peer: ChatPeer, room_id: bytes) -> list[str]:
    assert peer.store is not None
    return [m.text for m in peer.store.room_history(room_id, limit=10_000)]


def invited(peer: ChatPeer, room_id: bytes) -> Callable[[], bool]:
    return lambda: any(i.room_id == room_id for i in rooms_of(peer).invitations())


def sees_offline(peer: ChatPeer, other: ChatPeer) -> Callable[[], bool]:
    return lambda: not peer.sees_online(other)


async def start_all(
    tmp_path: Path, nursery: trio.Nursery, count: int, *, downloads: bool = False
) -> list[ChatPeer]:
    """``count`` peers, each every other's contact, in one mesh; ``downloads``: each
    with a downloads folder (accepting files)."""
    peers = [ChatPeer(f"p{i}", tmp_path / f"p{i}",
                      downloads=tmp_path / f"p{i}-dl" if downloads else None)
             for i in range(count)]  # fmt: skip
    for peer in peers:
        await peer.start(nursery)
    for peer in peers:
        for other in peers:
            if other is not peer:
                peer.befriend(other)
    for peer in peers[1:]:
        peer.introduce(peers[0])

    def everyone_online() -> bool:
        return all(p.sees_online(q) for p in peers for q in peers if p is not q)

    await wait_for(everyone_online, 60, "the mesh to form")
    return peers


async def form_room(peers: list[ChatPeer]) -> bytes:
    owner = rooms_of(peers[0])
    room_id = owner.create("lab").room_id
    for peer in peers[1:]:
        owner.invite(room_id, peer.key)
        await wait_for(invited(peer, room_id), 60, "an invitation")
        rooms_of(peer).join(room_id)

    def settled() -> bool:
        views = [rooms_of(p).rooms.get(room_id) for p in peers]
        return all(v is not None and len(v.members) == len(peers) for v in views) and (
            len({v.epoch for v in views if v is not None}) == 1
        )

    await wait_for(settled, 60, "every member to hold the same epoch and member list")
    return room_id


async def test_ten_members_catch_up_and_removal(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        peers = await start_all(tmp_path, nursery, 10)
        room_id = await form_room(peers)

        # A message from any member reaches all.
        rooms_of(peers[5]).send(room_id, "hello from p5")
        await wait_for(lambda: all("hello from p5" in texts(p, room_id) for p in peers), 60,
                       "everyone to get p5's message")  # fmt: skip

        # A member away during 50 messages catches up on return, none lost or duplicated.
        away = peers[9]
        await away.stop()
        for peer in peers[:9]:
            await wait_for(sees_offline(peer, away), 60, "the leave")
        for i in range(50):
            rooms_of(peers[1]).send(room_id, f"while away {i:02d}")
        await wait_for(lambda: all(len(texts(p, room_id)) == 51 for p in peers[:9]), 60,
                       "the 50 to reach those online")  # fmt: skip
        await away.start(nursery)
        away.introduce(peers[0])
        await wait_for(lambda: len(texts(away, room_id)) == 51, 60, "the catch-up")
        await trio.sleep(0.5)
        got = texts(away, room_id)
        assert len(got) == len(set(got)) == 51
        assert got == texts(peers[0], room_id)  # the same order everywhere

        # A removed member cannot read what is said after the removal.
        removed = peers[8]
        old_keys: RoomKeys = rooms_of(removed).state.keys[room_id]
        rooms_of(peers[0]).remove(room_id, removed.key)
        await wait_for(lambda: room_id not in rooms_of(removed).rooms, 60, "the removal")

        def rekeyed() -> bool:
            epochs = {rooms_of(p).rooms[room_id].epoch for p in peers if p is not removed}
            return len(epochs) == 1

        await wait_for(rekeyed, 60, "the new epoch everywhere")
        rooms_of(peers[2]).send(room_id, "after the removal")
        others = [p for p in peers if p is not removed]
        await wait_for(lambda: all("after the removal" in texts(p, room_id) for p in others),
                       60, "the message after the removal")  # fmt: skip
        assert peers[2].store is not None
        [(_, payload)] = [
            pair
            for pair in peers[2].store.room_envelopes(
                room_id, [m.msg_id for m in peers[2].store.room_history(room_id, limit=1)]
            )
        ]
        with pytest.raises(RemoteProtocolError):
            open_room_message(old_keys, Codec().decode(payload))
        assert removed.store is not None
        assert "after the removal" not in texts(removed, room_id)
        nursery.cancel_scope.cancel()


async def test_a_member_away_during_a_key_change_reads_what_followed(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        peers = await start_all(tmp_path, nursery, 4)
        ann, bob, cat, dan = peers
        owner = rooms_of(ann)
        room_id = owner.create("night shift").room_id
        for peer in (bob, cat):
            owner.invite(room_id, peer.key)
            await wait_for(invited(peer, room_id), 60, "an invitation")
            rooms_of(peer).join(room_id)
        await wait_for(lambda: len(rooms_of(cat).rooms[room_id].members) == 3, 60, "3 members")
        await cat.stop()
        await wait_for(sees_offline(ann, cat), 60, "cat away")
        owner.invite(room_id, dan.key)  # a new epoch cat does not hear about
        await wait_for(invited(dan, room_id), 60, "dan's invitation")
        rooms_of(dan).join(room_id)
        for i in range(5):
            rooms_of(bob).send(room_id, f"new epoch {i}")
        await wait_for(lambda: len(texts(dan, room_id)) == 5, 60, "dan reads the new epoch")
        await cat.start(nursery)
        cat.introduce(ann)
        await wait_for(lambda: len(texts(cat, room_id)) == 5, 60, "cat catches up")
        assert texts(cat, room_id) == texts(bob, room_id)
        assert rooms_of(cat).rooms[room_id].epoch == rooms_of(ann).rooms[room_id].epoch
        nursery.cancel_scope.cancel()
