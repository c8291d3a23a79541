"""What strangers and hostile members can make a node spend through rooms, and its bound.

In-process (tests/net/roomnet.py): the attacks are room messages handed straight to a
RoomService, as a session would. Each test attacks and asserts a number. Rate bounds
run on trio's MockClock, so "per second" is exact.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
import trio.testing

import p2pchat.node.rooms.broadcast as room_broadcast
from p2pchat.chat.rooms import MAX_KEYS_PER_EPOCH, _signed_bytes
from p2pchat.identity import Identity
from p2pchat.node.rooms import (
    LOG_INTERVAL,
    MAX_PARKED,
    MAX_PENDING_INVITES,
    PARK_SECONDS,
    REFUSAL_BURST,
    REFUSAL_RATE,
)
from p2pchat.wire.messages import (
    RoomDigest,
    RoomEnvelope,
    RoomGossip,
    RoomGraft,
    RoomIHave,
    RoomInvite,
    RoomKeyUpdate,
    RoomText,
)
from tests.net.roomnet import CODEC, RoomNet


def signed(identity: Identity, room_id: bytes, epoch: int, msg_id: bytes) -> RoomEnvelope:
    """An envelope its author really signed, around a box that opens with no key."""
    unsigned = RoomEnvelope(room_id=room_id, epoch=epoch, msg_id=msg_id,
                            author=identity.public_key, nonce=b"n" * 24, box=bytes(40),
                            signature=bytes(64))  # fmt: skip
    return replace(unsigned, signature=identity.signing_key.sign(_signed_bytes(unsigned)).signature)


def out_of_range(envelope: RoomEnvelope, msg_id: bytes) -> bytes:
    body = {f.name: getattr(envelope, f.name) for f in dataclasses.fields(RoomEnvelope)}
    body.update(msg_id=msg_id, epoch=2**63)
    packed = msgpack.packb([RoomEnvelope.TYPE_ID, body])
    assert isinstance(packed, bytes)
    return packed


def gossip(envelope: RoomEnvelope) -> RoomGossip:
    return RoomGossip(envelope.room_id, envelope.msg_id, 1, CODEC.encode(envelope))


class Counter:
    """Wraps a function node/rooms/broadcast.py calls and counts its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        original = getattr(room_broadcast, name)

        def counted(*args: Any) -> Any:
            self.calls += 1
            return original(*args)

        monkeypatch.setattr(room_broadcast, name, counted)


def room_log_lines(caplog: pytest.LogCaptureFixture, peer: Identity) -> int:
    return sum(1 for r in caplog.records if r.name == "p2pchat.rooms" and peer.peer_id in r.message)


