"""Every message p2pchat puts on the wire, as frozen dataclasses: the one schema.

Each message class carries a stable numeric ``TYPE_ID``; only :mod:`p2pchat.wire.codec`
turns these objects into bytes and back. Field names are part of the wire format
(they are the map keys), so rename nothing that has shipped: add fields with defaults
instead, and old peers ignore them.

Per-field limits live in the field metadata (see :func:`limit`); the codec enforces
them on decode so a peer can never make us hold more than the schema allows.

Why one module of over 500 lines: it is the schema. Every type id, field name and limit
on the wire stands here side by side, so a change to the protocol is one diff to review
next to docs/protocol.md, and two messages can never take the same type id unnoticed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

_T = TypeVar("_T")

MESSAGE_TYPES: dict[int, type[Any]] = {}


def wire_message(type_id: int) -> Any:
    """Register a dataclass as the wire message with ``type_id``."""

    def register(cls: type[_T]) -> type[_T]:
        if type_id in MESSAGE_TYPES:
            raise RuntimeError(f"wire type {type_id} registered twice")
        cls.TYPE_ID = type_id  # type: ignore[attr-defined]
        MESSAGE_TYPES[type_id] = cls
        return cls

    return register


def limit(
    *,
    max_len: int | None = None,
    size: int | None = None,
    item_max_len: int | None = None,
    default: Any = ...,
) -> Any:
    """A dataclass field with wire limits: ``max_len`` (items, chars or bytes) or exact
    ``size``; for a sequence, ``item_max_len`` bounds each item (chars or bytes)."""
    metadata = {"max_len": max_len, "size": size, "item_max_len": item_max_len}
    if default is ...:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


# --- handshake payloads (inside Noise handshake messages, see docs/protocol.md) ---

MAX_VERSION_NUMBER = 65_535  # protocol versions are 1 … 65535 (docs/protocol.md §3)
MAX_PING_DATA = 1024  # Ping/Pong data: a probe, not a transport (docs/protocol.md §6)
MAX_NONCE = 2**64 - 1  # an unsigned 64-bit integer, MessagePack's largest
MAX_INVITE_TOKEN = 32  # HandshakeAuth.invite; ours are 16 bytes (docs/protocol.md §10.1)


def _check_version(value: int) -> None:
    if not 1 <= value <= MAX_VERSION_NUMBER:
        raise ValueError(f"a protocol version must be from 1 to {MAX_VERSION_NUMBER}")


KNOCK_BYTES = 16


@wire_message(1)
@dataclass(frozen=True, slots=True)
class HandshakeHello:
    """Payload of handshake message 1 (sent in clear, authenticated by the handshake hash)."""

    TYPE_ID: ClassVar[int]
    versions: tuple[int, ...] = limit(max_len=16)
    # A knock (§3, §10.2): proof that the initiator holds the responder's announce key
    # (or an invite of its), without naming either; empty when it has none.
    knock: bytes = limit(max_len=KNOCK_BYTES, default=b"")

    def __post_init__(self) -> None:
        for version in self.versions:
            _check_version(version)


@wire_message(2)
@dataclass(frozen=True, slots=True)
class HandshakeAuth:
    """Payload of handshake messages 2 and 3: who we are and what we speak."""

    TYPE_ID: ClassVar[int]
    identity_key: bytes = limit(size=32)
    # Ed25519 signature by identity_key over b"p2pchat-noise-static-key:" || noise static key.
    signature: bytes = limit(size=64)
    version: int = limit()  # required: limit() without a default, for mypy
    features: tuple[str, ...] = limit(max_len=64, default=())
    # An invite token from the responder's invite code (docs/protocol.md §10.1): only an
    # initiator dialling a code fills it in; empty otherwise.
    invite: bytes = limit(max_len=MAX_INVITE_TOKEN, default=b"")

    def __post_init__(self) -> None:
        _check_version(self.version)


@wire_message(3)
@dataclass(frozen=True, slots=True)
class HandshakeReject:
    """Sent instead of HandshakeAuth when we will not complete the handshake."""

    TYPE_ID: ClassVar[int]
    code: str = limit(max_len=64)
    reason: str = limit(max_len=512, default="")


# --- session control (after the handshake) ---


@wire_message(4)
@dataclass(frozen=True, slots=True)
class Close:
    """The last message of a session: why the sender is closing it."""

    TYPE_ID: ClassVar[int]
    code: str = limit(max_len=64)
    reason: str = limit(max_len=512, default="")


def _check_nonce(value: int) -> None:
    if not 0 <= value <= MAX_NONCE:
        raise ValueError("a nonce must be from 0 to 2**64 - 1")


@wire_message(5)
@dataclass(frozen=True, slots=True)
class Ping:
    """Keepalive and round-trip probe; answered by a Pong with the same nonce and data."""

    TYPE_ID: ClassVar[int]
    nonce: int
    data: bytes = limit(max_len=MAX_PING_DATA, default=b"")

    def __post_init__(self) -> None:
        _check_nonce(self.nonce)


@wire_message(6)
@dataclass(frozen=True, slots=True)
class Pong:
    TYPE_ID: ClassVar[int]
    nonce: int
    data: bytes = limit(max_len=MAX_PING_DATA, default=b"")

    def __post_init__(self) -> None:
        _check_nonce(self.nonce)


# --- mesh ---

MAX_MESH_INT = 2**63 - 1  # versions and sequence numbers fit a signed 64-bit integer
MAX_PROTOCOL = 65_535


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}")


def _check_seq(seq: int) -> None:
    _check_range("seq", seq, 0, MAX_MESH_INT)


# HOST:PORT: a 253-character DNS name, a colon and a port (a bracketed IPv6 address
# with a zone is shorter). It also keeps a MeshGossip of 256 records under 4 MiB.
MAX_ADDRESS_CHARS = 259


# How long a nick and a status text may be: the one definition every check imports
# (the profile, the presence record, mDNS TXT, the chat window's input fields).
MAX_NICK_CHARS = 32
MAX_STATUS_TEXT_CHARS = 140


class Status(enum.StrEnum):
    """A person's presence status: the one vocabulary of the wire (a record's ``status``),
    mDNS TXT, the API and the chat window. A ``str``, so it packs and prints as its value
    (the XEP-0174 names). ``OFFLINE`` is never announced: it is what a record of a member
    that died or left is shown as."""

    AVAILABLE = "avail"
    AWAY = "away"
    BUSY = "dnd"
    OFFLINE = "offline"


# What a person may set (and announce): everything but OFFLINE.
SETTABLE_STATUSES = (Status.AVAILABLE, Status.AWAY, Status.BUSY)


@wire_message(10)
@dataclass(frozen=True, slots=True)
class PresenceRecord:
    """A node's presence, signed by the node itself (see docs/protocol.md §11).

    Only the owner can make a valid record, and only a higher ``version`` replaces
    an older one, so relays can carry records but never forge, alter or roll them back.
    """

    TYPE_ID: ClassVar[int]
    owner: bytes = limit(size=32)
    version: int = limit()  # required: no default
    nick: str = limit(max_len=MAX_NICK_CHARS, default="")
    status: str = limit(max_len=16, default=Status.AVAILABLE.value)
    status_text: str = limit(max_len=MAX_STATUS_TEXT_CHARS, default="")
    addresses: tuple[str, ...] = limit(max_len=8, item_max_len=MAX_ADDRESS_CHARS, default=())
    protocol: int = 1
    signature: bytes = limit(size=64, default=bytes(64))
    # A node in private discovery: receivers take it from its owner only and never pass
    # it on, list it in a digest or name it to a third node (§11.1). After the
    # signature so that a listed record signs the bytes it always did.
    unlisted: bool = False

    def __post_init__(self) -> None:
        _check_range("a record version", self.version, 1, MAX_MESH_INT)
        _check_range("a record's protocol", self.protocol, 1, MAX_PROTOCOL)


@dataclass(frozen=True, slots=True)
class MeshClaim:
    """One node's claim that ``subject`` (at record ``version``) is suspect or dead.

    Only the subject can answer it, by publishing a record with a higher version.
    ``local``: a suspicion the accuser holds alone and sends only to the subject; the
    subject answers the accuser, with no new version (docs/protocol.md §12.1).
    """

    subject: bytes = limit(size=32)
    version: int = limit()  # required: no default
    state: str = limit(max_len=8, default="suspect")  # "suspect" | "dead"
    accuser: bytes = limit(size=32, default=bytes(32))
    local: bool = False

    def __post_init__(self) -> None:
        _check_range("a claim's version", self.version, 1, MAX_MESH_INT)


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """What a node knows of one member: the record version and whether it thinks it dead."""

    owner: bytes = limit(size=32)
    version: int = limit()  # required; 0: no record held (in a list of wanted entries)
    dead: bool = False

    def __post_init__(self) -> None:
        _check_range("a digest entry's version", self.version, 0, MAX_MESH_INT)


MAX_PIGGYBACK = 8
MAX_GOSSIP_ITEMS = 256
MAX_DIGEST_ENTRIES = 10_000


@wire_message(20)
@dataclass(frozen=True, slots=True)
class MeshPing:
    """A direct probe; answered by ``MeshAck`` with the same ``seq``. Carries gossip.

    ``routine``: the sender's probe of a pair that was quiet for its period (its
    receiver then waits a whole period before probing back); false for a probe out of
    turn (a sweep, a suspect probed again, a helper's relay), which moves no timer
    (docs/protocol.md §12.2). Peers that predate it send none: their pings count as
    routine."""

    TYPE_ID: ClassVar[int]
    seq: int
    records: tuple[PresenceRecord, ...] = limit(max_len=MAX_PIGGYBACK, default=())
    claims: tuple[MeshClaim, ...] = limit(max_len=MAX_PIGGYBACK, default=())
    routine: bool = True

    def __post_init__(self) -> None:
        _check_seq(self.seq)


@wire_message(21)
@dataclass(frozen=True, slots=True)
class MeshAck:
    TYPE_ID: ClassVar[int]
    seq: int
    records: tuple[PresenceRecord, ...] = limit(max_len=MAX_PIGGYBACK, default=())
    claims: tuple[MeshClaim, ...] = limit(max_len=MAX_PIGGYBACK, default=())

    def __post_init__(self) -> None:
        _check_seq(self.seq)


@wire_message(22)
@dataclass(frozen=True, slots=True)
class MeshProbeRequest:
    """Ask a neighbour to probe ``target`` for us (SWIM's indirect probe)."""

    TYPE_ID: ClassVar[int]
    seq: int
    target: bytes = limit(size=32)

    def __post_init__(self) -> None:
        _check_seq(self.seq)


@wire_message(23)
@dataclass(frozen=True, slots=True)
class MeshProbeResult:
    """The answer to a ``MeshProbeRequest``: ``reached`` false is Lifeguard's nack."""

    TYPE_ID: ClassVar[int]
    seq: int
    target: bytes = limit(size=32)
    reached: bool = False

    def __post_init__(self) -> None:
        _check_seq(self.seq)


@wire_message(24)
@dataclass(frozen=True, slots=True)
class MeshGossip:
    """Eager push of news: records and claims the sender has just accepted.

    ``repair`` marks the answer to a digest exchange (old news the receiver lacked).
    ``tree``: pushed along the news tree (docs/protocol.md §12.3): a receiver that
    already held every item answers ``MeshPrune``. Peers that predate it send none.
    """

    TYPE_ID: ClassVar[int]
    records: tuple[PresenceRecord, ...] = limit(max_len=MAX_GOSSIP_ITEMS, default=())
    claims: tuple[MeshClaim, ...] = limit(max_len=MAX_GOSSIP_ITEMS, default=())
    repair: bool = False
    tree: bool = False


@wire_message(25)
@dataclass(frozen=True, slots=True)
class MeshNeighbor:
    """Ask to join the receiver's active view. ``urgent``: the sender has no neighbour."""

    TYPE_ID: ClassVar[int]
    urgent: bool = False


@wire_message(26)
@dataclass(frozen=True, slots=True)
class MeshNeighborReply:
    TYPE_ID: ClassVar[int]
    accepted: bool = False
    suggestions: tuple[bytes, ...] = limit(max_len=16, default=())


@wire_message(27)
@dataclass(frozen=True, slots=True)
class MeshDisconnect:
    """The sender drops the receiver from its active view (it is not leaving the mesh)."""

    TYPE_ID: ClassVar[int]


@wire_message(28)
@dataclass(frozen=True, slots=True)
class MeshDigest:
    """Push-pull anti-entropy. ``summary`` hashes the sender's whole membership view.

    With no ``entries`` it is a cheap check; a receiver whose summary differs answers
    with its bucket hashes (or, before buckets, its full entries), and the two send
    each other what the other lacks.
    """

    TYPE_ID: ClassVar[int]
    summary: bytes = limit(size=16)
    entries: tuple[DigestEntry, ...] = limit(max_len=MAX_DIGEST_ENTRIES, default=())
    full: bool = False
    want_reply: bool = False
    # Bucketed reconciliation (docs/protocol.md §12.3); peers that predate it send none.
    held: int = 0  # members the sender holds; 0: not said
    buckets: bytes = limit(max_len=512, default=b"")  # 64 bucket hashes of 8 bytes
    mask: bytes = limit(max_len=8, default=b"")  # the buckets ``entries`` cover; empty: all
    room: int = MAX_DIGEST_ENTRIES  # members it does not list it takes now

    def __post_init__(self) -> None:
        _check_range("a digest's held count", self.held, 0, MAX_MESH_INT)
        _check_range("a digest's room", self.room, 0, MAX_MESH_INT)


@wire_message(29)
@dataclass(frozen=True, slots=True)
class MeshIHave:
    """Lazy push: the sender has just taken in this news (a record at ``version``, or
    with ``dead`` a dead claim about that version); ask with ``MeshGraft`` if it does
    not reach you along the tree."""

    TYPE_ID: ClassVar[int]
    entries: tuple[DigestEntry, ...] = limit(max_len=MAX_GOSSIP_ITEMS, default=())


@wire_message(18)
@dataclass(frozen=True, slots=True)
class MeshGraft:
    """Push news to the sender in full again, starting with these announced items."""

    TYPE_ID: ClassVar[int]
    entries: tuple[DigestEntry, ...] = limit(max_len=MAX_GOSSIP_ITEMS, default=())


@wire_message(19)
@dataclass(frozen=True, slots=True)
class MeshPrune:
    """Your pushes to the sender are redundant: announce news to it with ``MeshIHave``."""

    TYPE_ID: ClassVar[int]


# --- chat (docs/protocol.md §13) ---

MSG_ID_BYTES = 16
MAX_TEXT_CHARS = 4096
MAX_RECEIPT_IDS = 256
MAX_ENVELOPES = 64
# A sealed ChatMessage of MAX_TEXT_CHARS four-byte characters must fit: 16 KiB of text,
# its encoding, the sender key and the sealed box's overhead.
MAX_SEALED_BOX = 20 * 1024
MAX_WIRE_INT = 2**63 - 1  # times and clocks must fit a signed 64-bit integer (SQLite's)


def _check_ids(ids: tuple[bytes, ...], size: int = MSG_ID_BYTES) -> None:
    for item in ids:
        if len(item) != size:
            raise ValueError(f"an id has {size} bytes, not {len(item)}")


@wire_message(30)
@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message. ``clock`` is the conversation's Lamport clock, ``time`` the
    sender's wall clock in milliseconds since the Unix epoch (shown, never trusted).
    ``action``: the text is something the sender does (IRC's ``/me``), not says."""

    TYPE_ID: ClassVar[int]
    msg_id: bytes = limit(size=MSG_ID_BYTES)
    clock: int = 0
    time: int = 0
    text: str = limit(max_len=MAX_TEXT_CHARS, default="")
    action: bool = False

    def __post_init__(self) -> None:
        if not (0 <= self.clock <= MAX_WIRE_INT and 0 <= self.time <= MAX_WIRE_INT):
            raise ValueError("clock and time must be from 0 to 2**63 - 1")


@wire_message(31)
@dataclass(frozen=True, slots=True)
class ChatReceipt:
    """The recipient stored (``delivered``) or showed (``read``) these messages."""

    TYPE_ID: ClassVar[int]
    state: str = limit(max_len=16)
    msg_ids: tuple[bytes, ...] = limit(max_len=MAX_RECEIPT_IDS, default=())

    def __post_init__(self) -> None:
        if self.state not in ("delivered", "read"):
            raise ValueError(f"unknown receipt state {self.state!r}")
        _check_ids(self.msg_ids)


@dataclass(frozen=True, slots=True)
class Sealed:
    """A message or receipt encrypted to ``recipient`` and signed by ``sender``.

    Relays keep and forward it; they can check the signature but cannot read ``box``
    (a libsodium sealed box to the recipient's X25519 key). See docs/protocol.md §13.4.
    """

    envelope_id: bytes = limit(size=MSG_ID_BYTES)
    sender: bytes = limit(size=32)
    recipient: bytes = limit(size=32)
    expires: int = 0  # ms since the Unix epoch
    box: bytes = limit(max_len=MAX_SEALED_BOX, default=b"")
    signature: bytes = limit(size=64, default=bytes(64))

    def __post_init__(self) -> None:
        if not 0 <= self.expires <= MAX_WIRE_INT:
            raise ValueError("expires must be from 0 to 2**63 - 1")


@wire_message(32)
@dataclass(frozen=True, slots=True)
class Envelopes:
    """Sealed envelopes: for the receiver itself, or for it to keep for their recipients."""

    TYPE_ID: ClassVar[int]
    envelopes: tuple[Sealed, ...] = limit(max_len=MAX_ENVELOPES, default=())


@wire_message(33)
@dataclass(frozen=True, slots=True)
class EnvelopesTaken:
    """The answer to ``Envelopes``: which ones the receiver took (stored or consumed)
    and which it refused (quota, relaying off, bad signature, expired)."""

    TYPE_ID: ClassVar[int]
    taken: tuple[bytes, ...] = limit(max_len=MAX_ENVELOPES, default=())
    refused: tuple[bytes, ...] = limit(max_len=MAX_ENVELOPES, default=())
    reason: str = limit(max_len=128, default="")

    def __post_init__(self) -> None:
        _check_ids(self.taken)
        _check_ids(self.refused)


# --- rooms (docs/protocol.md §15) ---

ROOM_ID_BYTES = 16
ROOM_KEY_BYTES = 32
ROOM_NONCE_BYTES = 24
MAX_ROOM_NAME_CHARS = 64
MAX_TOPIC_CHARS = 300  # a room topic as an invitation carries it (§15.1)
MAX_ROOM_MEMBERS = 256
MAX_ROOM_BOX = 20 * 1024


def _check_members(members: tuple[bytes, ...]) -> None:
    _check_ids(members, 32)
    if len(set(members)) != len(members):
        raise ValueError("a member is listed twice")


def _check_epoch(value: int) -> None:
    if not 0 <= value <= MAX_WIRE_INT:
        raise ValueError("epochs and clocks must be from 0 to 2**63 - 1")


@wire_message(45)
@dataclass(frozen=True, slots=True)
class RoomInvite:
    """An invitation into a room, sent pairwise over an encrypted session by ``inviter``:
    the room's current epoch, its key for that epoch and its members (the invitee among
    them)."""

    TYPE_ID: ClassVar[int]
    room_id: bytes = limit(size=ROOM_ID_BYTES)
    name: str = limit(max_len=MAX_ROOM_NAME_CHARS)
    epoch: int = limit()  # required: limit() without a default, for mypy
    key: bytes = limit(size=ROOM_KEY_BYTES)
    members: tuple[bytes, ...] = limit(max_len=MAX_ROOM_MEMBERS)
    inviter: bytes = limit(size=32)
    # The room's Lamport clock as the sender knows it: a newcomer, who cannot read what
    # came before, starts there, so its first message sorts after the room's past.
    clock: int = 0
    # The room's topic as the sender knows it ("" if none): the newcomer cannot read the
    # message that set it.
    topic: str = limit(max_len=MAX_TOPIC_CHARS, default="")
    chained: bool = False  # the epoch's messages use sender chains (§15.7)

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        _check_epoch(self.clock)
        _check_members(self.members)


@wire_message(46)
@dataclass(frozen=True, slots=True)
class RoomKeyUpdate:
    """A new epoch of a room: its key and member list, sent pairwise by the member who
    changed the membership to every other member of the new list."""

    TYPE_ID: ClassVar[int]
    room_id: bytes = limit(size=ROOM_ID_BYTES)
    epoch: int = limit()  # required: limit() without a default, for mypy
    key: bytes = limit(size=ROOM_KEY_BYTES)
    members: tuple[bytes, ...] = limit(max_len=MAX_ROOM_MEMBERS)
    clock: int = 0  # the sender's room clock, as in RoomInvite
    chained: bool = False  # the epoch's messages use sender chains (§15.7)

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)
        _check_epoch(self.clock)
        _check_members(self.members)


@wire_message(47)
@dataclass(frozen=True, slots=True)
class RoomLeave:
    """``member`` leaves the room (or declines an invitation); sent pairwise, by the
    member itself, to every other member."""

    TYPE_ID: ClassVar[int]
    room_id: bytes = limit(size=ROOM_ID_BYTES)
    member: bytes = limit(size=32)


@wire_message(48)
@dataclass(frozen=True, slots=True)
class RoomEnvelope:
    """A room message: ``box`` is a RoomText encrypted with the room key of ``epoch``,
    and the whole envelope is signed by ``author``. Anyone can carry and check it; only
    members can read it."""

    TYPE_ID: ClassVar[int]
    room_id: bytes = limit(size=ROOM_ID_BYTES)
    epoch: int = limit()  # required: limit() without a default, for mypy
    msg_id: bytes = limit(size=MSG_ID_BYTES)
    author: bytes = limit(size=32)
    nonce: bytes = limit(size=ROOM_NONCE_BYTES)
    box: bytes = limit(max_len=MAX_ROOM_BOX)
    signature: bytes = limit(size=64)

    def __post_init__(self) -> None:
        _check_epoch(self.epoch)


# --- files (docs/protocol.md §16; sent only where both sides list the feature files/1) ---

FILES_FEATURE = "files/1"
ROOM_CHAINS_FEATURE = "room-chains/1"  # sender chains in room epochs (§15.7)
PADDING_FEATURE = "padding/1"  # transport plaintexts padded to Padmé sizes (§4.2)
FILE_ROOT_BYTES = 32
FILE_BLOCK_BYTES = 256 * 1024  # every block but a file's last is exactly this long
MAX_FILE_NAME_CHARS = 255
MAX_MEDIA_TYPE_CHARS = 127
MAX_THUMBNAIL_BYTES = 16 * 1024
MAX_FILE_BLOCKS_ASKED = 64  # block indices per FileRequest / FileUnavailable
MAX_PROOF_HASHES = 64  # a file of 2^63 bytes has 2^45 blocks: proofs of 45 hashes at most
MAX_ROOM_THUMBNAIL_BYTES = 8 * 1024  # a room file's: within the room box with its text
MAX_HAVE_BYTES = 8 * 1024  # a FileHave bitmap: room files have at most 65,536 blocks
FILE_ANSWERS = ("received", "accept", "decline", "cancel", "done")


@wire_message(49)
@dataclass(frozen=True, slots=True)
class RoomText:
    """The plaintext inside a RoomEnvelope's box: the room's Lamport ``clock``, the
    author's wall clock ``time`` in ms (shown, never trusted) and the text; ``action``:
    the text is something the author does (``/me``); ``topic``: the text is the room's
    new topic (``/topic``); ``joined``: the author's notice that it joined (§15.3), not
    stored as a message."""

    TYPE_ID: ClassVar[int]
    clock: int = 0
    time: int = 0
    text: str = limit(max_len=MAX_TEXT_CHARS, default="")
    action: bool = False
    topic: bool = False
    joined: bool = False
    keyed: bool = False  # a key notice (§15.7): the author holds this epoch's key
    # The author's nick as it wrote (§15.2): a name for members who see no presence of
    # it (not a contact, in private discovery); shown as a presence nick is, no more.
    nick: str = limit(max_len=MAX_NICK_CHARS, default="")
    # A file shared with the room (§16.4): empty file_root for none.
    file_root: bytes = limit(max_len=FILE_ROOT_BYTES, default=b"")
    file_size: int = 0
    file_name: str = limit(max_len=MAX_FILE_NAME_CHARS, default="")
    file_type: str = limit(max_len=MAX_MEDIA_TYPE_CHARS, default="")
    file_thumbnail: bytes = limit(max_len=MAX_ROOM_THUMBNAIL_BYTES, default=b"")

    def __post_init__(self) -> None:
        if not (0 <= self.clock <= MAX_WIRE_INT and 0 <= self.time <= MAX_WIRE_INT):
            raise ValueError("clock and time must be from 0 to 2**63 - 1")
        if len(self.file_root) not in (0, FILE_ROOT_BYTES):
            raise ValueError("a file root has 32 bytes")
        if not 0 <= self.file_size <= MAX_WIRE_INT:
            raise ValueError("a file size must be from 0 to 2**63 - 1")


# --- room broadcast (docs/protocol.md §14) ---

TOPIC_BYTES = 16
MAX_ROOM_PAYLOAD = 24 * 1024  # a sealed room message (the sealed chat message and its key)
MAX_ROOM_IDS = 64
MAX_ROOM_DIGEST_IDS = 256
MAX_ROOM_ROUND = 65_535  # hops from the origin; a tree over 10,000 members is far shallower


def _check_round(value: int) -> None:
    if not 0 <= value <= MAX_ROOM_ROUND:
        raise ValueError(f"a round must be from 0 to {MAX_ROOM_ROUND}")


@wire_message(40)
@dataclass(frozen=True, slots=True)
class RoomGossip:
    """A room message pushed along the topic's broadcast tree (eager push).

    ``round`` counts hops from the origin (0 at the origin). ``repair`` marks a
    catch-up answer to a ``RoomDigest``: old news, delivered but not pushed on.
    """

    TYPE_ID: ClassVar[int]
    topic: bytes = limit(size=TOPIC_BYTES)
    msg_id: bytes = limit(size=MSG_ID_BYTES)
    round: int = 0
    payload: bytes = limit(max_len=MAX_ROOM_PAYLOAD, default=b"")
    repair: bool = False

    def __post_init__(self) -> None:
        _check_round(self.round)


@wire_message(41)
@dataclass(frozen=True, slots=True)
class RoomIHave:
    """Lazy announcement: the sender holds these messages (``rounds[i]`` for ``ids[i]``)."""

    TYPE_ID: ClassVar[int]
    topic: bytes = limit(size=TOPIC_BYTES)
    ids: tuple[bytes, ...] = limit(max_len=MAX_ROOM_IDS, default=())
    rounds: tuple[int, ...] = limit(max_len=MAX_ROOM_IDS, default=())

    def __post_init__(self) -> None:
        _check_ids(self.ids)
        if len(self.rounds) != len(self.ids):
            raise ValueError("rounds must have one entry per id")
        for value in self.rounds:
            _check_round(value)


@wire_message(42)
@dataclass(frozen=True, slots=True)
class RoomGraft:
    """Make the sender an eager peer of the receiver again, and send it these messages."""

    TYPE_ID: ClassVar[int]
    topic: bytes = limit(size=TOPIC_BYTES)
    ids: tuple[bytes, ...] = limit(max_len=MAX_ROOM_IDS, default=())

    def __post_init__(self) -> None:
        _check_ids(self.ids)


@wire_message(43)
@dataclass(frozen=True, slots=True)
class RoomPrune:
    """The receiver's eager push to the sender is redundant: announce lazily instead."""

    TYPE_ID: ClassVar[int]
    topic: bytes = limit(size=TOPIC_BYTES)


@wire_message(44)
@dataclass(frozen=True, slots=True)
class RoomDigest:
    """Catch-up: the ids of the sender's newest messages in the topic, newest first.

    The receiver answers with ``RoomGossip{repair: true}`` for its newest messages
    that are not listed (bounded, newest first), and with a digest of its own if
    ``want_reply`` (so that the exchange repairs both sides).
    """

    TYPE_ID: ClassVar[int]
    topic: bytes = limit(size=TOPIC_BYTES)
    ids: tuple[bytes, ...] = limit(max_len=MAX_ROOM_DIGEST_IDS, default=())
    want_reply: bool = False

    def __post_init__(self) -> None:
        _check_ids(self.ids)


# --- files (docs/protocol.md §16; sent only where both sides list the feature files/1) ---

# (the constants of files are above RoomText, which carries a room's files)


def _check_block_indices(blocks: tuple[int, ...]) -> None:
    for index in blocks:
        if not 0 <= index <= MAX_WIRE_INT:
            raise ValueError("a block index must be from 0 to 2**63 - 1")


@wire_message(50)
@dataclass(frozen=True, slots=True)
class FileOffer:
    """A file offered in a conversation: named by its ``root`` (§16.1) and ``size``; the
    ``name`` and ``media_type`` are the sender's suggestions (§16.2); ``thumbnail`` a
    small preview of an image (JPEG or PNG), or empty; ``time`` the sender's wall clock
    in ms (shown, never trusted)."""

    TYPE_ID: ClassVar[int]
    offer_id: bytes = limit(size=MSG_ID_BYTES)
    root: bytes = limit(size=FILE_ROOT_BYTES)
    size: int = 0
    name: str = limit(max_len=MAX_FILE_NAME_CHARS, default="")
    media_type: str = limit(max_len=MAX_MEDIA_TYPE_CHARS, default="")
    thumbnail: bytes = limit(max_len=MAX_THUMBNAIL_BYTES, default=b"")
    time: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.size <= MAX_WIRE_INT and 0 <= self.time <= MAX_WIRE_INT):
            raise ValueError("size and time must be from 0 to 2**63 - 1")


@wire_message(51)
@dataclass(frozen=True, slots=True)
class FileAnswer:
    """What became of an offer: the receiver stored it (``received``), ``accept``s it
    (and will request blocks), ``decline``s it, or has it all verified (``done``);
    either side may ``cancel``."""

    TYPE_ID: ClassVar[int]
    offer_id: bytes = limit(size=MSG_ID_BYTES)
    state: str = limit(max_len=16)
    reason: str = limit(max_len=256, default="")

    def __post_init__(self) -> None:
        if self.state not in FILE_ANSWERS:
            raise ValueError(f"unknown file answer {self.state!r}")


@wire_message(52)
@dataclass(frozen=True, slots=True)
class FileRequest:
    """Send me these blocks of the file named ``root``."""

    TYPE_ID: ClassVar[int]
    root: bytes = limit(size=FILE_ROOT_BYTES)
    blocks: tuple[int, ...] = limit(max_len=MAX_FILE_BLOCKS_ASKED, default=())

    def __post_init__(self) -> None:
        _check_block_indices(self.blocks)


@wire_message(53)
@dataclass(frozen=True, slots=True)
class FileBlock:
    """Block ``index`` of the file named ``root``, with its ``proof`` (§16.1)."""

    TYPE_ID: ClassVar[int]
    root: bytes = limit(size=FILE_ROOT_BYTES)
    index: int = 0
    data: bytes = limit(max_len=FILE_BLOCK_BYTES, default=b"")
    proof: tuple[bytes, ...] = limit(max_len=MAX_PROOF_HASHES, default=())

    def __post_init__(self) -> None:
        _check_block_indices((self.index,))
        _check_ids(self.proof, FILE_ROOT_BYTES)


@wire_message(54)
@dataclass(frozen=True, slots=True)
class FileUnavailable:
    """The sender will not send these blocks of ``root`` now: ``reason`` is ``unknown``
    (it holds no such file), ``not-allowed`` (not offered to you), ``busy`` (ask again
    later) or ``gone`` (the offer was cancelled or the file changed on its disk)."""

    TYPE_ID: ClassVar[int]
    root: bytes = limit(size=FILE_ROOT_BYTES)
    blocks: tuple[int, ...] = limit(max_len=MAX_FILE_BLOCKS_ASKED, default=())
    reason: str = limit(max_len=64, default="")

    def __post_init__(self) -> None:
        _check_block_indices(self.blocks)


@wire_message(55)
@dataclass(frozen=True, slots=True)
class FileHave:
    """The blocks of the room file ``root`` the sender holds verified (§16.4): one bit
    per block, block 0 the lowest bit of the first byte."""

    TYPE_ID: ClassVar[int]
    root: bytes = limit(size=FILE_ROOT_BYTES)
    held: bytes = limit(max_len=MAX_HAVE_BYTES, default=b"")


# --------------------------------------------------------------------------- discovery

ANNOUNCE_FEATURE = "announce/1"  # private announcements: contacts' announce keys (§10.2)
ANNOUNCE_KEY_BYTES = 32


@wire_message(60)
@dataclass(frozen=True, slots=True)
class AnnounceKey:
    """The sender's announce key (§10.2): what lets a contact recognise the tokens of
    its private mDNS records. ``generation`` grows each time the key is replaced (a
    contact removed or blocked), so an older key arriving late never replaces it."""

    TYPE_ID: ClassVar[int]
    key: bytes = limit(size=ANNOUNCE_KEY_BYTES)
    generation: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.generation <= MAX_WIRE_INT:
            raise ValueError("generation must be from 0 to 2**63 - 1")


ONION_FEATURE = "onion/1"  # contacts tell each other their onion address (§19.2)
MAX_ONION_ADDRESS_CHARS = 80  # "<56 characters>.onion:<port>" with room to spare


@wire_message(61)
@dataclass(frozen=True, slots=True)
class OnionAddress:
    """Where the sender's onion service answers (§19.2), sent to a contact only, over
    a session that lists ``onion/1``: so the contact can dial back from anywhere."""

    TYPE_ID: ClassVar[int]
    address: str = limit(max_len=MAX_ONION_ADDRESS_CHARS)
