"""Rooms: group conversations under a shared key that changes with the membership.

Pure: keys, ids and nonces arrive as bytes from the caller, times as integer
milliseconds. See docs/protocol.md §15.

- A room has an id, a name, members and, per **epoch**, a 32-byte key. Every
  membership change (invite, removal, the rotation after a leave) starts a new epoch
  with a fresh key, which the member making the change sends pairwise (inside the
  Noise sessions) to every other member: a ``RoomInvite`` to a new member, a
  ``RoomKeyUpdate`` to the others. Removed members never see later keys.
- A room message is a ``RoomEnvelope``: a ``RoomText`` encrypted with the epoch key
  (XChaCha20-Poly1305, the envelope's header as associated data) and signed by its
  author's identity key. Anyone can carry it and check the signature; only members
  can read it. Members order messages by (Lamport clock, msg_id), like a one-to-one
  conversation (:func:`p2pchat.chat.rules.order_key`).

Messages, clocks and membership turn on one ``Room`` and are read together against
§15; a room's keys by epoch (``RoomKeys``) are in room_keys.py.
"""

from __future__ import annotations

from collections.abc import Collection, Set
from dataclasses import dataclass, field, replace
from typing import TypeVar

import nacl.bindings
import nacl.exceptions
import nacl.signing

from p2pchat.chat.chains import (
    ChainError,
    ChainId,
    key_id,
    nonce_index,
)

# The keys moved to room_keys.py; their names are still read from here.
from p2pchat.chat.room_keys import MAX_KEPT_EPOCHS as MAX_KEPT_EPOCHS
from p2pchat.chat.room_keys import MAX_KEYS_PER_EPOCH as MAX_KEYS_PER_EPOCH
from p2pchat.chat.room_keys import EpochKey as EpochKey
from p2pchat.chat.room_keys import RoomKeys as RoomKeys
from p2pchat.chat.room_keys import check_key
from p2pchat.chat.rules import clock_acceptable, text_problem
from p2pchat.errors import RemoteProtocolError
from p2pchat.identity import Identity
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    MAX_ROOM_MEMBERS,
    MAX_ROOM_NAME_CHARS,
    MAX_WIRE_INT,
    MSG_ID_BYTES,
    ROOM_ID_BYTES,
    ROOM_NONCE_BYTES,
    RoomEnvelope,
    RoomInvite,
    RoomKeyUpdate,
    RoomLeave,
    RoomText,
)

SIGNATURE_PREFIX = b"p2pchat-room-msg-v1:"
AAD_PREFIX = b"p2pchat-room-aad-v1:"
MAX_EPOCH_JUMP = 1_000_000  # a key update may not push the epoch further than this
# An epoch's key is not used for a new message once the epoch holds this many messages
# or is this old: the writer starts a new epoch first (§15.3, periodic re-keying).
REKEY_MESSAGES = 1_000
REKEY_AFTER_MS = 7 * 24 * 3600 * 1000

_codec = Codec()
_Message = TypeVar("_Message", RoomEnvelope, RoomText)


def bad_message(reason: str) -> RemoteProtocolError:
    """A room message refused (``bad-room-message``), for ``reason``."""
    return RemoteProtocolError(f"room message refused: {reason}", code="bad-room-message")


def _bad_update(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"room update refused: {reason}", code="bad-room-update")


