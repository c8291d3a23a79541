"""The command layer over running nodes: sending and reading, presence, rooms,
invite codes, connecting and ping, on real loopback sessions and real stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from p2pchat.commands import CommandError, Commands
from tests.net.chatpeers import ChatPeer, wait_for


@asynccontextmanager
async def running(*peers: ChatPeer) -> AsyncIterator[None]:
    """The peers' nodes, stopped when the block ends."""
    async with trio.open_nursery() as nursery:
        for peer in peers:
            await peer.start(nursery)
        yield
        nursery.cancel_scope.cancel()


def commands_of(peer: ChatPeer) -> Commands:
    assert peer.store is not None and peer.node is not None
    return Commands(peer.identity, peer.store, peer.node)


async def test_a_message_reaches_a_contact(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann")
    bob = ChatPeer("bob", tmp_path / "bob")
    async with running(ann, bob):
        ann.befriend(bob)
        bob.befriend(ann)
        ann.introduce(bob)
        to_ann, to_bob = commands_of(ann), commands_of(bob)
        sent = to_ann.send(bob.key, "hello bob")
        assert sent.text == "hello bob" and sent.peer == bob.key
        await wait_for(lambda: bool(to_bob.history(ann.key)), 10, "bob to store it")
        [got] = to_bob.history(ann.key)
        assert (got.msg_id, got.text, got.outgoing) == (sent.msg_id, "hello bob", False)
        assert to_bob.mark_read(ann.key) == 1
        await wait_for(lambda: to_ann.message(sent.msg_id).state == "read",  # type: ignore[union-attr]
                       10, "the read receipt")  # fmt: skip
        assert (await to_ann.delivery(sent)).state == "read"
        assert to_ann.name_of(bob.key) == "bob"
        with pytest.raises(CommandError, match="your own id"):
            to_ann.send(ann.key, "me?")


async def test_presence_and_peers(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann")
    bob = ChatPeer("bob", tmp_path / "bob")
    async with running(ann, bob):
        bob.introduce(ann)
        to_ann, to_bob = commands_of(ann), commands_of(bob)
        own = await to_ann.set_presence(nick="Ann", status="away", status_text="lunch")
        assert (own.nick, own.status, own.status_text) == ("Ann", "away", "lunch")
        with pytest.raises(CommandError, match='"status" is one of'):
            await to_ann.set_presence(status="asleep")
        with pytest.raises(CommandError, match="control characters"):
            await to_ann.set_presence(status_text="\x1b[2J")

        def bob_sees_ann_away() -> bool:
            return any(p.presence.peer == ann.key and p.presence.status == "away"
                       for p in to_bob.peers())  # fmt: skip

        await wait_for(bob_sees_ann_away, 10, "ann's presence at bob")
        [peer] = [p for p in to_bob.peers() if p.presence.peer == ann.key]
        assert peer.connected and peer.presence.nick == "Ann"
        assert to_bob.presence(ann.key) == peer.presence


async def test_a_room_of_one(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann")
    async with running(ann):
        commands = commands_of(ann)
        room = commands.create_room("lunch")
        assert commands.room(room.room_id) == room
        listed = commands.rooms()
        assert [(r.room.name, r.unread) for r in listed.rooms] == [("lunch", 0)]
        assert listed.invitations == []
        sent = commands.send_to_room(room.room_id, "soup?")
        first = commands.send_to_room(room.room_id, "or salad?")
        history = commands.room_history(room.room_id)
        assert [m.text for m in history] == ["soup?", "or salad?"]
        older = commands.room_history(room.room_id, before=first.msg_id)
        assert [m.msg_id for m in older] == [sent.msg_id]
        with pytest.raises(CommandError, match="no such message in this room"):
            commands.room_history(room.room_id, before=b"\x00" * 16)
        [member] = commands.room_members(room.room_id)
        assert (member.peer, member.online) == (ann.key, True)
        assert [r.name for r in commands.stored_rooms()] == ["lunch"]
        commands.leave_room(room.room_id)
        with pytest.raises(CommandError, match="not a member of that room"):
            commands.room(room.room_id)


async def test_an_invite_code_connects_and_pings(tmp_path: Path) -> None:
    ann = ChatPeer("ann", tmp_path / "ann", contacts_only=True)
    bob = ChatPeer("bob", tmp_path / "bob")
    async with running(ann, bob):
        to_ann, to_bob = commands_of(ann), commands_of(bob)
        invitation = to_ann.invite()
        assert invitation.addresses == [ann.address]
        connected = await to_bob.connect(to_bob.parse_target(invitation.code))
        assert (connected.state, connected.peer_id) == ("verified", ann.identity.peer_id)
        assert connected.address == ann.address and connected.contact
        assert "verified" in [note.name for note in connected.notes]
        pinged = await to_bob.ping(ann.key, count=2)
        assert len(pinged.rtts) == 2 and pinged.address == ann.address
