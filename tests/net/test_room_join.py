"""Joining a room (docs/protocol.md §15.3): the joiner tells the members near it on the
rings and its inviter directly, and everyone else through its join notice on the room's
broadcast, so a room whose members all join at once opens O(members) sessions, not
one per pair."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio
import trio.testing

from p2pchat.mesh.plumtree import BroadcastConfig
from p2pchat.mesh.room_overlay import NEAR_REACH, ring_count
from p2pchat.node.events import RoomMemberJoined
from p2pchat.wire.messages import RoomGossip, RoomGraft, RoomInvite
from tests.net.roomnet import RoomNet

MEMBERS = 40
NO_PERIODIC = BroadcastConfig(anti_entropy_interval=None)


def pairwise_grafts(net: RoomNet) -> Counter[bytes]:
    """Empty grafts (join announcements) sent, by sender."""
    return Counter(src for src, _, m in net.log if isinstance(m, RoomGraft) and m.ids == ())


async def test_a_room_joined_all_at_once_learns_every_join_without_a_full_mesh(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, MEMBERS, config=NO_PERIODIC)
    creator = net.keys[0]
    room_id = net.s(0).create("big").room_id
    net.s(0).invite(room_id, *net.keys[1:])
    net.pump()
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        for index in range(1, MEMBERS):
            assert len(net.sent_to(index, RoomInvite)) == 1
            net.s(index).join(room_id)  # everyone at once: nothing delivered between
        await net.settle(3)
        # Each joiner told at most the members within NEAR_REACH places on each ring
        # (2 * rings * NEAR_REACH of them) and its inviter; the old rule, every member.
        bound = 2 * ring_count(MEMBERS) * NEAR_REACH + 1
        grafts = pairwise_grafts(net)
        assert creator not in grafts
        assert max(grafts.values()) <= bound < MEMBERS - 1
        # Yet every member learned that every other joined: nothing is held back.
        for index in range(MEMBERS):
            assert net.s(index).state.pending.get(room_id, set()) == set()
        # Everyone is told of every join once, also co-invitees, whom nobody held back.
        for index in range(MEMBERS):
            said = [
                e.member for e in net.events[net.keys[index]] if isinstance(e, RoomMemberJoined)
            ]
            assert sorted(said) == sorted(set(net.keys[1:]) - {net.keys[index]})
        # The notices are not messages: nothing stored, nothing to read; nor are they
        # served in catch-up, where each joiner's digests would fetch them again.
        assert all(net.texts(index, room_id) == [] for index in range(MEMBERS))
        # Each joiner's notice, and the creator's key notice (§15.7): sent once the last
        # invitee it held back joined (the joiners' notices say they hold the key).
        for index in range(MEMBERS):
            assert net.s(index).broadcasts.trees[room_id].memory["ephemeral"] == MEMBERS
        assert not [m for _, _, m in net.log if isinstance(m, RoomGossip) and m.repair]
        net.s(17).send(room_id, "hello from a newcomer")
        await net.settle(3)
        for index in range(MEMBERS):
            assert net.texts(index, room_id) == ["hello from a newcomer"]
        nursery.cancel_scope.cancel()
    net.close()


async def test_a_member_invited_by_another_learns_the_join_from_the_notice(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Members that took the newcomer into the list from a key update (so hold room
    traffic back from it) and are not near it on the rings: told by the notice alone."""
    net = RoomNet(tmp_path, MEMBERS, config=NO_PERIODIC)
    room_id = net.s(0).create("big").room_id
    net.s(0).invite(room_id, *net.keys[1 : MEMBERS - 1])
    net.pump()
    for index in range(1, MEMBERS - 1):
        net.s(index).join(room_id)
        net.pump()
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        await net.settle(3)
        newcomer = net.keys[-1]
        net.s(5).invite(room_id, newcomer)
        net.pump()
        waiting = [
            i for i in range(MEMBERS - 1) if newcomer in net.s(i).state.pending.get(room_id, ())
        ]
        assert len(waiting) == MEMBERS - 1  # everyone holds back until it joins
        net.log.clear()
        net.s(MEMBERS - 1).join(room_id)
        await net.settle(3)
        told = {dst for _, dst, m in net.log if isinstance(m, RoomGraft) and m.ids == ()}
        assert net.keys[5] in told and len(told) < MEMBERS - 1
        for index in range(MEMBERS - 1):
            assert newcomer not in net.s(index).state.pending.get(room_id, set())
            events = net.events[net.keys[index]]
            assert any(isinstance(e, RoomMemberJoined) and e.member == newcomer for e in events)
        nursery.cancel_scope.cancel()
    net.close()
