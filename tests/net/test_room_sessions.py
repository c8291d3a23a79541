"""Rooms across disconnections, invitations and joining (docs/protocol.md §14.2, §15.3).

In-process (tests/net/roomnet.py), on trio's MockClock where timers matter, with the
periodic digest switched off: whatever catches a member up here is the session or
presence event under test, not the 30 s anti-entropy.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import trio
import trio.testing

from p2pchat.chat.gate import Relation
from p2pchat.mesh.plumtree import ROOM_MESSAGES, BroadcastConfig
from p2pchat.node.events import RoomInvited
from p2pchat.node.rooms import MAX_INVITE_SENDS, PAIRWISE_RETRY
from p2pchat.node.rooms.membership import INVITE_RESEND
from p2pchat.node.rooms.outbox import PAIRWISE_RETRY_MAX
from p2pchat.wire.messages import RoomGossip, RoomGraft, RoomInvite, RoomKeyUpdate
from tests.net.roomnet import CODEC, RoomNet

NO_PERIODIC = BroadcastConfig(anti_entropy_interval=None)


async def wait_until(net: RoomNet, done: object, limit: float = 10.0) -> float:
    """Pump and let virtual time pass until ``done()``; how long it took."""
    assert callable(done)
    start = trio.current_time()
    with trio.fail_after(limit):
        while not done():
            await net.settle(0.05)
    return trio.current_time() - start


async def test_a_member_whose_session_broke_briefly_catches_up_when_it_opens_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, 3, config=NO_PERIODIC)
    room_id = net.form((1, 2))
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        await net.settle(3)  # the digests of the formation are out
        net.cut(1, 0)  # b's sessions break; the mesh never notices
        net.cut(1, 2)
        for i in range(5):
            net.s(0).send(room_id, f"while cut {i}")
        await net.settle(2)
        assert net.texts(1, room_id) == []
        assert net.texts(2, room_id) == [f"while cut {i}" for i in range(5)]
        net.heal(1, 0)
        took = await wait_until(net, lambda: len(net.texts(1, room_id)) == 5)
        # One digest exchange at once, long before a periodic digest (15 s at the
        # earliest) could have fired, had it been on.
        assert took <= NO_PERIODIC.digest_gap
        assert net.texts(1, room_id) == net.texts(0, room_id)
        nursery.cancel_scope.cancel()
    net.close()


async def test_a_member_taken_for_offline_catches_up_when_seen_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The mesh declared b dead for a while (its sessions stayed up, so no session
    # opens): a and c stopped pushing to it. b does not know it missed anything; the
    # digest a sends it on seeing it again asks for b's, whose answer repairs b.
    net = RoomNet(tmp_path, 3, config=NO_PERIODIC)
    room_id = net.form((1, 2))
    b = net.keys[1]
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        await net.settle(3)
        for index in (0, 2):
            net.s(index).peer_offline(b)
        for i in range(5):
            net.s(0).send(room_id, f"while away {i}")
        await net.settle(2)
        assert net.texts(1, room_id) == []
        net.s(0).peer_online(b)
        took = await wait_until(net, lambda: len(net.texts(1, room_id)) == 5)
        assert took <= 2 * NO_PERIODIC.digest_gap
        nursery.cancel_scope.cancel()
    net.close()


async def test_a_member_gets_the_keys_it_missed_when_a_session_opens(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, 4, config=NO_PERIODIC)
    room_id = net.form((1, 2))
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        await net.settle(3)
        net.cut(2, 0)
        net.cut(2, 1)
        net.s(0).invite(room_id, net.keys[3])  # c misses the new epoch
        net.pump()
        net.s(3).join(room_id)
        net.pump()
        net.s(3).send(room_id, "under the new key")
        await net.settle(2)
        assert net.s(2).rooms[room_id].epoch < net.s(0).rooms[room_id].epoch
        net.heal(2, 1)  # a session with any member that holds the key will do
        took = await wait_until(net, lambda: net.texts(2, room_id) == ["under the new key"])
        assert took <= NO_PERIODIC.digest_gap
        assert net.s(2).rooms[room_id].epoch == net.s(0).rooms[room_id].epoch
        refused = [net.s(i).refused for i in range(4)]
        net.heal(2, 0)  # keys re-sent that c holds already are no-ops, not refusals
        await net.settle(3)
        assert [net.s(i).refused for i in range(4)] == refused
        nursery.cancel_scope.cancel()
    net.close()


async def test_no_room_traffic_reaches_an_invitee_before_it_joins(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    room_id = net.form([1])
    for i in range(3):
        net.s(1).send(room_id, f"before {i}")
    net.pump()
    net.log.clear()
    net.s(0).invite(room_id, net.keys[2])
    net.pump()
    net.s(1).send(room_id, "while c is invited")
    net.pump()
    assert net.sent_to(2, ROOM_MESSAGES) == []  # no digest, push or announcement
    assert len(net.sent_to(2, RoomInvite)) == 1  # the invitation ...
    assert len(net.sent_to(2, RoomKeyUpdate)) == 0  # (no change since)
    # Joining is said by taking part: an empty graft to each member online.
    net.s(2).join(room_id)
    net.pump()
    grafts = [m for src, _, m in net.log if isinstance(m, RoomGraft) and src == net.keys[2]]
    assert {m.ids for m in grafts} == {()} and len(grafts) == 2
    net.s(1).send(room_id, "welcome")
    net.pump()
    assert net.texts(2, room_id) == ["while c is invited", "welcome"]
    # Its catch-up brought it nothing it cannot read (what was said before it came).
    epochs = {CODEC.decode(m.payload).epoch for m in net.sent_to(2, RoomGossip)}
    assert epochs == {net.s(0).rooms[room_id].epoch}
    assert net.s(2).refused == 0
    net.close()


async def test_a_pending_invitation_is_sent_again_when_the_invitee_comes_back(
    tmp_path: Path,
) -> None:
    net = RoomNet(tmp_path, 3)
    a, _b, c = net.keys
    room_id = net.form([1])
    net.online.discard(c)
    net.s(0).invite(room_id, c)  # lost: c is away
    net.pump()
    assert net.events[c] == []
    net.online.add(c)
    net.s(0).session_up(c)
    net.pump()
    assert [type(e) for e in net.events[c]] == [RoomInvited]
    invitation = net.s(2).invitations()[0]
    assert invitation.epoch == net.s(0).rooms[room_id].epoch
    # Unanswered, it is offered again at each return, but not forever.
    for _ in range(3 * MAX_INVITE_SENDS):
        net.s(0).session_down(c)
        net.s(0).session_up(c)
        net.pump()
    assert len(net.sent_to(2, RoomInvite)) == MAX_INVITE_SENDS
    assert len(net.events[c]) == 1  # repeats are no-ops on the invitee's side
    # Once it takes part, nothing is re-sent.
    net.s(2).join(room_id)
    net.pump()
    net.log.clear()
    net.s(0).session_up(c)
    net.pump()
    assert net.sent_to(2, RoomInvite) == []
    assert a in net.s(2).rooms[room_id].members
    net.close()


async def test_an_answered_invitation_is_not_sent_again(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    c = net.keys[2]
    room_id = net.form([1])
    net.s(0).invite(room_id, c)
    net.pump()
    net.s(2).decline(room_id)
    net.pump()
    net.log.clear()
    net.s(0).session_up(c)
    net.pump()
    assert net.sent_to(2, RoomInvite) == []
    net.close()


async def test_invitations_come_only_from_contacts(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 2)
    stranger = net.keys[0]
    net.relation = lambda me, peer: Relation.STRANGER if peer == stranger else Relation.CONTACT
    room_id = net.s(0).create("from a stranger").room_id
    room = net.s(0).rooms[room_id]
    invitation = RoomInvite(room_id=room_id, name=room.name, epoch=1, key=b"k" * 32,
                            members=tuple(sorted((stranger, net.keys[1]))),
                            inviter=stranger)  # fmt: skip
    net.s(1).receive(stranger, invitation)
    assert net.s(1).invitations() == [] and net.events[net.keys[1]] == []
    assert net.stores[net.keys[1]].rooms() == []
    assert net.s(1).refused == 1
    net.close()


async def test_a_newcomer_takes_the_invitations_clock_as_it_is(tmp_path: Path) -> None:
    # A room past clock 1,000,000: a newcomer that measured the invitation's clock
    # against its own 0 would ignore it, then refuse every message of the room.
    net = RoomNet(tmp_path, 3)
    room_id = net.form([1])
    for index in (0, 1):
        service = net.s(index)
        service.rooms[room_id] = dataclasses.replace(service.rooms[room_id], clock=5_000_000)
    net.s(0).invite(room_id, net.keys[2])
    net.pump()
    net.start(2)  # a restart before answering keeps the invitation's clock
    room = net.s(2).join(room_id)
    assert room.clock == 5_000_001  # its join notice (§15.3) came right after
    net.pump()
    net.s(1).send(room_id, "at five million and one")
    net.pump()
    assert net.texts(2, room_id) == ["at five million and one"]
    net.s(2).send(room_id, "and mine sorts after it")
    net.pump()
    assert net.texts(0, room_id)[-1] == "and mine sorts after it"
    net.close()


async def test_a_key_re_sent_to_an_invitee_is_a_no_op(tmp_path: Path) -> None:
    # The inviter re-sends the keys it holds when a session opens; by then a member
    # may have left at the same epoch, so the list differs from the invitation's.
    net = RoomNet(tmp_path, 3)
    a, b, c = net.keys
    room_id = net.form([1])
    net.s(0).invite(room_id, c)
    net.pump()
    invitation = net.s(2).invitations()[0]
    smaller = tuple(m for m in invitation.members if m != b)
    again = RoomKeyUpdate(room_id=room_id, epoch=invitation.epoch, key=invitation.key,
                          members=smaller, chained=invitation.chained)  # fmt: skip
    net.s(2).receive(a, again)
    assert net.s(2).refused == 0
    assert net.s(2).invitations() == [invitation]
    net.close()


def refuse_invitations(net: RoomNet, now: Callable[[list[float]], bool]) -> list[float]:
    """The link manager does not take an invitation when ``now(the times it refused
    one so far)`` says so; those times, as they come."""
    refused: list[float] = []

    def refuse(src: bytes, dst: bytes, message: object) -> bool:
        if isinstance(message, RoomInvite) and now(refused):
            refused.append(trio.current_time())
            return True
        return False

    net.refuse = refuse
    return refused


async def test_an_invitation_the_link_did_not_take_is_offered_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """b is online and stays online (no session opens, no presence changes), but the
    link manager did not take the invitation (say, its queue to b was full): it is
    offered again, and b gets it, without waiting for b to come back."""
    net = RoomNet(tmp_path, 2, config=NO_PERIODIC)
    refused = refuse_invitations(net, lambda refused: not refused)  # the first only
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        room_id = net.s(0).create("lab").room_id
        net.s(0).invite(room_id, net.keys[1])
        invited = [e for e in net.events[net.keys[1]] if isinstance(e, RoomInvited)]
        took = await wait_until(
            net, lambda: any(isinstance(e, RoomInvited) for e in net.events[net.keys[1]])
        )
        assert refused and not invited
        assert took <= 2 * PAIRWISE_RETRY
        nursery.cancel_scope.cancel()
    net.close()


async def test_an_invitation_the_link_refuses_for_minutes_still_arrives(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The link manager takes nothing for b for ten minutes (a dial backing off on a
    loaded machine) while no session with b opens or closes: the invitation is still
    offered, less often, and arrives soon after the link takes it again. (It used to
    be given up after a minute, leaving it to a session nothing else would open: one
    member of 200 was never invited.)"""
    net = RoomNet(tmp_path, 2, config=NO_PERIODIC)
    until = trio.current_time() + 600
    refused = refuse_invitations(net, lambda _: trio.current_time() < until)
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        room_id = net.s(0).create("lab").room_id
        net.s(0).invite(room_id, net.keys[1])
        await wait_until(
            net,
            lambda: any(isinstance(e, RoomInvited) for e in net.events[net.keys[1]]),
            limit=600 + 2 * PAIRWISE_RETRY_MAX,
        )
        assert trio.current_time() >= until  # it came after the link took it again
        gaps = [later - earlier for earlier, later in itertools.pairwise(refused)]
        assert max(gaps) <= PAIRWISE_RETRY_MAX  # never stopped trying...
        assert len(refused) < 600 / PAIRWISE_RETRY / 2  # ...and tried less and less often
        nursery.cancel_scope.cancel()
    net.close()


async def test_an_invitation_the_link_took_and_lost_is_sent_again_on_a_timer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The link took the invitation and lost it (a dial that failed after all), and no
    session with b opens or closes afterwards: b is invited all the same, by the
    timed re-send of an unanswered invitation."""
    net = RoomNet(tmp_path, 2, config=NO_PERIODIC)
    between = frozenset(net.keys[:2])
    net.cut_links.add(between)  # sends are taken and never delivered; no session event
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        room_id = net.s(0).create("lab").room_id
        net.s(0).invite(room_id, net.keys[1])
        await net.settle(5)
        assert net.sent_to(1, RoomInvite) and not net.s(1).invitations()
        net.cut_links.discard(between)  # reachable again, and still no session event
        took = await wait_until(net, lambda: bool(net.s(1).invitations()), limit=4 * INVITE_RESEND)
        assert took <= INVITE_RESEND
        assert len(net.sent_to(1, RoomInvite)) == 2  # once, and once again
        nursery.cancel_scope.cancel()
    net.close()
