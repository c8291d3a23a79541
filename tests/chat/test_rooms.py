"""Rooms: sealed, signed room messages, key rotation on membership changes, one order."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import msgpack
import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.chat.rooms import (
    MAX_EPOCH_JUMP,
    Room,
    RoomKeys,
    _aad,
    _signed_bytes,
    apply_key_update,
    apply_leave,
    check_room_envelope,
    gossip_envelope,
    invitation_for,
    invite,
    join,
    leave,
    new_room,
    observe,
    open_room_message,
    remove,
    room_name_problem,
    roster,
    rotate,
    rotator,
    seal_room_message,
    tick,
)
from p2pchat.chat.rules import order_key
from p2pchat.errors import RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    MAX_ROOM_BOX,
    MAX_ROOM_MEMBERS,
    MAX_TEXT_CHARS,
    RoomEnvelope,
    RoomInvite,
    RoomKeyUpdate,
    RoomLeave,
    RoomText,
)

ALICE, BOB, CAROL, MALLORY = (Identity(bytes([n]) * 32) for n in (1, 2, 3, 4))
A, B, C, M = (who.public_key for who in (ALICE, BOB, CAROL, MALLORY))
RID = b"r" * 16
NONCE = b"n" * 24


def key(n: int) -> bytes:
    return bytes([n]) * 32


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def three_members() -> dict[bytes, Room]:
    """Alice creates a room and invites Bob, then Carol; everyone's view of it."""
    alice = new_room("lunch", RID, key(10), A)
    alice, to_bob, updates = invite(alice, A, B, key(11))
    assert updates == []  # nobody else to tell yet
    bob = join(to_bob, B, A)
    alice, to_carol, updates = invite(alice, A, C, key(12))
    assert [who for who, _ in updates] == [B]
    bob = apply_key_update(bob, updates[0][1], A, B)
    carol = join(to_carol, C, A)
    assert alice == dataclasses.replace(bob, rotated_by=A) == dataclasses.replace(carol)
    return {A: alice, B: bob, C: carol}


def keys_of(*rooms: Room) -> RoomKeys:
    keys = RoomKeys(RID)
    for room in rooms:
        keys.add_room(room)
    return keys


def test_round_trip() -> None:
    rooms = three_members()
    envelope = seal_room_message(ALICE, rooms[A], mid(1), 1, 5, "hello room", NONCE)
    check_room_envelope(envelope)  # what a relay does
    assert b"hello room" not in envelope.box
    for member in (B, C):
        text = open_room_message(keys_of(rooms[member]), envelope)
        assert text == RoomText(clock=1, time=5, text="hello room")
    assert (envelope.msg_id, envelope.author, envelope.epoch) == (mid(1), A, 2)


def test_the_longest_text_fits() -> None:
    rooms = three_members()
    text = "\U0001f600" * MAX_TEXT_CHARS
    envelope = seal_room_message(ALICE, rooms[A], mid(1), 1, 2**63 - 1, text, NONCE)
    assert len(envelope.box) <= MAX_ROOM_BOX
    codec = Codec()
    again = codec.decode(codec.encode(envelope))
    assert open_room_message(keys_of(rooms[B]), again).text == text


def test_a_non_member_cannot_read() -> None:
    rooms = three_members()
    envelope = seal_room_message(ALICE, rooms[A], mid(1), 1, 5, "secret", NONCE)
    check_room_envelope(envelope)  # Mallory can carry it...
    with pytest.raises(RemoteProtocolError, match="unknown"):
        open_room_message(RoomKeys(RID), envelope)  # ...but has no key
    guessed = RoomKeys(RID)
    guessed.add(envelope.epoch, key(99), (A, M))
    with pytest.raises(RemoteProtocolError, match="cannot be decrypted") as info:
        open_room_message(guessed, envelope)
    assert info.value.code == "bad-room-message"


@pytest.mark.parametrize(
    "field", ["room_id", "epoch", "msg_id", "author", "nonce", "box", "signature"]
)
def test_tampering_any_field_is_refused(field: str) -> None:
    rooms = three_members()
    envelope = seal_room_message(ALICE, rooms[A], mid(1), 1, 5, "hi", NONCE)
    value = getattr(envelope, field)
    changed: Any = value + 1 if isinstance(value, int) else bytes([value[0] ^ 1]) + value[1:]
    if field == "author":
        changed = B  # a real member key: the signature, not the membership, must fail
    tampered = dataclasses.replace(envelope, **{field: changed})
    with pytest.raises(RemoteProtocolError):
        check_room_envelope(tampered)
    keys = keys_of(rooms[B])
    keys.add(envelope.epoch + 1, key(50), rooms[B].members)  # so a changed epoch is "known"
    with pytest.raises(RemoteProtocolError):
        open_room_message(keys, tampered)