def room_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a room, or None (same character rules as a message)."""
    if len(name) > MAX_ROOM_NAME_CHARS:
        return f"a room name has at most {MAX_ROOM_NAME_CHARS} characters"
    problem = text_problem(name)
    if problem:
        return problem.replace("the message", "the room name")
    if "\n" in name or "\t" in name:
        return "a room name is one line"
    return None


@dataclass(frozen=True, slots=True)
class Room:
    """One member's view of a room at its current epoch.

    ``key`` is empty once a chained epoch's key is deleted (every member showed it
    holds it, §15.7); ``key_id`` names it still. ``chained``: messages of the epoch
    use sender chains (§15.7), not the key itself."""

    room_id: bytes
    name: str
    epoch: int
    key: bytes = field(repr=False)
    members: frozenset[bytes]
    clock: int = 0  # the highest Lamport clock seen in the room
    rotated_by: bytes = b""  # the member who made the current epoch (tie-break)
    chained: bool = False
    key_id: bytes = b""

    def __post_init__(self) -> None:
        if self.key:  # recomputed on every replace() that brings a key
            object.__setattr__(self, "key_id", key_id(self.key, self.chained))
        elif len(self.key_id) != 32:
            raise ValueError("a room without its key needs the key's id")


def new_room(
    name: str, room_id: bytes, key: bytes, creator: bytes, *, chained: bool = False
) -> Room:
    """A room whose only member is ``creator``; ``room_id`` and ``key`` from a CSPRNG."""
    problem = room_name_problem(name)
    if problem:
        raise ValueError(problem)
    if len(room_id) != ROOM_ID_BYTES:
        raise ValueError(f"a room id has {ROOM_ID_BYTES} bytes")
    check_key(key)
    if len(creator) != 32:
        raise ValueError("a member is a 32-byte identity key")
    return Room(room_id, name, 0, key, frozenset((creator,)), 0, creator, chained)


# --- messages ---


def _aad(room_id: bytes, epoch: int, msg_id: bytes, author: bytes) -> bytes:
    return b"".join((AAD_PREFIX, room_id, epoch.to_bytes(8, "big"), msg_id, author))


def _signed_bytes(envelope: RoomEnvelope) -> bytes:
    return b"".join(
        (
            SIGNATURE_PREFIX,
            envelope.room_id,
            envelope.epoch.to_bytes(8, "big"),
            envelope.msg_id,
            envelope.author,
            envelope.nonce,
            envelope.box,
        )
    )


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A file shared with a room (docs/protocol.md §16.4), as its message carries it."""

    root: bytes
    size: int
    name: str
    media_type: str = ""
    thumbnail: bytes = b""


def room_text(
    clock: int,
    time: int,
    text: str,
    *,
    action: bool = False,
    topic: bool = False,
    joined: bool = False,
    keyed: bool = False,
    file: SharedFile | None = None,
    nick: str = "",
) -> RoomText:
    """The plaintext of a room message (``nick``: the author's, §15.2)."""
    if file is None:
        return RoomText(clock=clock, time=time, text=text, action=action, topic=topic,
                        joined=joined, keyed=keyed, nick=nick)  # fmt: skip
    return RoomText(clock=clock, time=time, text=text, action=action, topic=topic,
                    joined=joined, keyed=keyed, nick=nick, file_root=file.root,
                    file_size=file.size,
                    file_name=file.name, file_type=file.media_type,
                    file_thumbnail=file.thumbnail)  # fmt: skip


def shared_file(inner: RoomText) -> SharedFile | None:
    """The file a room message shares, if it shares one."""
    if not inner.file_root:
        return None
    return SharedFile(inner.file_root, inner.file_size, inner.file_name, inner.file_type,
                      inner.file_thumbnail)  # fmt: skip


def seal_room_message(
    identity: Identity,
    room: Room,
    msg_id: bytes,
    clock: int,
    time: int,
    text: str,
    nonce: bytes,
    *,
    action: bool = False,
    topic: bool = False,
    joined: bool = False,
    keyed: bool = False,
    file: SharedFile | None = None,
    message_key: bytes | None = None,
    nick: str = "",
) -> RoomEnvelope:
    """Encrypt and sign a message to the room at its current epoch (``action``: a /me
    line; ``topic``: the text is the room's new topic; ``joined``: our join notice;
    ``keyed``: our key notice, §15.7).

    ``msg_id`` (16 bytes) and ``nonce`` (24 bytes) come from a CSPRNG; ``clock`` is
    the room's next Lamport clock (:func:`tick`), ``time`` the wall clock in ms. In a
    chained epoch (§15.7) ``message_key`` is the next key of our chain and ``nonce``
    begins with its index (:func:`p2pchat.chat.chains.chained_nonce`).
    """
    if identity.public_key not in room.members:
        raise ValueError("only a member can write to the room")
    if len(msg_id) != MSG_ID_BYTES:
        raise ValueError(f"a message id has {MSG_ID_BYTES} bytes")
    if len(nonce) != ROOM_NONCE_BYTES:
        raise ValueError(f"a room nonce has {ROOM_NONCE_BYTES} bytes")
    problem = text_problem(text)
    if problem:
        raise ValueError(problem)
    if not (0 < clock <= MAX_WIRE_INT and 0 <= time <= MAX_WIRE_INT):
        raise ValueError("clock must be from 1 and time from 0, both to 2**63 - 1")
    if room.chained != (message_key is not None):
        raise ValueError("a chained epoch takes a message key, and only a chained one")
    key = room.key if message_key is None else message_key
    inner = room_text(clock, time, text, action=action, topic=topic, joined=joined,
                      keyed=keyed, file=file, nick=nick)  # fmt: skip
    plain = _codec.encode(inner)
    author = identity.public_key
    box = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plain, _aad(room.room_id, room.epoch, msg_id, author), nonce, key
    )
    unsigned = RoomEnvelope(
        room_id=room.room_id,
        epoch=room.epoch,
        msg_id=msg_id,
        author=author,
        nonce=nonce,
        box=box,
        signature=bytes(64),
    )
    signature = identity.signing_key.sign(_signed_bytes(unsigned)).signature
    return replace(unsigned, signature=signature)


