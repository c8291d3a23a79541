"""Files shared with a room between real nodes (docs/protocol.md §16.4): the offer
travels as a room message, each member who accepts fetches blocks from any member
that holds them, the author serves each block a bounded number of times, and every
copy is whole and verified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pchat.files.blocks import BLOCK_SIZE
from p2pchat.node.events import FileEvent
from tests.net.chatpeers import ChatPeer, wait_for
from tests.net.test_files import files, in_state, state
from tests.net.test_rooms import form_room, start_all

pytestmark = pytest.mark.slow


async def members(tmp_path: Path, nursery: trio.Nursery, count: int) -> list[ChatPeer]:
    return await start_all(tmp_path, nursery, count, downloads=True)


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
            await wait_for(in_state(member, shared.offer_id, "offered"), 60,
                           "the offer in the room")  # fmt: skip

            def offers(member: ChatPeer = member) -> list[FileEvent]:
                return [e for e in member.events if isinstance(e, FileEvent) and e.kind == "offer"]

            # The event reaches the test through the node's event channel, after the
            # store says "offered" (seen once beside two busy loops).
            await wait_for(lambda: bool(offers()), 60, "the offer's event")
            [offer] = offers()
            assert (offer.room, offer.peer, offer.name) == (room_id, author.key, "minutes.pdf")
            # A reader without files sees the line the message carries.
            assert member.store is not None
            [line] = [m for m in member.store.room_history(room_id) if m.msg_id == shared.offer_id]
            assert line.action and line.text == "shares a file: minutes.pdf (12.6 MB)"
        files(bob).accept(shared.offer_id)
        files(carol).accept(shared.offer_id)
        for member in (bob, carol):
            await wait_for(in_state(member, shared.offer_id, "done"), 120, "the file")
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


async def test_a_member_that_serves_a_false_block_is_dropped_and_the_file_still_comes(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        peers = await members(tmp_path, nursery, 3)
        room_id = await form_room(peers)
        author, liar, carol = peers
        source = tmp_path / "plans.bin"
        source.write_bytes(os.urandom(24 * BLOCK_SIZE))
        shared = await files(author).share(room_id, source)
        await wait_for(lambda: state(liar, shared.offer_id) == "offered", 60, "the liar's offer")
        files(liar).accept(shared.offer_id)
        await wait_for(lambda: state(liar, shared.offer_id) == "done", 60, "the liar's copy")
        # From now on the liar serves every block with one byte changed (its proof kept).
        uploads = files(liar).uploads
        honest_read = uploads._read_held

        async def lying_read(transfer: Any, index: int) -> Any:
            row, at, data, proof = await honest_read(transfer, index)
            if data is not None:
                data = bytes([data[0] ^ 1]) + data[1:]
            return row, at, data, proof

        uploads._read_held = lying_read  # type: ignore[method-assign]
        carol.introduce(liar)  # a holder carol can reach, and will ask before the author
        await wait_for(lambda: carol.connected_to(liar), 60, "carol's session with the liar")
        await wait_for(lambda: state(carol, shared.offer_id) == "offered", 60, "carol's offer")
        files(carol).accept(shared.offer_id)
        await wait_for(lambda: state(carol, shared.offer_id) != "accepted", 120, "carol's copy")
        row = carol.store.transfer(shared.offer_id) if carol.store else None
        assert row is not None and row.state == "done", row
        assert Path(row.path).read_bytes() == source.read_bytes()
        rooms = files(carol).rooms
        assert rooms is not None and liar.key in rooms.banned[shared.root]
        # Asked at most a window or two before the first false block was judged.
        assert files(liar).uploaded(shared.offer_id) <= 16 * BLOCK_SIZE
        nursery.cancel_scope.cancel()


async def test_a_members_flood_of_shares_is_kept_to_its_share_of_waiting_offers(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        peers = await members(tmp_path, nursery, 2)
        room_id = await form_room(peers)
        author, bob = peers
        assert bob.store is not None
        shares = 40  # per_contact is 32
        for n in range(shares):
            source = tmp_path / f"f{n}.txt"
            source.write_bytes(os.urandom(100))
            await files(author).share(room_id, source)

        def lines() -> int:
            assert bob.store is not None
            rows = bob.store.room_history(room_id, limit=1000)
            return sum(1 for m in rows if m.text.startswith("shares a file: f"))

        await wait_for(lambda: lines() == shares, 60, "every share's line")
        kept = [t for t in bob.store.transfers() if t.room_id == room_id]
        assert len(kept) == 32  # the rest show as their lines only
        assert all(t.state == "offered" for t in kept)
        nursery.cancel_scope.cancel()
