"""Forward secrecy inside a room epoch (docs/protocol.md §15.7): sender chains, the
epoch key deleted once every member holds it, message keys deleted as messages are
read. RoomServices with real stores on disk (the files a thief would copy), wired in
memory; MockClock. The last test: three real nodes over loopback."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2pchat.chat.chains import MAX_SKIP, chained_nonce, message_key, next_chain_key
from p2pchat.chat.gate import Relation
from p2pchat.chat.rooms import RoomKeys, open_room_message_at, seal_room_message
from p2pchat.errors import RemoteProtocolError, StoreError
from p2pchat.node.rooms import RoomService
from p2pchat.node.rooms.service import KEY_NOTICE_AGAIN
from p2pchat.node.rooms.state import MAX_NICKS
from p2pchat.store import open_store
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import RoomEnvelope, RoomGossip, RoomInvite, RoomKeyUpdate
from tests.net.chatpeers import wait_for
from tests.net.fakes import FakeLinks, FakePeers, FakeRelations
from tests.net.roomnet import RoomNet
from tests.net.test_rooms import form_room, rooms_of, start_all, texts

CODEC = Codec()


def envelopes(net: RoomNet, room_id: bytes) -> list[RoomEnvelope]:
    """Every room message that went over the wire (one copy each): what an observer
    of the room's traffic records."""
    found: dict[bytes, RoomEnvelope] = {}
    for _, _, message in net.log:
        if isinstance(message, RoomGossip) and message.topic == room_id and message.payload:
            envelope = CODEC.decode(message.payload)
            assert isinstance(envelope, RoomEnvelope)
            found[envelope.msg_id] = envelope
    return list(found.values())


def epoch_keys(net: RoomNet) -> set[bytes]:
    """Every epoch key that went over the wire (pairwise, inside the sessions)."""
    return {m.key for _, _, m in net.log if isinstance(m, (RoomInvite, RoomKeyUpdate))}


def stolen_keys(net: RoomNet, tmp: Path, index: int, room_id: bytes) -> RoomKeys:
    """A copy of node ``index``'s store files, opened as the node itself would open
    them after a restart: the keys and chains a thief gets."""
    copy = tmp / f"stolen{index}"
    copy.mkdir()
    for path in tmp.glob(f"n{index}.db*"):
        shutil.copy(path, copy / path.name)
    store = open_store(copy / f"n{index}.db")
    service = RoomService(net.ids[index], store, links=FakeLinks(), peers=FakePeers(),
                          relations=FakeRelations(lambda peer: Relation.CONTACT),
                          emit=lambda event: None)  # fmt: skip
    keys = service.state.keys[room_id]
    store.close()
    return keys


def opens(keys: RoomKeys, envelope: RoomEnvelope) -> bool:
    try:
        open_room_message_at(keys, envelope)
    except RemoteProtocolError:
        return False
    return True


async def room_of_three(net: RoomNet, nursery: trio.Nursery) -> bytes:
    """Node 0's room with nodes 1 and 2 in it, the nodes' timers running, settled."""
    await net.run(nursery)
    room_id = net.form([1, 2])
    await net.settle(2)
    return room_id


async def chat(net: RoomNet, room_id: bytes, lines: int) -> list[str]:
    said = []
    for n in range(lines):
        said.append(f"line {n}")
        net.s(n % 3).send(room_id, said[-1])
        await net.settle(0.5)
    return said


