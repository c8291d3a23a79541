"""Files shared with a room between real nodes (docs/protocol.md §16.4): the offer
travels as a room message, each member who accepts fetches blocks from any member
that holds them, the author serves each block a bounded number of times, and every
copy is whole and verified."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from p2pchat.files.blocks import BLOCK_SIZE
from p2pchat.node.events import FileEvent
from p2pchat.node.files import FileService
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.test_rooms import form_room

pytestmark = pytest.mark.slow


def files(peer: ChatPeer) -> FileService:
    assert peer.node is not None and peer.node.files is not None
    return peer.node.files


def state(peer: ChatPeer, offer_id: bytes) -> str:
    row = peer.store.transfer(offer_id) if peer.store is not None else None
    return row.state if row is not None else ""


async def members(tmp_path: Path, nursery: trio.Nursery, count: int) -> list[ChatPeer]:
    peers = [ChatPeer(f"p{i}", tmp_path / f"p{i}", downloads=tmp_path / f"p{i}-dl")
             for i in range(count)]  # fmt: skip
    for peer in peers:
        await peer.start(nursery)
    for peer in peers:
        for other in peers:
            if other is not peer:
                peer.befriend(other)
    for peer in peers[1:]:
        peer.introduce(peers[0])
    await wait_for(lambda: all(p.sees_online(q) for p in peers for q in peers if p is not q),
                   60, "the mesh to form")  # fmt: skip
    return peers


async def test_a_room_of_three_shares_a_file_and_members_serve_each_other(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        peers = await members(tmp_path, nursery, 3)
        room_id = await form_room(peers)
        author, bob, carol = peers
        source = tmp_path / "minutes.pdf"
        source.write_bytes(os.urandom(48 * BLOCK_SIZE + 999))
        shared = await files(author).share(room_id, source)
        assert shared.room_id == room_id and shared.outgoing

        for member in (bob, carol):
            await wait_for(lambda m=member: state(m, shared.offer_id) == "offered", 60,
                           "the offer in the room")  # fmt: skip
            [offer] = [e for e in member.events if isinstance(e, FileEvent) and e.kind == "offer"]
            assert (offer.room, offer.peer, offer.name) == (room_id, author.key, "minutes.pdf")
            # A reader without files sees the line the message carries.
            assert member.store is not None
            [line] = [m for m in member.store.room_history(room_id) if m.msg_id == shared.offer_id]
            assert line.action and line.text == "shares a file: minutes.pdf (12.6 MB)"
        files(bob).accept(shared.offer_id)
        files(carol).accept(shared.offer_id)
        for member in (bob, carol):
            await wait_for(lambda m=member: state(m, shared.offer_id) == "done", 120, "the file")
            row = member.store.transfer(shared.offer_id) if member.store else None
            assert row is not None and Path(row.path).read_bytes() == source.read_bytes()

        size = source.stat().st_size
        by_author = files(author).uploaded(shared.offer_id)
        by_members = files(bob).uploaded(shared.offer_id) + files(carol).uploaded(shared.offer_id)
        assert by_author + by_members >= 2 * size  # each member got all of it
        # Each block went out from the author about once; the rest the members traded.
        assert by_author < 1.6 * size, (by_author / size, by_members / size)
        assert by_members > 0.4 * size, (by_author / size, by_members / size)

        # A member who joins later fetches from the members who hold it, not only the author.
        nursery.cancel_scope.cancel()