def _decoded(data: bytes, kind: type[_Message], what: str) -> _Message:
    """``data`` decoded (the §5 encoding, type id included), if it is a ``kind``."""
    try:
        message = _codec.decode(data)
    except RemoteProtocolError as error:
        raise bad_message(f"{what} is malformed ({error})") from error
    if type(message) is not kind:
        raise bad_message(f"{what} is not a {kind.__name__}")
    return message


def gossip_envelope(room_id: bytes, msg_id: bytes, payload: bytes) -> RoomEnvelope:
    """The RoomEnvelope a RoomGossip payload carries (§14: the §5 encoding, type id
    included), for this room and under the gossip's own id; ``bad-room-message`` if it
    is not one. Nothing is checked inside it yet (:func:`check_room_envelope`)."""
    envelope = _decoded(payload, RoomEnvelope, "the payload")
    if envelope.room_id != room_id:
        raise bad_message("the envelope belongs to another room")
    if envelope.msg_id != msg_id:
        raise bad_message("the envelope's msg_id is not the gossip's")
    return envelope


def check_room_envelope(envelope: RoomEnvelope) -> None:
    """What anyone, member or not, can check: ``author`` signed exactly this envelope."""
    try:
        nacl.signing.VerifyKey(envelope.author).verify(_signed_bytes(envelope), envelope.signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError) as exc:
        raise bad_message("the signature does not match the author") from exc


def open_room_message(room_keys: RoomKeys, envelope: RoomEnvelope) -> RoomText:
    """Check and decrypt a room message (:func:`open_room_message_at`, the chain it
    used left as it was)."""
    return open_room_message_at(room_keys, envelope)[0]


def open_room_message_at(
    room_keys: RoomKeys, envelope: RoomEnvelope
) -> tuple[RoomText, tuple[ChainId, int] | None]:
    """Check and decrypt a room message; RemoteProtocolError ``bad-room-message`` if the
    epoch is unknown, the author held no key of it, the signature or the box is bad, or
    the content is not a valid RoomText. With the text, the chain and index whose
    message key opened it (None for an unchained epoch): nothing is deleted here, the
    caller takes the key (``room_keys.chains.take``) once it keeps the message. The
    caller still checks the clock (:func:`observe`) and deduplicates by ``msg_id``."""
    if envelope.room_id != room_keys.room_id:
        raise bad_message("it belongs to another room")
    keys = room_keys.keys(envelope.epoch)
    if not keys:
        raise bad_message(f"epoch {envelope.epoch} is unknown")
    candidates = [entry for entry in keys if envelope.author in entry.members]
    if not candidates:
        raise bad_message(f"the author is not a member at epoch {envelope.epoch}")
    check_room_envelope(envelope)
    aad = _aad(envelope.room_id, envelope.epoch, envelope.msg_id, envelope.author)
    index = nonce_index(envelope.nonce)
    used: tuple[ChainId, int] | None = None
    problem = "it cannot be decrypted"
    for entry in candidates:
        if entry.chained:
            chain_id = (envelope.epoch, entry.key_id, envelope.author)
            try:
                key = room_keys.chains.key_for(chain_id, index)
            except ChainError as error:
                problem = str(error)
                continue
            used = (chain_id, index)
        else:
            key, used = entry.key, None
        try:
            plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                envelope.box, aad, envelope.nonce, key
            )
        except nacl.exceptions.CryptoError:
            continue
        break
    else:
        raise bad_message(problem)
    text = _decoded(plain, RoomText, "its content")
    problem_text = text_problem(text.text)
    if problem_text:
        raise bad_message(problem_text)
    if text.clock < 1:
        raise bad_message("its clock is below 1")
    return text, used


# --- clocks ---


def tick(room: Room) -> tuple[Room, int]:
    """The clock for our next message in the room, and the room having used it."""
    clock = room.clock + 1
    return replace(room, clock=clock), clock


def observe(room: Room, clock: int) -> Room:
    """The room after receiving a message with ``clock``; refuses unbelievable clocks
    (:func:`p2pchat.chat.rules.clock_acceptable`)."""
    if not clock_acceptable(room.clock, clock):
        raise bad_message(f"clock {clock} is too far ahead of {room.clock}")
    return room if clock <= room.clock else replace(room, clock=clock)