@pytest.mark.parametrize("chained", [True, False])
async def test_a_stolen_store_opens_no_room_message_read_before(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, chained: bool
) -> None:
    """Three members chat; then one member's store is copied. With sender chains
    nothing in the copy opens any message sent before, and no epoch key is in its
    files; without (as with an older peer in the room) it opens them all."""
    net = RoomNet(tmp_path, 3, chained=chained)
    async with trio.open_nursery() as nursery:
        room_id = await room_of_three(net, nursery)
        said = await chat(net, room_id, 9)
        assert all(net.texts(i, room_id) == said for i in range(3))
        room = net.s(1).rooms[room_id]
        assert room.chained is chained
        # Every member holds the key, and each says so: nobody keeps it.
        assert (room.key == b"") is chained
        nursery.cancel_scope.cancel()
    sent = envelopes(net, room_id)
    assert len(sent) >= 9
    for index in range(3):
        net.stores[net.keys[index]].close()
        keys = stolen_keys(net, tmp_path, index, room_id)
        opened = [envelope for envelope in sent if opens(keys, envelope)]
        if chained:
            assert opened == []
        else:  # every line (the last epoch's), and the notices of epochs it was in
            last = max(envelope.epoch for envelope in sent)
            assert {e.msg_id for e in sent if e.epoch == last} <= {e.msg_id for e in opened}
        raw = b"".join(path.read_bytes() for path in tmp_path.glob(f"n{index}.db*"))
        assert any(key in raw for key in epoch_keys(net)) is not chained


async def test_a_member_away_keeps_the_key_alive_until_it_comes_back(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, 3)
    async with trio.open_nursery() as nursery:
        room_id = await room_of_three(net, nursery)
        assert all(net.s(i).rooms[room_id].key == b"" for i in range(3))
        # Carol goes away; ann re-keys before each of two lines (her budget is spent).
        away = net.keys[2]
        net.online.discard(away)
        for i in (0, 1):
            net.cut(i, 2)
        net.s(0)._membership.rekey_messages = 0
        start = net.s(0).rooms[room_id].epoch
        said = ["while carol is away", "and again"]
        for line in said:
            net.s(0).send(room_id, line)
            await net.settle(2)
        epoch = net.s(0).rooms[room_id].epoch
        assert epoch == start + 2
        for i in (0, 1):
            room = net.s(i).rooms[room_id]
            assert room.epoch == epoch and room.key != b""  # carol may still need it
            assert net.texts(i, room_id) == said
            kept = net.s(i).state.keys[room_id]
            assert all(e.key for e in kept.keys(start + 1) + kept.keys(start + 2))
        net.s(0)._membership.rekey_messages = 1_000
        # Carol comes back: she is given the key, reads what she missed, says she holds
        # it, and then nobody keeps it any more.
        net.online.add(away)
        for i in (0, 1):
            net.heal(i, 2)
        await net.settle(5)
        assert net.texts(2, room_id) == said
        for i in range(3):
            room = net.s(i).rooms[room_id]
            assert room.epoch == epoch and room.key == b""
            # Both keys she missed: she said she holds each, so nobody keeps either.
            rows = net.stores[net.keys[i]].room_keys(room_id)
            assert [row.key for row in rows if row.epoch > start] == [b"", b""]
        nursery.cancel_scope.cancel()
    net.close()


