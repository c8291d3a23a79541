"""Several contacts invited at once (docs/protocol.md §15.3): one epoch, one key update
per existing member, and a room that works as if they had come one by one."""

from __future__ import annotations

from pathlib import Path

from p2pchat.wire.messages import RoomInvite, RoomKeyUpdate
from tests.net.roomnet import RoomNet


def key_updates(net: RoomNet) -> int:
    return sum(1 for _, _, message in net.log if isinstance(message, RoomKeyUpdate))


async def test_five_invited_at_once_share_one_epoch_and_can_talk(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 7)
    room_id = net.form((1,))  # ann and bob
    before = key_updates(net)
    newcomers = net.keys[2:]
    room = net.s(0).invite(room_id, *newcomers)
    net.pump()
    assert room.epoch == 2 and room.members == set(net.keys)
    assert key_updates(net) - before == 1  # bob's; the five get the invitation instead
    for index in range(2, 7):
        [invitation] = net.sent_to(index, RoomInvite)
        assert set(invitation.members) == set(net.keys)
        net.s(index).join(room_id)
        net.pump()  # (all at once: tests/net/test_room_join.py)
    for index in range(7):
        held = net.s(index).rooms[room_id]
        assert (held.epoch, held.members) == (2, frozenset(net.keys))
    net.s(4).send(room_id, "hello from the third newcomer")
    net.pump()
    for index in range(7):
        assert net.texts(index, room_id) == ["hello from the third newcomer"]
    net.close()


async def test_one_by_one_costs_an_update_per_member_per_newcomer(tmp_path: Path) -> None:
    """The comparison the batch is for: the same five one at a time."""
    net = RoomNet(tmp_path, 7)
    room_id = net.form((1,))
    before = key_updates(net)
    for index in range(2, 7):
        net.s(0).invite(room_id, net.keys[index])
        net.pump()
    assert key_updates(net) - before == 1 + 2 + 3 + 4 + 5
    assert net.s(0).rooms[room_id].epoch == 6
    net.close()


async def test_a_batch_that_lost_a_race_is_made_again_whole(tmp_path: Path) -> None:
    """Two members change the room at once; the loser (higher key) re-invites all of its
    newcomers on top of the winner's epoch, in one change."""
    net = RoomNet(tmp_path, 6)
    low, high = sorted((0, 1), key=lambda index: net.keys[index])
    room_id = net.form((1,))
    net.s(low).invite(room_id, net.keys[2])
    net.s(high).invite(room_id, net.keys[3], net.keys[4])
    net.pump()
    for index in (0, 1):
        assert net.s(index).rooms[room_id].members == set(net.keys[:5])
    epochs = {net.s(index).rooms[room_id].epoch for index in (0, 1)}
    assert epochs == {3}  # the winner's 2, then the loser's batch made again as 3
    net.close()