# --- membership ---


def _key_updates(room: Room, sender: bytes, skip: Set[bytes]) -> list[tuple[bytes, RoomKeyUpdate]]:
    update = RoomKeyUpdate(
        room_id=room.room_id,
        epoch=room.epoch,
        key=room.key,
        members=tuple(sorted(room.members)),
        clock=room.clock,
        chained=room.chained,
    )
    return [(member, update) for member in sorted(room.members - skip - {sender})]


def _next_epoch(
    room: Room, by: bytes, members: frozenset[bytes], new_key: bytes, chained: bool
) -> Room:
    if by not in room.members:
        raise ValueError("only a member can change the room")
    check_key(new_key)
    if key_id(new_key, room.chained) == room.key_id:
        raise ValueError("a new epoch needs a fresh key")
    if room.epoch >= MAX_WIRE_INT:
        raise ValueError("the room has run out of epochs")
    return replace(room, epoch=room.epoch + 1, key=new_key, members=members, rotated_by=by,
                   chained=chained)  # fmt: skip


def invite(
    room: Room,
    inviter: bytes,
    new_members: bytes | Collection[bytes],
    new_key: bytes,
    *,
    chained: bool = False,
) -> tuple[Room, RoomInvite, list[tuple[bytes, RoomKeyUpdate]]]:
    """Add one member or several at once: a new epoch with ``new_key``, so the
    newcomers cannot read what was said before. Returns the room, the invitation (the
    same for every newcomer) and a key update for each other member (pairs of
    recipient and message). Several at once cost one epoch and one update per member,
    where one at a time would cost an epoch and an update per member per newcomer.
    ``chained``: the new epoch uses sender chains (§15.7); say so only if every member
    of it can (the feature ``room-chains/1``)."""
    newcomers = frozenset((new_members,) if isinstance(new_members, bytes) else new_members)
    if not newcomers:
        raise ValueError("nobody to invite")
    if any(len(member) != 32 for member in newcomers):
        raise ValueError("a member is a 32-byte identity key")
    if newcomers & room.members:
        raise ValueError("already a member")
    if len(room.members) + len(newcomers) > MAX_ROOM_MEMBERS:
        raise ValueError(f"a room has at most {MAX_ROOM_MEMBERS} members")
    after = _next_epoch(room, inviter, room.members | newcomers, new_key, chained)
    return after, invitation_for(after, inviter), _key_updates(after, inviter, newcomers)


def invitation_for(room: Room, inviter: bytes) -> RoomInvite:
    """The invitation into ``room`` as it is now (its epoch, key and members), from
    ``inviter``."""
    return RoomInvite(
        room_id=room.room_id,
        name=room.name,
        epoch=room.epoch,
        key=room.key,
        members=tuple(sorted(room.members)),
        inviter=inviter,
        clock=room.clock,
        chained=room.chained,
    )


def remove(
    room: Room, remover: bytes, member: bytes, new_key: bytes, *, chained: bool = False
) -> tuple[Room, list[tuple[bytes, RoomKeyUpdate]], RoomLeave]:
    """Remove ``member``: a new epoch with ``new_key`` that it never receives. Returns the
    room, a key update for each remaining member, and the notice for the removed one."""
    if member not in room.members:
        raise ValueError("not a member")
    if member == remover:
        raise ValueError("use leave() to leave a room")
    after = _next_epoch(room, remover, room.members - {member}, new_key, chained)
    notice = RoomLeave(room_id=room.room_id, member=member)
    return after, _key_updates(after, remover, frozenset()), notice


def rotate(
    room: Room, own: bytes, new_key: bytes, *, chained: bool = False
) -> tuple[Room, list[tuple[bytes, RoomKeyUpdate]]]:
    """A new epoch with the same members (after a leave, see :func:`rotator`)."""
    after = _next_epoch(room, own, room.members, new_key, chained)
    return after, _key_updates(after, own, frozenset())