async def test_chains_outlive_a_restart_late_messages_included(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    net = RoomNet(tmp_path, 3)
    async with trio.open_nursery() as nursery:
        room_id = await room_of_three(net, nursery)
        # Ann writes two lines while bob's sessions are cut; he gets the second first.
        for i in (0, 2):
            net.cut(i, 1)
        first = net.s(0).send(room_id, "first").msg_id
        second = net.s(0).send(room_id, "second").msg_id
        net.pump()
        payloads = dict(net.stores[net.keys[0]].room_envelopes(room_id, [first, second]))
        net.s(1).receive(net.keys[0], RoomGossip(room_id, second, 1, payloads[second]))
        net.pump()
        assert net.texts(1, room_id) == ["second"]
        assert net.s(1).state.keys[room_id].chains.skipped() == 1
        nursery.cancel_scope.cancel()
    # Bob restarts: the key of the line he skipped is still there, from his store.
    restarted = net.start(1)
    assert restarted.state.keys[room_id].chains.skipped() == 1
    restarted.receive(net.keys[0], RoomGossip(room_id, first, 1, payloads[first]))
    assert net.texts(1, room_id) == ["first", "second"]
    assert restarted.state.keys[room_id].chains.skipped() == 0
    net.close()


async def test_a_room_with_an_older_peer_keeps_plain_epochs(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """An epoch is chained only if every member's sessions offered the feature: one
    that never did gets epochs it can read, whose keys stay (as before §15.7)."""
    net = RoomNet(tmp_path, 3)
    net.stores[net.keys[0]].set_peer_features(net.keys[2], [], now=2)  # carol: older
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        room_id = net.form([1])
        await net.settle(1)
        assert net.s(0).rooms[room_id].chained
        net.s(0).invite(room_id, net.keys[2])
        net.pump()
        net.s(2).join(room_id)
        await net.settle(2)
        said = await chat(net, room_id, 3)
        for i in range(3):
            room = net.s(i).rooms[room_id]
            assert not room.chained and room.key != b""
            assert net.texts(i, room_id) == said
        nursery.cancel_scope.cancel()
    net.close()


async def test_a_member_cannot_make_others_store_unbounded_skipped_keys(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A hostile member writes far ahead in its chain: more than MAX_SKIP ahead is
    refused; within it, the skipped keys are bounded; the room goes on."""
    net = RoomNet(tmp_path, 3)
    async with trio.open_nursery() as nursery:
        room_id = await room_of_three(net, nursery)
        mallory = net.s(2)
        room = mallory.rooms[room_id]
        chain = mallory.state.keys[room_id].chains.get((room.epoch, room.key_id, net.keys[2]))
        assert chain is not None
        before = net.s(0).refused
        for jump, text in ((MAX_SKIP + 5, "too far"), (MAX_SKIP - 1, "far")):
            index = chain.next_index + jump
            chain_key = chain.chain_key
            for _ in range(jump):
                chain_key = next_chain_key(chain_key)
            msg_id = bytes([jump % 256]) * 16
            envelope = seal_room_message(net.ids[2], room, msg_id, room.clock + 1, 1, text,
                                         chained_nonce(index, b"n" * 16),
                                         message_key=message_key(chain_key))  # fmt: skip
            net.s(0).receive(net.keys[2], RoomGossip(room_id, msg_id, 1, CODEC.encode(envelope)))
            net.pump()
        assert net.s(0).refused == before + 1
        assert net.texts(0, room_id) == ["far"]
        assert net.s(0).state.keys[room_id].chains.skipped() <= MAX_SKIP
        net.s(1).send(room_id, "still here")
        await net.settle(1)
        assert sorted(net.texts(0, room_id)) == ["far", "still here"]
        nursery.cancel_scope.cancel()
    net.close()


async def test_real_nodes_chain_their_epochs_and_drop_the_keys(tmp_path: Path) -> None:
    """Three nodes over loopback: their sessions offer room-chains/1, so the epochs they
    make are chained, and once everyone has taken part nobody keeps the epoch key."""
    async with trio.open_nursery() as nursery:
        peers = await start_all(tmp_path, nursery, 3)
        room_id = await form_room(peers)
        rooms_of(peers[1]).send(room_id, "hello")
        await wait_for(lambda: all(texts(p, room_id) == ["hello"] for p in peers), 60, "hello")

        def keys_gone() -> bool:
            views = [rooms_of(p).rooms[room_id] for p in peers]
            return all(v.chained and v.key == b"" for v in views)

        await wait_for(keys_gone, 60, "every member's key notice")
        for peer in peers:
            assert peer.store is not None
            stored = peer.store.room_keys(room_id)[0]
            assert stored.chained and stored.key == b"" and len(stored.holders) == 3
        nursery.cancel_scope.cancel()


async def test_a_message_the_store_refused_can_be_read_when_it_comes_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain moves past a message only once the message is stored: a write that
    fails (not for a full disk: the message is dropped, to come again by catch-up after
    a restart) leaves its key, also when the author's next message is stored, so the
    copy that comes again opens."""
    net = RoomNet(tmp_path, 2)
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        room_id = net.form([1])
        await net.settle(1)
        bob_store = net.stores[net.keys[1]]
        original = bob_store.add_room_message

        def broken(**fields: Any) -> Any:
            raise StoreError("database is locked")

        monkeypatch.setattr(bob_store, "add_room_message", broken)
        dropped = net.s(0).send(room_id, "dropped").msg_id
        net.pump()
        monkeypatch.setattr(bob_store, "add_room_message", original)
        net.s(0).send(room_id, "next")
        net.pump()
        assert net.texts(1, room_id) == ["next"]
        nursery.cancel_scope.cancel()
    [(_, payload)] = net.stores[net.keys[0]].room_envelopes(room_id, [dropped])
    restarted = net.start(1)
    restarted.receive(net.keys[0], RoomGossip(room_id, dropped, 1, payload))
    assert sorted(net.texts(1, room_id)) == ["dropped", "next"]
    net.close()


async def test_a_member_whose_notice_was_lost_says_it_again_when_given_the_key(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Carol's room messages are lost for a while (her join notice with them): the
    others keep the key. When ann, who still holds it, gives it to her again (a new
    session), carol says she holds it again (not more than every KEY_NOTICE_AGAIN),
    and then nobody keeps it."""
    net = RoomNet(tmp_path, 3)
    carol = net.keys[2]
    async with trio.open_nursery() as nursery:
        await net.run(nursery)
        room_id = net.s(0).create("r").room_id
        net.s(0).invite(room_id, net.keys[1], carol)
        net.pump()
        net.s(1).join(room_id)
        net.s(2).join(room_id)

        def lost(src: bytes, dst: bytes, message: Any) -> bool:
            return src == carol and isinstance(message, RoomGossip)

        for _ in range(40):
            net.pump(hold=lost)
            net.queue = [item for item in net.queue if not lost(*item)]
            await trio.sleep(0.05)
        assert all(net.s(i).rooms[room_id].key != b"" for i in (0, 1))
        await trio.sleep(KEY_NOTICE_AGAIN)
        net.heal(0, 2)  # a new session: ann gives carol the keys she holds
        await net.settle(3)
        assert all(net.s(i).rooms[room_id].key == b"" for i in range(3))
        nursery.cancel_scope.cancel()
    net.close()


async def test_a_member_is_named_by_the_nick_its_room_messages_carry(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A fellow member we see no presence of (not our contact, in private discovery)
    is called by the nick its latest room message carried (§15.2 "Nick"); one a
    presence record could not carry is ignored."""
    net = RoomNet(tmp_path, 3)
    for index, nick in enumerate(("ann", "bob", "cat\x07")):
        net.s(index).own_nick = lambda nick=nick: nick  # type: ignore[misc]
    async with trio.open_nursery() as nursery:
        room_id = await room_of_three(net, nursery)  # the join notices carry them
        assert net.s(2).nick_of(net.keys[1]) == "bob"
        assert net.s(1).nick_of(net.keys[0]) == "ann"
        assert net.s(0).nick_of(net.keys[2]) == ""  # a control character: not a nick
        net.s(1).own_nick = lambda: "bobby"
        net.s(1).send(room_id, "call me bobby")
        await net.settle(1)
        assert net.s(2).nick_of(net.keys[1]) == "bobby"
        # Bounded: the newest MAX_NICKS authors' nicks stay.
        for n in range(MAX_NICKS + 100):
            net.s(2).state.heard_nick(n.to_bytes(32, "big"), f"n{n}")
        assert len(net.s(2).state.nicks) == MAX_NICKS
        assert net.s(2).nick_of((MAX_NICKS + 99).to_bytes(32, "big")) == f"n{MAX_NICKS + 99}"
        nursery.cancel_scope.cancel()
    net.close()