def test_a_member_cannot_re_sign_anothers_box() -> None:
    """Bob takes Alice's box and signs it as his own: the AAD binds the author."""
    rooms = three_members()
    original = seal_room_message(ALICE, rooms[A], mid(1), 1, 5, "alice's", NONCE)
    forged = dataclasses.replace(original, author=B)
    forged = dataclasses.replace(
        forged, signature=BOB.signing_key.sign(_signed_bytes(forged)).signature
    )
    check_room_envelope(forged)  # a valid signature by Bob...
    with pytest.raises(RemoteProtocolError, match="cannot be decrypted"):
        open_room_message(keys_of(rooms[C]), forged)  # ...over a box Bob did not seal


def test_an_author_outside_the_member_list_is_refused() -> None:
    rooms = three_members()
    # Mallory knows the key (say it leaked) but is not a member: her signed message is refused
    stolen = dataclasses.replace(rooms[A], members=rooms[A].members | {M})
    envelope = seal_room_message(MALLORY, stolen, mid(1), 1, 5, "let me in", NONCE)
    check_room_envelope(envelope)
    with pytest.raises(RemoteProtocolError, match="not a member"):
        open_room_message(keys_of(rooms[B]), envelope)
    with pytest.raises(ValueError, match="only a member"):
        seal_room_message(MALLORY, rooms[A], mid(1), 1, 5, "x", NONCE)


def test_a_removed_member_cannot_read_later_messages() -> None:
    rooms = three_members()
    bob_keys = keys_of(rooms[B])
    carol_keys = keys_of(rooms[C])
    before = seal_room_message(ALICE, rooms[A], mid(1), 1, 5, "before", NONCE)

    alice, updates, notice = remove(rooms[A], A, C, key(20))
    assert alice.epoch == rooms[A].epoch + 1 and C not in alice.members
    assert [who for who, _ in updates] == [B]  # Carol gets no key update
    assert notice == RoomLeave(room_id=RID, member=C)
    bob = apply_key_update(rooms[B], updates[0][1], A, B)
    bob_keys.add_room(bob)
    assert apply_leave(rooms[C], notice, A, C) is None  # Carol learns she was removed

    after = seal_room_message(ALICE, alice, mid(2), 2, 6, "after", NONCE)
    assert open_room_message(bob_keys, after).text == "after"
    with pytest.raises(RemoteProtocolError, match="unknown"):
        open_room_message(carol_keys, after)
    # even if Carol guessed the new epoch number, her old key does not open it
    carol_keys.add(after.epoch, rooms[C].key, rooms[C].members)
    with pytest.raises(RemoteProtocolError, match="cannot be decrypted"):
        open_room_message(carol_keys, after)
    # old messages stay readable with the old epoch's key
    assert open_room_message(bob_keys, before).text == "before"
    # and Carol can no longer write at the new epoch
    late = seal_room_message(CAROL, rooms[C], mid(3), 3, 7, "still here?", NONCE)
    assert late.epoch < alice.epoch
    bob_keys.add_room(dataclasses.replace(rooms[B], members=rooms[B].members - {C}))
    with pytest.raises(RemoteProtocolError, match="not a member"):
        open_room_message(bob_keys, late)


