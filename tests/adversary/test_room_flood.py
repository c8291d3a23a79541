"""A member floods a room (docs/protocol.md §15.6): 20,000 RoomIHave for the room, in a
few socket writes, each announcing 64 ids nobody has.

The victim's session reader only queues a member's room input; the room task judges
the queue one input per step (node/rooms/inputs.py). Bound: at most PEER_INPUTS of
one member's inputs wait, the rest are dropped, and the drop is logged once per
interval, not once per input; the victim's memory grows by a few MiB at most; and the
flooder's own Ping is answered while the flood is still being worked off, because the
reader never waits for room work."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from p2pchat.node.rooms.inputs import PEER_BYTES, PEER_INPUTS
from tests.adversary import wire
from tests.adversary.client import identity, open_session
from tests.adversary.daemon import Daemon
from tests.adversary.memory import MIB, memory

ROOM_IHAVE = 41  # §6
IHAVES = 20_000
IDS = 64  # per announcement, the most §6 allows


def ihave(room_id: bytes, n: int) -> bytes:
    ids = [(n * IDS + i).to_bytes(16, "big") for i in range(IDS)]
    return wire.encode(ROOM_IHAVE, {"topic": room_id, "ids": ids, "rounds": [1] * IDS})


@pytest.mark.slow
async def test_a_members_room_flood_is_bounded_and_probes_are_still_answered(
    daemons: Callable[..., Daemon],
) -> None:
    victim = daemons("victim")
    member = identity()
    victim.add_contact(member.peer_id)
    room = victim.ok({"cmd": "room_create", "name": "flooded"})["room"]["id"]
    victim.ok({"cmd": "room_invite", "room": room, "ids": [member.peer_id]})
    room_id = bytes.fromhex(room)
    attacker = await open_session(victim.port, member)
    assert await attacker.round_trip()
    before = memory(victim.process.pid)

    flood = [ihave(room_id, n) for n in range(IHAVES)]
    start = trio.current_time()
    for at in range(0, IHAVES, 500):  # ~1.2 MB per write: the reader finds hundreds at once
        await attacker.send(*flood[at : at + 500])
    sent = trio.current_time() - start
    with trio.fail_after(30):
        answered = await attacker.round_trip()
    assert answered

    grown = memory(victim.process.pid).grown_since(before)
    assert grown <= PEER_BYTES + 8 * MIB, grown / MIB
    with trio.fail_after(30):
        while "dropped:" not in victim.stderr():
            await trio.sleep(0.05)
    dropped_lines = [line for line in victim.stderr().splitlines() if "dropped:" in line]
    assert len(dropped_lines) == 1, dropped_lines  # one line per interval, not per input
    assert f"{PEER_INPUTS} inputs" in dropped_lines[0] or "bytes) wait" in dropped_lines[0]
    assert victim.alive(), sent
    await attacker.aclose()
