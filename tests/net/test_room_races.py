"""Rooms under hostile or unlucky orders of events (regressions from a review)."""

from __future__ import annotations

import os
from pathlib import Path

from p2pchat.chat.rooms import RoomKeys
from p2pchat.wire.messages import RoomGossip, RoomKeyUpdate
from tests.net.roomnet import RoomNet


async def test_a_removed_member_cannot_rewrite_a_pending_invitation(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 4)
    a, _b, r, v = net.keys
    room_id = net.form((1, 2))
    net.s(0).remove(room_id, r)
    net.s(0).invite(room_id, v)
    net.pump()
    evil = os.urandom(32)
    forged = RoomKeyUpdate(room_id=room_id, epoch=10**9, key=evil, members=tuple(sorted((a, v, r))))
    net.s(3).receive(r, forged)  # r knows the room id, and is no longer a member
    room = net.s(3).join(room_id)
    assert room.key != evil and r not in room.members
    net.s(3).send(room_id, "v's secret")
    net.pump()
    assert net.texts(0, room_id)[-1:] == ["v's secret"]
    net.close()


async def test_a_message_that_arrives_before_its_key_is_read_when_the_key_comes(
    tmp_path: Path,
) -> None:
    net = RoomNet(tmp_path, 4)
    _a, _b, c, d = net.keys
    room_id = net.form((1, 2))
    net.s(0).invite(room_id, d)  # a new epoch: hold a's key update to c back
    net.pump(hold=lambda src, dst, m: dst == c and isinstance(m, RoomKeyUpdate))
    held = list(net.queue)
    net.queue.clear()
    net.s(3).join(room_id)
    net.s(1).send(room_id, "new epoch")
    net.pump(hold=lambda src, dst, m: not isinstance(m, RoomGossip) and dst == c)
    assert net.texts(2, room_id) == []  # c has the message but not yet its key
    net.queue[:0] = held
    net.pump()
    assert net.texts(2, room_id) == ["new epoch"]
    net.close()


async def test_a_leave_survives_a_restart(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    room_id = net.form((1, 2))
    leaver = net.keys[2]
    net.s(2).leave(room_id)
    # the rotation that follows is slow to arrive: the leave alone must hold
    net.pump(hold=lambda src, dst, m: isinstance(m, RoomKeyUpdate))
    for index in (0, 1):
        assert leaver not in net.s(index).rooms[room_id].members
    for index in (0, 1):
        assert leaver not in net.start(index).rooms[room_id].members  # after a restart
    net.close()


async def test_a_losing_concurrent_key_stays_readable(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 5)
    room_id = net.form((1, 2))
    # the two members invite someone at the same moment: both make the next epoch
    members = sorted(range(3), key=lambda i: net.keys[i])
    low, high = members[0], members[-1]
    net.s(low).invite(room_id, net.keys[3])
    net.s(high).invite(room_id, net.keys[4])
    net.s(high).send(room_id, "under the losing key")
    net.pump()
    for index in range(3):
        assert net.texts(index, room_id) == ["under the losing key"], index
    keys: RoomKeys = net.s(low).state.keys[room_id]
    assert any(len(keys.keys(epoch)) == 2 for epoch in keys.epochs())
    # The losing change (the invitation of member 4) is made again on top of the winner's:
    # once the newcomers join, all five are members everywhere, at one epoch.
    for index in (3, 4):
        net.s(index).join(room_id)
        net.pump()
    views = [net.s(index).rooms[room_id] for index in range(5)]
    assert {frozenset(view.members) for view in views} == {frozenset(net.keys)}
    assert len({view.epoch for view in views}) == 1
    net.s(4).send(room_id, "count me in")
    net.pump()
    for index in range(4):
        assert net.texts(index, room_id)[-1] == "count me in", index
    net.close()


async def test_a_newcomers_first_message_sorts_after_the_rooms_past(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    room_id = net.form([1])
    for i in range(5):
        net.s(1).send(room_id, f"before {i}")
    net.pump()
    net.s(0).invite(room_id, net.keys[2])
    net.pump()
    net.s(2).join(room_id)
    net.pump()
    net.s(2).send(room_id, "hi, I am new")
    net.pump()
    for index in (0, 1):
        assert net.texts(index, room_id)[-1] == "hi, I am new"
    net.close()