def test_forged_or_stale_key_updates_are_refused() -> None:
    rooms = three_members()
    bob = rooms[B]
    fresh = RoomKeyUpdate(room_id=RID, epoch=bob.epoch + 1, key=key(30), members=(A, B, M))
    with pytest.raises(RemoteProtocolError, match="not a member") as info:
        apply_key_update(bob, fresh, M, B)  # from a non-member
    assert info.value.code == "bad-room-update"
    lower = dataclasses.replace(fresh, epoch=bob.epoch - 1, members=(A, B))
    with pytest.raises(RemoteProtocolError, match="older"):
        apply_key_update(bob, lower, A, B)
    same = dataclasses.replace(fresh, epoch=bob.epoch, members=(A, B, C))
    with pytest.raises(RemoteProtocolError, match="already set"):
        apply_key_update(bob, dataclasses.replace(same, key=key(31)), C, B)  # C > A
    without_me = dataclasses.replace(fresh, members=(A, C))
    with pytest.raises(RemoteProtocolError, match="we are not"):
        apply_key_update(bob, without_me, A, B)
    without_sender = dataclasses.replace(fresh, members=(B, C))
    with pytest.raises(RemoteProtocolError, match="sender is not in"):
        apply_key_update(bob, without_sender, A, B)
    too_far = dataclasses.replace(fresh, epoch=bob.epoch + MAX_EPOCH_JUMP + 1, members=(A, B))
    with pytest.raises(RemoteProtocolError, match="too far"):
        apply_key_update(bob, too_far, A, B)
    other_room = dataclasses.replace(fresh, room_id=b"x" * 16, members=(A, B))
    with pytest.raises(RemoteProtocolError, match="another room"):
        apply_key_update(bob, other_room, A, B)
    # a good one is applied, and applying it again changes nothing
    good = dataclasses.replace(fresh, members=(A, B, C))
    after = apply_key_update(bob, good, C, B)
    assert (after.epoch, after.key, after.rotated_by) == (bob.epoch + 1, key(30), C)
    assert apply_key_update(after, good, C, B) == after


def test_concurrent_rotations_converge_on_the_lower_sender() -> None:
    rooms = three_members()
    alice, from_alice = rotate(rooms[A], A, key(40))
    carol, from_carol = rotate(rooms[C], C, key(41))
    assert alice.epoch == carol.epoch
    bob = apply_key_update(rooms[B], dict(from_carol)[B], C, B)
    bob = apply_key_update(bob, dict(from_alice)[B], A, B)  # A < C wins the tie
    carol = apply_key_update(carol, dict(from_alice)[C], A, C)
    with pytest.raises(RemoteProtocolError):
        apply_key_update(alice, dict(from_carol)[A], C, A)
    assert alice.key == bob.key == carol.key == key(40)
    # Bob keeps both keys of the epoch: a message sealed under the losing key is readable
    keys = keys_of(rooms[B])
    keys.add(bob.epoch, key(41), bob.members)
    keys.add_room(bob)
    lost = seal_room_message(CAROL, dataclasses.replace(bob, key=key(41)), mid(1), 1, 1, "x", NONCE)
    assert open_room_message(keys, lost).text == "x"


def test_leaving_and_the_rotation_that_follows() -> None:
    rooms = three_members()
    notice, recipients = leave(rooms[C], C)
    assert recipients == sorted([A, B])
    alice = apply_leave(rooms[A], notice, C, A)
    bob = apply_leave(rooms[B], notice, C, B)
    assert alice is not None and bob is not None
    assert alice.members == bob.members == frozenset({A, B})
    assert apply_leave(alice, notice, C, A) == alice  # idempotent
    with pytest.raises(RemoteProtocolError):
        apply_leave(rooms[A], notice, B, A)  # Bob cannot announce Carol's leaving
    assert rotator(alice) == min(A, B)
    alice, updates = rotate(alice, A, key(60))
    bob = apply_key_update(bob, dict(updates)[B], A, B)
    assert bob.key == key(60) and C not in bob.members


def test_join_checks_the_invitation() -> None:
    room = new_room("r", RID, key(1), A)
    _, invitation, _ = invite(room, A, B, key(2))
    with pytest.raises(RemoteProtocolError, match="not the inviter"):
        join(invitation, B, M)
    with pytest.raises(RemoteProtocolError, match="leaves out"):
        join(invitation, C, A)
    bad_name = dataclasses.replace(invitation, name="\x1b[2Jboo")
    with pytest.raises(RemoteProtocolError, match="control character") as info:
        join(bad_name, B, A)
    assert info.value.code == "bad-room-invite"


def test_several_invited_at_once_share_one_epoch() -> None:
    alice = new_room("lunch", RID, key(10), A)
    alice, to_bob, updates = invite(alice, A, B, key(11))
    bob = join(to_bob, B, A)
    after, invitation, updates = invite(alice, A, {C, M}, key(12))
    assert after.epoch == alice.epoch + 1 and after.members == {A, B, C, M}
    assert [who for who, _ in updates] == [B]  # the newcomers get the invitation instead
    assert set(invitation.members) == {A, B, C, M}
    assert join(invitation, C, A) == join(invitation, M, A) == after
    assert apply_key_update(bob, updates[0][1], A, B).members == after.members
    with pytest.raises(ValueError, match="already"):
        invite(after, A, {B, key(13)}, key(14))  # one of them is a member: nobody is added
    with pytest.raises(ValueError, match="nobody"):
        invite(after, A, set(), key(14))
    with pytest.raises(ValueError, match="32-byte"):
        invite(after, A, {b"short", key(13)}, key(14))


