"""RoomService on the room overlay (docs/protocol.md §14): in a large room each member
talks to a few neighbours, not to every member, and every message still reaches every
online member, also after members go offline and come back."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import trio
import trio.testing

from p2pchat.mesh.plumtree import ROOM_MESSAGES, BroadcastConfig
from p2pchat.mesh.room_overlay import ring_count
from p2pchat.wire.messages import RoomGossip
from tests.net.roomnet import RoomNet

MEMBERS = 24
NO_PERIODIC = BroadcastConfig(anti_entropy_interval=None)


def room_peers(net: RoomNet, since: int) -> dict[bytes, set[bytes]]:
    """Whom each node sent room broadcast traffic to, from log entry ``since`` on."""
    talked: dict[bytes, set[bytes]] = defaultdict(set)
    for src, dst, message in net.log[since:]:
        if isinstance(message, ROOM_MESSAGES):
            talked[src].add(dst)
    return talked


async def test_a_large_room_uses_a_few_neighbours_and_reaches_everyone(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, MEMBERS, config=NO_PERIODIC)
    room_id = net.form(tuple(range(1, MEMBERS)))
    bound = 2 * ring_count(MEMBERS)
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        await net.settle(5)
        for index in range(MEMBERS):
            neighbours = net.s(index).broadcasts.neighbours(room_id)
            assert 2 <= len(neighbours) <= bound
            for peer in neighbours:  # symmetric: both ends see the same room
                assert net.s(index).me in net.services[peer].broadcasts.neighbours(room_id)
        start = len(net.log)
        for index in range(0, MEMBERS, 5):
            net.s(index).send(room_id, f"from {index}")
        await net.settle(3)
        sent = [f"from {index}" for index in range(0, MEMBERS, 5)]
        for index in range(MEMBERS):
            assert sorted(net.texts(index, room_id)) == sorted(sent)
        for peers in room_peers(net, start).values():
            assert len(peers) <= bound  # never the whole room
        # Once the tree has settled, a message crosses each member about once (a graft
        # racing a late push may add a few; flooding over the overlay would be ~3 per member).
        # The members' join notices (§15.3), all from different members, leave holes in
        # the tree that the next messages graft over: after three more messages from
        # members here and there, 25 rooms of 25 had a whole tree (23 copies); right
        # after the five above, 7 of 25 still took 25 to 33 (41 seen once).
        for k in range(3):
            net.s((7 * k + 3) % MEMBERS).send(room_id, f"warm {k}")
            await net.settle(3)
        start = len(net.log)
        net.s(1).send(room_id, "settled")
        await net.settle(3)
        copies = [m for _, _, m in net.log[start:] if isinstance(m, RoomGossip)]
        assert len(copies) <= MEMBERS + MEMBERS // 4
        nursery.cancel_scope.cancel()
    net.close()


async def test_members_going_offline_and_back_are_routed_around_and_caught_up(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, MEMBERS, config=NO_PERIODIC)
    room_id = net.form(tuple(range(1, MEMBERS)))
    away = [3, 7, 8, 15]
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        await net.settle(3)
        for index in away:
            gone = net.keys[index]
            net.online.discard(gone)
            for other in range(MEMBERS):
                if other not in away:
                    net.s(other).peer_offline(gone)
        for index in range(MEMBERS):
            if index not in away:
                neighbours = net.s(index).broadcasts.neighbours(room_id)
                assert not neighbours & {net.keys[i] for i in away}
                assert 2 <= len(neighbours) <= 2 * ring_count(MEMBERS)
        net.s(0).send(room_id, "while they were away")
        await net.settle(3)
        for index in range(MEMBERS):
            expected = [] if index in away else ["while they were away"]
            assert net.texts(index, room_id) == expected
        for index in away:
            back = net.keys[index]
            net.online.add(back)
            for other in range(MEMBERS):
                if other != index:
                    net.s(other).peer_online(back)
                    net.s(index).peer_online(net.keys[other])
        await net.settle(10)
        for index in range(MEMBERS):
            assert net.texts(index, room_id) == ["while they were away"]
        nursery.cancel_scope.cancel()
    net.close()