async def test_a_refused_room_message_is_not_stored_passed_on_or_served(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    a, b, c = net.keys
    room_id = net.form((1, 2))
    epoch = net.s(0).rooms[room_id].epoch
    target = os.urandom(16)  # an id a hostile member saw announced, say
    other = signed(net.ids[1], room_id, epoch, os.urandom(16))
    bad = [
        RoomGossip(room_id, target, 1, b"\x00" * 10),  # not a message at all
        RoomGossip(room_id, target, 1, CODEC.encode(other)),  # under another msg_id
        RoomGossip(room_id, target, 1, CODEC.encode(RoomText(clock=1, text="hi"))),
        # The bare body, without the type id: §14 wants the whole encoded message.
        RoomGossip(room_id, target, 1, CODEC.encode(other)[2:]),
        gossip(signed(net.ids[1], room_id, epoch, target)),  # signed, but the box is bad
        # An epoch out of range inside the payload: a refused room message, not a
        # malformed RoomGossip (the session never decodes the payload).
        RoomGossip(room_id, target, 1, out_of_range(other, target)),
    ]
    cached = net.s(0).broadcasts.trees[room_id].memory["cache"]  # the join notices
    net.log.clear()
    for message in bad:
        net.s(0).receive(b, message)
        net.s(0).receive(b, replace(message, repair=True))
    net.pump()
    tree = net.s(0).broadcasts.trees[room_id]
    assert not tree.has(target) and tree.memory["cache"] == cached
    assert net.texts(0, room_id) == []
    passed_on = [m for src, _, m in net.log if src == a and isinstance(m, (RoomGossip, RoomIHave))]
    assert passed_on == []
    assert net.s(0).refused == 2 * len(bad)
    # Nor served: c asks for it by id and by digest.
    net.s(0).receive(c, RoomGraft(room_id, (target,)))
    net.s(0).receive(c, RoomDigest(room_id, ()))
    assert [m for m in net.sent_to(2, RoomGossip) if m.msg_id == target] == []
    net.queue.clear()
    # The genuine message under that id still gets through, and on to the others.
    room_c = net.s(2).rooms[room_id]
    genuine, _ = net.s(2)._seal(room_c, target, room_c.clock + 1, 1, "real")
    net.s(0).receive(c, gossip(genuine))
    net.pump()
    assert net.texts(0, room_id) == ["real"]
    # Pushed or announced to b (whether a's link to b is eager depends on the join
    # notices' pruning): once a's and b's timers have run, b has it too.
    later = trio.current_time() + 1
    for index in (0, 1, 0, 1):
        net.s(index).broadcasts.tick(later)
        net.pump()
        later += 1
    assert net.texts(1, room_id) == ["real"]
    net.close()


async def test_a_strangers_room_traffic_costs_no_signature_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="p2pchat.rooms")
    net = RoomNet(tmp_path, 3)
    stranger = net.ids[2]
    room_id = net.form([1])
    opened = Counter(monkeypatch, "open_room_message_at")
    checked = Counter(monkeypatch, "check_room_envelope")
    tree = net.s(0).broadcasts.trees[room_id]
    before = dict(tree.memory)
    epoch = net.s(0).rooms[room_id].epoch
    net.log.clear()
    for i in range(10_000):
        envelope = signed(stranger, room_id, epoch + i % 3, os.urandom(16))
        net.s(0).receive(stranger.public_key, gossip(envelope))
    for _ in range(1_000):
        ids = tuple(os.urandom(16) for _ in range(64))
        net.s(0).receive(stranger.public_key, RoomIHave(room_id, ids, (1,) * 64))
        net.s(0).receive(stranger.public_key, RoomGraft(room_id, ids))
        net.s(0).receive(stranger.public_key, RoomDigest(room_id, ids, want_reply=True))
    assert opened.calls == checked.calls == 0
    assert net.s(0).refused == 13_000
    assert tree.memory == before and net.s(0).broadcasts.parked.get(room_id, {}) == {}
    assert net.sent_to(2, object) == []  # not a word back
    assert room_log_lines(caplog, stranger) == 1  # one line per peer per interval
    net.close()


async def test_a_hostile_member_gets_a_bounded_number_of_costly_checks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    caplog.set_level(logging.INFO, logger="p2pchat.rooms")
    net = RoomNet(tmp_path, 3)
    hostile = net.ids[1]
    room_id = net.form((1, 2))
    epoch = net.s(0).rooms[room_id].epoch
    opened = Counter(monkeypatch, "open_room_message_at")
    attack = [gossip(signed(hostile, room_id, epoch, os.urandom(16))) for _ in range(10_000)]
    for message in attack[:5_000]:
        net.s(0).receive(hostile.public_key, message)
    assert opened.calls == REFUSAL_BURST  # then its room messages are dropped unchecked
    assert net.s(0).unchecked == 5_000 - REFUSAL_BURST
    await trio.sleep(10)
    for message in attack[5_000:]:
        net.s(0).receive(hostile.public_key, message)
    assert opened.calls == REFUSAL_BURST + int(10 * REFUSAL_RATE)
    assert room_log_lines(caplog, hostile) == 1
    await trio.sleep(LOG_INTERVAL)
    net.s(0).receive(hostile.public_key, attack[0])
    assert room_log_lines(caplog, hostile) == 2  # "(and N more)" once per interval
    assert "more since the last line" in caplog.records[-1].message
    # Another member's messages are judged as usual meanwhile.
    net.pump()
    net.s(2).send(room_id, "still heard")
    net.pump()
    assert net.texts(0, room_id) == ["still heard"]
    assert net.texts(0, room_id) == net.texts(1, room_id)
    net.close()