def test_an_invitation_is_the_room_as_it_is_now() -> None:
    rooms = three_members()
    after, invitation, _ = invite(rooms[A], A, M, key(80))
    assert invitation_for(after, A) == invitation
    assert join(invitation_for(after, A), M, A) == after  # what the newcomer opens


def test_local_misuse_raises_value_error() -> None:
    room = new_room("r", RID, key(1), A)
    with pytest.raises(ValueError):
        new_room("", RID, key(1), A)
    with pytest.raises(ValueError):
        new_room("x", b"short", key(1), A)
    with pytest.raises(ValueError, match="fresh key"):
        invite(room, A, B, key(1))
    with pytest.raises(ValueError, match="only a member"):
        invite(room, M, B, key(2))
    with pytest.raises(ValueError, match="already"):
        invite(room, A, A, key(2))
    with pytest.raises(ValueError, match="leave"):
        remove(room, A, A, key(2))
    with pytest.raises(ValueError, match="empty"):
        seal_room_message(ALICE, room, mid(1), 1, 1, "  ", NONCE)
    assert room_name_problem("two\nlines") is not None
    assert room_name_problem("x" * 65) is not None
    assert room_name_problem("Friday lunch") is None


def test_room_full() -> None:
    room = new_room("r", RID, key(1), A)
    full = dataclasses.replace(
        room,
        members=frozenset(bytes([1]) + n.to_bytes(31, "big") for n in range(MAX_ROOM_MEMBERS))
        | {A},
    )
    with pytest.raises(ValueError, match="at most"):
        invite(full, A, B, key(2))
    others = frozenset(bytes([1]) + n.to_bytes(31, "big") for n in range(MAX_ROOM_MEMBERS - 2))
    nearly = dataclasses.replace(room, members=others | {A})
    invite(nearly, A, B, key(2))  # exactly full
    with pytest.raises(ValueError, match="at most"):
        invite(nearly, A, {B, C}, key(2))  # two newcomers do not fit where one does


def test_room_keys_are_bounded() -> None:
    keys = RoomKeys(RID, limit=3)
    for epoch in range(5):
        keys.add(epoch, key(epoch + 1), (A,))
    assert keys.epochs() == [2, 3, 4]
    keys.add(0, key(9), (A,))  # older than everything kept
    assert keys.epochs() == [2, 3, 4]
    # At most four keys per epoch, and the first ones stay: a member sending key after
    # key for one epoch cannot push out the key the room uses.
    kept = [keys.add(4, key(20 + n), (A,)) for n in range(10)]
    assert kept == [True] * 3 + [False] * 7
    assert [e.key for e in keys.keys(4)] == [key(22), key(21), key(20), key(5)]
    assert keys.full(4) and not keys.full(3) and keys.holds(4, key(5), False)
    assert keys.add(4, key(5), (A, B))  # a key it holds: its members are updated
    assert keys.members_at(4) == frozenset({A, B})
    keys.add(4, key(5), (A,))
    assert keys.members_at(4) == frozenset({A}) and keys.members_at(99) == frozenset()
    with pytest.raises(ValueError):
        keys.add_room(new_room("x", b"o" * 16, key(1), A))


def test_clocks_tick_observe_and_refuse_jumps() -> None:
    room = new_room("r", RID, key(1), A)
    room, clock = tick(room)
    assert clock == 1 == room.clock
    room = observe(room, 7)
    assert tick(room)[1] == 8
    assert observe(room, 3) == room  # a late message
    with pytest.raises(RemoteProtocolError):
        observe(room, room.clock + 1_000_001)
    with pytest.raises(RemoteProtocolError):
        observe(room, 0)


def test_roster_puts_online_members_first() -> None:
    room = three_members()[A]
    assert roster(room, {C}) == [(C, True), *sorted([(A, False), (B, False)])]


@dataclasses.dataclass(frozen=True, slots=True)
class RoomEntry:
    """A room message as a member shows it."""

    msg_id: bytes
    author: bytes
    epoch: int
    clock: int
    time: int
    text: str