def apply_key_update(room: Room, update: RoomKeyUpdate, from_member: bytes, own: bytes) -> Room:
    """The room after ``from_member`` (the session's authenticated peer) sent ``update``.

    Refused (``bad-room-update``) unless the sender is a current member and stays one,
    we are in the new list, and the epoch is higher than ours (by at most
    MAX_EPOCH_JUMP) — or equal, from a sender bytewise lower than the one who made our
    current epoch (the tie-break for concurrent changes). A repeat is a no-op.
    """
    if update.room_id != room.room_id:
        raise _bad_update("it is for another room")
    if (
        update.epoch == room.epoch
        and key_id(update.key, update.chained) == room.key_id
        and frozenset(update.members) == room.members
    ):
        return room
    if from_member not in room.members:
        raise _bad_update("the sender is not a member")
    if from_member not in update.members:
        raise _bad_update("the sender is not in the new member list")
    if own not in update.members:
        raise _bad_update("we are not in the new member list")
    if update.epoch == room.epoch:
        if not (room.rotated_by and from_member < room.rotated_by) or (
            key_id(update.key, update.chained) == room.key_id
        ):
            raise _bad_update(f"epoch {update.epoch} is already set")
    elif update.epoch < room.epoch:
        raise _bad_update(f"epoch {update.epoch} is older than ours ({room.epoch})")
    elif update.epoch > room.epoch + MAX_EPOCH_JUMP:
        raise _bad_update(f"epoch {update.epoch} jumps too far ahead of ours ({room.epoch})")
    return replace(
        room,
        epoch=update.epoch,
        key=update.key,
        members=frozenset(update.members),
        rotated_by=from_member,
        chained=update.chained,
        clock=max(room.clock, _plausible(room.clock, update.clock)),
    )


def join(invitation: RoomInvite, own: bytes, from_member: bytes) -> Room:
    """The room an invitation (received from ``from_member``, the session's peer) opens.

    Refused (``bad-room-invite``) if the peer is not the named inviter, either of us is
    missing from the member list, or the name is not showable."""

    def bad(reason: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"room invitation refused: {reason}", code="bad-room-invite")

    if invitation.inviter != from_member:
        raise bad("the sender is not the inviter")
    if from_member not in invitation.members or own not in invitation.members:
        raise bad("the member list leaves out the inviter or us")
    problem = room_name_problem(invitation.name)
    if problem:
        raise bad(problem)
    # A newcomer has seen nothing of the room, so the jump bound has nothing to measure
    # against: the inviter's clock is taken as it is (any value the wire allows). Were it
    # bounded from 0, a room past clock 1,000,000 would look implausible to every
    # newcomer, which would then refuse all its messages.
    return Room(
        room_id=invitation.room_id,
        name=invitation.name,
        epoch=invitation.epoch,
        key=invitation.key,
        members=frozenset(invitation.members),
        rotated_by=from_member,
        clock=invitation.clock,
        chained=invitation.chained,
    )


def leave(room: Room, own: bytes) -> tuple[RoomLeave, list[bytes]]:
    """Our ``RoomLeave`` and the members to send it to (pairwise). Also the answer to
    an invitation we decline."""
    if own not in room.members:
        raise ValueError("not a member")
    return RoomLeave(room_id=room.room_id, member=own), sorted(room.members - {own})


def apply_leave(room: Room, notice: RoomLeave, from_member: bytes, own: bytes) -> Room | None:
    """The room after ``from_member`` sent ``notice``: without the member who left
    (same epoch and key, until :func:`rotator` rotates), or None if a member told us we
    were removed. Refused (``bad-room-update``) otherwise. Leaving is idempotent."""
    if notice.room_id != room.room_id:
        raise _bad_update("it is for another room")
    if notice.member == from_member and from_member != own:
        if from_member not in room.members:
            return room
        return replace(room, members=room.members - {from_member})
    if notice.member == own and from_member in room.members:
        return None
    raise _bad_update("only a member can announce its own leaving or our removal")


def _plausible(highest: int, clock: int) -> int:
    """A clock from a key update or invitation, if believable (else ignored: 0)."""
    return clock if clock_acceptable(highest, clock) else 0


def rekey_due(
    messages: int,
    began: int,
    now: int,
    *,
    most_messages: int = REKEY_MESSAGES,
    longest: int = REKEY_AFTER_MS,
) -> bool:
    """Whether an epoch that began at ``began`` (ms; 0: unknown, so old) and holds
    ``messages`` messages has served its time: a member about to write starts a new one
    first."""
    return messages >= most_messages or now - began >= longest


def rotator(room: Room) -> bytes | None:
    """The member who rotates the key after a leave: the bytewise lowest identity key
    (one member, so the remaining members do not all rotate at once)."""
    return min(room.members) if room.members else None


def roster(room: Room, online: Set[bytes]) -> list[tuple[bytes, bool]]:
    """The member list with presence (from the mesh's presence records): online members
    first, then by identity key."""
    return sorted(
        ((member, member in online) for member in room.members),
        key=lambda pair: (not pair[1], pair[0]),
    )
