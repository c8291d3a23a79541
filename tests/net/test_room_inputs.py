"""Room inputs wait for the room task (node/rooms/inputs.py): bounded in all and per
peer, taken in order, one per step of the event loop, and only a member's input for a
room we are in waits (strangers' traffic is refused at once, as before)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from p2pchat.identity import Identity
from p2pchat.net.sizes import estimate_size
from p2pchat.node.rooms import inputs as room_inputs
from p2pchat.node.rooms.inputs import RoomInputs
from p2pchat.wire.messages import RoomGossip, RoomIHave, RoomLeave
from tests.net.roomnet import RoomNet

A, B, C = b"a" * 32, b"b" * 32, b"c" * 32
TOPIC = b"t" * 16


def ihave(n: int) -> RoomIHave:
    return RoomIHave(TOPIC, (n.to_bytes(16, "big"),), (1,))


def test_inputs_come_out_in_the_order_they_went_in() -> None:
    inputs = RoomInputs()
    for n in range(10):
        assert inputs.put(A if n % 2 else B, ihave(n))
    taken = [inputs.take() for _ in range(10)]
    assert [message.ids[0][-1] for _, message in taken] == list(range(10))
    assert [peer for peer, _ in taken] == [B, A] * 5
    assert len(inputs) == 0 and inputs.waiting_bytes() == 0


def test_one_peer_fills_its_share_only() -> None:
    inputs = RoomInputs()
    taken = sum(inputs.put(A, ihave(n)) for n in range(room_inputs.PEER_INPUTS + 50))
    assert taken == room_inputs.PEER_INPUTS
    assert inputs.shed == 50
    assert inputs.put(B, ihave(0))  # another member still gets in
    inputs.take()  # one of A's leaves: A may queue one more
    assert inputs.put(A, ihave(1))
    assert not inputs.put(A, ihave(2))


def test_the_queue_is_bounded_in_all_and_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = RoomInputs()
    share = room_inputs.PEER_INPUTS
    peers = [bytes([n]) * 32 for n in range(room_inputs.MAX_INPUTS // share + 2)]
    taken = sum(inputs.put(peer, ihave(n)) for peer in peers for n in range(share))
    assert taken == len(inputs) == room_inputs.MAX_INPUTS
    assert inputs.shed == len(peers) * share - room_inputs.MAX_INPUTS

    big = RoomGossip(TOPIC, b"m" * 16, 1, bytes(60_000))
    monkeypatch.setattr(room_inputs, "PEER_BYTES", 10 * estimate_size(big))
    monkeypatch.setattr(room_inputs, "MAX_BYTES", 15 * estimate_size(big))
    inputs = RoomInputs()
    assert sum(inputs.put(A, big) for _ in range(20)) == 10  # A's share in bytes
    assert sum(inputs.put(B, big) for _ in range(20)) == 5  # what is left in all
    assert inputs.waiting_bytes() == 15 * estimate_size(big)


def test_pairwise_updates_have_bounds_of_their_own() -> None:
    # A member's leave is sent once: a flood of broadcast traffic must not push it out.
    inputs = RoomInputs()
    for n in range(room_inputs.PEER_INPUTS):
        assert inputs.put(A, ihave(n))
    assert not inputs.put(A, ihave(0))  # A's broadcast share is full ...
    leave = RoomLeave(TOPIC, A)
    assert inputs.put(A, leave, update=True)  # ... its leave still gets in
    taken = sum(inputs.put(A, leave, update=True) for _ in range(room_inputs.PEER_UPDATES))
    assert taken == room_inputs.PEER_UPDATES - 1  # and updates are bounded too
    assert inputs.waiting_bytes() == room_inputs.PEER_INPUTS * estimate_size(ihave(0))
    order = [inputs.take()[1] for _ in range(len(inputs))]
    assert order[room_inputs.PEER_INPUTS] == leave  # in the order they came
    assert len(inputs) == 0 and inputs.waiting_bytes() == 0
    # And in all: MAX_UPDATES from however many members.
    peers = [
        bytes([n]) * 32 for n in range(room_inputs.MAX_UPDATES // room_inputs.PEER_UPDATES + 1)
    ]
    taken = sum(
        inputs.put(p, leave, update=True) for p in peers for _ in range(room_inputs.PEER_UPDATES)
    )
    assert taken == len(inputs) == room_inputs.MAX_UPDATES
    assert inputs.put(A, ihave(0))  # broadcast traffic has its own bounds


async def test_the_room_task_takes_one_input_per_step(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    room_id = net.form([1, 2])
    member = net.s(0)
    backlog = 200
    # Announcements of messages nobody has: each asks for a graft later, nothing more.
    for n in range(backlog):
        member.queue(net.keys[1], RoomIHave(room_id, (n.to_bytes(16, "big"),), (1,)))
    assert len(member.inputs) == backlog  # a member's input waits: nothing judged yet
    left_when_a_reader_ran: list[int] = []

    async def reader() -> None:
        # A session's reader woken while the backlog is worked off.
        while member.inputs:
            left_when_a_reader_ran.append(len(member.inputs))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(member.run)
        nursery.start_soon(reader)
        with trio.fail_after(30):
            while member.inputs:
                await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    # The reader ran between every two inputs, not after the backlog.
    assert len(left_when_a_reader_ran) >= backlog - 1
    assert max(left_when_a_reader_ran) >= backlog - 2
    net.close()


async def test_a_strangers_room_traffic_is_refused_at_once(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 2)
    room_id = net.form([1])
    stranger = Identity(b"s" * 32).public_key
    refused = net.s(0).state.refused
    net.s(0).queue(stranger, RoomIHave(room_id, (b"x" * 16,), (1,)))
    net.s(0).queue(net.keys[1], RoomIHave(b"u" * 16, (b"x" * 16,), (1,)))  # not our room
    assert len(net.s(0).inputs) == 0
    assert net.s(0).state.refused == refused + 1  # the stranger; the other room is ignored
    net.close()