def room_entry(envelope: RoomEnvelope, text: RoomText) -> RoomEntry:
    return RoomEntry(
        envelope.msg_id, envelope.author, envelope.epoch, text.clock, text.time, text.text
    )


class RoomLog:
    """One member's history, a model of the store's room tables: deduplicated by
    ``msg_id`` (the first copy wins), shown by ``order_key``."""

    def __init__(self) -> None:
        self._entries: dict[bytes, RoomEntry] = {}

    def add(self, entry: RoomEntry) -> None:
        self._entries.setdefault(entry.msg_id, entry)

    def ordered(self) -> list[RoomEntry]:
        return sorted(self._entries.values(), key=lambda e: order_key(e.clock, e.msg_id))


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=12))
def test_every_member_sees_the_same_order(rng: random.Random, count: int) -> None:
    """Members write concurrently and receive everything in random orders (with
    duplicates): every member ends with the same deduplicated, ordered history."""
    rooms = three_members()
    authors = {A: ALICE, B: BOB, C: CAROL}
    keys = {member: keys_of(room) for member, room in rooms.items()}
    logs = {member: RoomLog() for member in rooms}
    inboxes: dict[bytes, list[RoomEnvelope]] = {member: [] for member in rooms}
    for n in range(count):
        author = rng.choice(sorted(rooms))
        rooms[author], clock = tick(rooms[author])
        envelope = seal_room_message(
            authors[author],
            rooms[author],
            rng.randbytes(12) + n.to_bytes(4, "big"),
            clock,
            n,
            f"m{n}",
            rng.randbytes(24),
        )
        logs[author].add(room_entry(envelope, RoomText(clock=clock, time=n, text=f"m{n}")))
        for member in rooms:
            if member != author:
                inboxes[member].append(envelope)
                if rng.random() < 0.3:
                    inboxes[member].append(envelope)  # a duplicate copy
        # deliver part of the inboxes now, in random order
        for member, inbox in inboxes.items():
            rng.shuffle(inbox)
            for _ in range(rng.randint(0, len(inbox))):
                received = inbox.pop()
                text = open_room_message(keys[member], received)
                rooms[member] = observe(rooms[member], text.clock)
                logs[member].add(room_entry(received, text))
    for member, inbox in inboxes.items():
        rng.shuffle(inbox)
        for received in inbox:
            text = open_room_message(keys[member], received)
            rooms[member] = observe(rooms[member], text.clock)
            logs[member].add(room_entry(received, text))
    histories = [logs[member].ordered() for member in rooms]
    assert len(histories[0]) == count
    assert histories[0] == histories[1] == histories[2]


# --- wire ---


def test_wire_round_trips() -> None:
    codec = Codec()
    rooms = three_members()
    _, invitation, _ = invite(rooms[A], A, M, key(70))
    _, updates, notice = remove(rooms[A], A, C, key(71))
    envelope = seal_room_message(ALICE, rooms[A], mid(1), 1, 5, "hi", NONCE)
    for message in (
        invitation,
        updates[0][1],
        notice,
        envelope,
        RoomText(clock=3, time=4, text="t"),
    ):
        assert codec.decode(codec.encode(message)) == message


def test_a_gossip_payload_is_one_whole_envelope_of_its_room_under_its_id() -> None:
    codec = Codec()
    rooms = three_members()
    envelope = seal_room_message(ALICE, rooms[A], mid(1), 1, 5, "hi", NONCE)
    payload = codec.encode(envelope)
    assert gossip_envelope(RID, mid(1), payload) == envelope
    for room_id, msg_id, bad in (
        (RID, mid(1), b"\x00" * 10),  # not a message at all
        (RID, mid(1), payload[2:]),  # the bare body, without the type id
        (RID, mid(1), codec.encode(RoomText(clock=1, text="hi"))),
        (b"o" * 16, mid(1), payload),  # another room's
        (RID, mid(2), payload),  # under another id
    ):
        with pytest.raises(RemoteProtocolError) as info:
            gossip_envelope(room_id, msg_id, bad)
        assert info.value.code == "bad-room-message"


def _encoded_with(message: Any, **changes: Any) -> bytes:
    body = {name.name: getattr(message, name.name) for name in dataclasses.fields(message)}
    body.update(changes)
    data: bytes = msgpack.packb([message.TYPE_ID, body], use_bin_type=True)
    return data