async def test_messages_waiting_for_their_key_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, 2)
    hostile = net.ids[1]
    room_id = net.form([1])
    epoch = net.s(0).rooms[room_id].epoch
    checked = Counter(monkeypatch, "check_room_envelope")
    for i in range(10_000):  # "from an epoch whose key is on its way": never
        envelope = signed(hostile, room_id, epoch + 1 + i % 1000, os.urandom(16))
        net.s(0).receive(hostile.public_key, gossip(envelope))
    parked = net.s(0).broadcasts.parked[room_id]
    assert len(parked) == MAX_PARKED
    assert checked.calls == MAX_PARKED  # a full car park checks nothing more
    beyond = signed(hostile, room_id, epoch + 2_000_000, os.urandom(16))
    net.s(0).receive(hostile.public_key, gossip(beyond))  # no key can come that far ahead
    assert len(parked) == MAX_PARKED and checked.calls == MAX_PARKED
    await trio.sleep(PARK_SECONDS + 1)
    late = signed(hostile, room_id, epoch + 1, os.urandom(16))
    net.s(0).receive(hostile.public_key, gossip(late))
    assert len(net.s(0).broadcasts.parked[room_id]) == 1  # the old ones waited too long
    assert net.texts(0, room_id) == []
    net.close()


async def test_a_hostile_member_cannot_grow_the_keys_of_an_epoch(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 3)
    a, b, _c = net.keys
    room_id = net.form((1, 2))
    room = net.s(0).rooms[room_id]
    members = tuple(sorted(room.members))
    for _ in range(1_000):  # fresh keys for the current epoch, as if changes raced
        update = RoomKeyUpdate(room_id=room_id, epoch=room.epoch, key=os.urandom(32),
                               members=members)  # fmt: skip
        net.s(0).receive(b, update)
    keys = net.s(0).state.keys[room_id]
    assert len(keys.keys(room.epoch)) == MAX_KEYS_PER_EPOCH
    stored = [row for row in net.stores[a].room_keys(room_id) if row.epoch == room.epoch]
    assert len(stored) == MAX_KEYS_PER_EPOCH
    assert keys.entry(room.epoch, net.s(0).rooms[room_id].key_id)  # the one in use stays
    for i in range(1_000):  # and new epochs, one after another
        update = RoomKeyUpdate(room_id=room_id, epoch=room.epoch + 1 + i, key=os.urandom(32),
                               members=members)  # fmt: skip
        net.s(0).receive(b, update)
    rows = net.stores[a].room_keys(room_id)
    assert len(keys) == 64 and len({row.epoch for row in rows}) <= 64
    assert len(rows) <= 64 * MAX_KEYS_PER_EPOCH
    net.close()


async def test_pending_invitations_are_bounded(tmp_path: Path) -> None:
    net = RoomNet(tmp_path, 2)
    inviter, me = net.keys
    for i in range(1_000):
        invitation = RoomInvite(room_id=i.to_bytes(16, "big"), name=f"room {i}", epoch=1,
                                key=os.urandom(32), members=tuple(sorted((inviter, me))),
                                inviter=inviter)  # fmt: skip
        net.s(1).receive(inviter, invitation)
    assert len(net.s(1).invitations()) == MAX_PENDING_INVITES
    assert len(net.stores[me].rooms()) == MAX_PENDING_INVITES
    assert len(net.events[me]) == MAX_PENDING_INVITES
    assert net.s(1).refused == 1_000 - MAX_PENDING_INVITES
    net.close()
