"""Periodic re-keying (docs/protocol.md §15.4): a member about to write in an epoch
that has served its time starts a new one first. Two real nodes over loopback, with the
message budget lowered; the age rule is checked on its own."""

from __future__ import annotations

from pathlib import Path

import trio

from p2pchat.chat.rooms import REKEY_AFTER_MS, REKEY_MESSAGES, rekey_due
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import RoomEnvelope
from tests.net.chatpeers import wait_for
from tests.net.test_rooms import form_room, rooms_of, start_all, texts


def test_an_epoch_serves_so_many_messages_or_so_long() -> None:
    assert not rekey_due(REKEY_MESSAGES - 1, 1_000, 1_000 + REKEY_AFTER_MS - 1)
    assert rekey_due(REKEY_MESSAGES, 1_000, 1_000)
    assert rekey_due(0, 1_000, 1_000 + REKEY_AFTER_MS)
    assert rekey_due(0, 0, REKEY_AFTER_MS)  # began before we kept the time: old


async def test_the_writer_re_keys_after_the_budget_and_everyone_reads_on(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        peers = await start_all(tmp_path, nursery, 2)
        ann = peers[0]
        room_id = await form_room(peers)
        for peer in peers:
            rooms_of(peer)._membership.rekey_messages = 3
        start = rooms_of(ann).rooms[room_id].epoch
        said: list[str] = []
        for n in range(8):
            writer = peers[n % 2]
            said.append(f"line {n}")
            rooms_of(writer).send(room_id, said[-1])
            await wait_for(lambda: all(texts(p, room_id) == said for p in peers), 30, said[-1])

        # Lines 0-2 in the first epoch; line 3's writer re-keyed, and line 6's.
        assert ann.store is not None
        codec = Codec()
        epochs = []
        ids = [m.msg_id for m in ann.store.room_history(room_id, limit=100)]
        for _, payload in reversed(ann.store.room_envelopes(room_id, ids)):  # newest first
            envelope = codec.decode(payload)
            assert isinstance(envelope, RoomEnvelope)
            epochs.append(envelope.epoch - start)
        assert epochs == [0, 0, 0, 1, 1, 1, 2, 2]
        for peer in peers:
            assert rooms_of(peer).rooms[room_id].epoch == start + 2
        nursery.cancel_scope.cancel()


async def test_a_running_node_drops_keys_of_epochs_that_ended_a_week_ago(
    tmp_path: Path,
) -> None:
    """Memory as well as the store: a key state read from a running node holds no key of
    an epoch that ended more than a week before (docs/protocol.md §15.3)."""
    async with trio.open_nursery() as nursery:
        (ann,) = await start_all(tmp_path, nursery, 1)
        rooms = rooms_of(ann)
        room_id = rooms.create("lab").room_id
        rooms._membership.rekey_messages = 1  # every line starts a new epoch
        for n in range(4):
            rooms.send(room_id, f"line {n}")
        keys = rooms.state.keys[room_id]
        assert len(keys.epochs()) == 4
        assert rooms.prune_keys() == 0  # nothing ended a week ago yet
        assert ann.store is not None
        ann.store._exec("UPDATE room_keys SET added_at = 1")  # as if a month had passed
        assert rooms.prune_keys() == 3
        newest = rooms.rooms[room_id].epoch
        assert keys.epochs() == [newest]
        assert [row.epoch for row in ann.store.room_keys(room_id)] == [newest]
        rooms.send(room_id, "still writing")  # the room goes on (in a new epoch)
        nursery.cancel_scope.cancel()


async def test_late_messages_of_an_earlier_epoch_do_not_count_towards_the_budget(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        (ann,) = await start_all(tmp_path, nursery, 1)
        rooms = rooms_of(ann)
        room = rooms.create("lab")
        state = rooms.state
        assert state.epoch_use_of(room)[1] == 0
        state.counted(room.room_id, room.epoch + 1)  # not ours (yet): not counted
        state.counted(room.room_id, room.epoch - 1 if room.epoch else 99)
        assert state.epoch_use_of(room)[1] == 0
        state.counted(room.room_id, room.epoch)
        assert state.epoch_use_of(room)[1] == 1
        nursery.cancel_scope.cancel()