INVITE = RoomInvite(room_id=RID, name="r", epoch=1, key=key(1), members=(A, B), inviter=A)
UPDATE = RoomKeyUpdate(room_id=RID, epoch=1, key=key(1), members=(A, B))
LEAVE = RoomLeave(room_id=RID, member=A)
ENVELOPE = RoomEnvelope(
    room_id=RID, epoch=1, msg_id=mid(1), author=A, nonce=NONCE, box=b"b", signature=bytes(64)
)


@pytest.mark.parametrize(
    ("message", "changes"),
    [
        (INVITE, {"room_id": b"r" * 15}),
        (INVITE, {"key": b"k" * 31}),
        (INVITE, {"inviter": b"a" * 33}),
        (INVITE, {"members": [A, b"short"]}),
        (INVITE, {"members": [A, A]}),
        (INVITE, {"members": [bytes([n]) * 32 for n in range(MAX_ROOM_MEMBERS)] + [b"x" * 32]}),
        (INVITE, {"name": "n" * 65}),
        (INVITE, {"epoch": -1}),
        (INVITE, {"epoch": None}),
        (UPDATE, {"epoch": 2**63}),
        (UPDATE, {"members": [b"x" * 31]}),
        (UPDATE, {"key": b""}),
        (LEAVE, {"member": b"m" * 31}),
        (ENVELOPE, {"nonce": b"n" * 12}),
        (ENVELOPE, {"msg_id": b"m" * 17}),
        (ENVELOPE, {"author": b"a" * 31}),
        (ENVELOPE, {"signature": b"s" * 63}),
        (ENVELOPE, {"box": b"b" * (20 * 1024 + 1)}),
        (ENVELOPE, {"epoch": True}),
        (RoomText(clock=1, time=1, text="x"), {"clock": -1}),
        (RoomText(clock=1, time=1, text="x"), {"text": "x" * (MAX_TEXT_CHARS + 1)}),
    ],
)
def test_malformed_fields_are_remote_protocol_errors(message: Any, changes: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        Codec().decode(_encoded_with(message, **changes))


def test_missing_required_field() -> None:
    data = _encoded_with(ENVELOPE)
    type_id, body = msgpack.unpackb(data)
    del body["epoch"]
    with pytest.raises(RemoteProtocolError, match="required"):
        Codec().decode(msgpack.packb([type_id, body], use_bin_type=True))


def test_bad_inner_content_is_refused() -> None:
    """A member seals something that is not a valid RoomText: members refuse it."""
    rooms = three_members()
    room = rooms[A]
    codec = Codec()

    def sealed_raw(plain: bytes) -> RoomEnvelope:
        box = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plain, _aad(RID, room.epoch, mid(9), A), NONCE, room.key
        )
        unsigned = RoomEnvelope(
            room_id=RID,
            epoch=room.epoch,
            msg_id=mid(9),
            author=A,
            nonce=NONCE,
            box=box,
            signature=bytes(64),
        )
        signature = ALICE.signing_key.sign(_signed_bytes(unsigned)).signature
        return dataclasses.replace(unsigned, signature=signature)

    keys = keys_of(rooms[B])
    for plain, reason in [
        (b"\xc1garbage", "malformed"),
        (codec.encode(LEAVE), "not a RoomText"),
        (codec.encode(RoomText(clock=1, time=1, text="\x1b[31mred")), "control character"),
        (codec.encode(RoomText(clock=1, time=1, text="   ")), "empty"),
        (codec.encode(RoomText(clock=0, time=1, text="zero")), "below 1"),
    ]:
        with pytest.raises(RemoteProtocolError, match=reason) as info:
            open_room_message(keys, sealed_raw(plain))
        assert info.value.code == "bad-room-message"
    other = RoomKeys(b"o" * 16)
    with pytest.raises(RemoteProtocolError, match="another room"):
        open_room_message(other, sealed_raw(codec.encode(RoomText(clock=1, time=1, text="x"))))


def test_a_key_with_the_other_flag_is_another_key() -> None:
    """The chained flag is part of a key's name (§15.7): an update that gives a key we
    hold with the flag flipped does not change how we use it; it is a second key of
    that epoch, under the rules for those."""
    keys = RoomKeys(RID)
    assert keys.add(4, key(5), (A, B), chained=True)
    assert keys.add(4, key(5), (A, B), chained=False)
    assert [entry.chained for entry in keys.keys(4)] == [False, True]
    assert keys.holds(4, key(5), True) and keys.holds(4, key(5), False)
    assert len(keys.chains) == 2  # the chained one's: one chain per member
