"""Every message p2pchat puts on the wire, as frozen dataclasses: the one schema.

Each message class carries a stable numeric ``TYPE_ID``; only :mod:`p2pchat.wire.codec`
turns these objects into bytes and back. Field names are part of the wire format
(they are the map keys), so rename nothing that has shipped: add fields with defaults
instead, and old peers ignore them.

Per-field limits live in the field metadata (see :func:`limit`); the codec enforces
them on decode so a peer can never make us hold more than the schema allows.
"""

from __future__ import annotations

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


def limit(*, max_len: int | None = None, size: int | None = None, default: Any = ...) -> Any:
    """A dataclass field with wire limits: ``max_len`` (items, chars or bytes) or exact ``size``."""
    metadata = {"max_len": max_len, "size": size}
    if default is ...:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


# --- handshake payloads (inside Noise handshake messages, see docs/protocol.md) ---


@wire_message(1)
@dataclass(frozen=True, slots=True)
class HandshakeHello:
    """Payload of handshake message 1 (sent in clear, authenticated by the handshake hash)."""

    TYPE_ID: ClassVar[int]
    versions: tuple[int, ...] = limit(max_len=16)


@wire_message(2)
@dataclass(frozen=True, slots=True)
class HandshakeAuth:
    """Payload of handshake messages 2 and 3: who we are and what we speak."""

    TYPE_ID: ClassVar[int]
    identity_key: bytes = limit(size=32)
    # Ed25519 signature by identity_key over b"p2pchat-noise-static-key:" || noise static key.
    signature: bytes = limit(size=64)
    version: int = 0
    features: tuple[str, ...] = limit(max_len=64, default=())


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


@wire_message(5)
@dataclass(frozen=True, slots=True)
class Ping:
    """Keepalive and round-trip probe; answered by a Pong with the same nonce and data."""

    TYPE_ID: ClassVar[int]
    nonce: int
    data: bytes = b""  # bounded by the session's maximum message size


@wire_message(6)
@dataclass(frozen=True, slots=True)
class Pong:
    TYPE_ID: ClassVar[int]
    nonce: int
    data: bytes = b""  # bounded by the session's maximum message size


# --- mesh ---


@wire_message(10)
@dataclass(frozen=True, slots=True)
class PresenceRecord:
    """A node's presence, signed by the node itself (see docs/protocol.md §11).

    Only the owner can make a valid record, and only a higher ``version`` replaces
    an older one, so relays can carry records but never forge, alter or roll them back.
    """

    TYPE_ID: ClassVar[int]
    owner: bytes = limit(size=32)
    version: int = 0
    nick: str = limit(max_len=32, default="")
    status: str = limit(max_len=16, default="avail")
    status_text: str = limit(max_len=140, default="")
    addresses: tuple[str, ...] = limit(max_len=8, default=())
    protocol: int = 1
    signature: bytes = limit(size=64, default=bytes(64))


@dataclass(frozen=True, slots=True)
class MeshClaim:
    """One node's claim that ``subject`` (at record ``version``) is suspect or dead.

    Only the subject can answer it, by publishing a record with a higher version.
    """

    subject: bytes = limit(size=32)
    version: int = 0
    state: str = limit(max_len=8, default="suspect")  # "suspect" | "dead"
    accuser: bytes = limit(size=32, default=bytes(32))


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """What a node knows of one member: the record version and whether it thinks it dead."""

    owner: bytes = limit(size=32)
    version: int = 0
    dead: bool = False


MAX_PIGGYBACK = 8
MAX_GOSSIP_ITEMS = 256
MAX_DIGEST_ENTRIES = 10_000


@wire_message(20)
@dataclass(frozen=True, slots=True)
class MeshPing:
    """A direct probe; answered by ``MeshAck`` with the same ``seq``. Carries gossip."""

    TYPE_ID: ClassVar[int]
    seq: int
    records: tuple[PresenceRecord, ...] = limit(max_len=MAX_PIGGYBACK, default=())
    claims: tuple[MeshClaim, ...] = limit(max_len=MAX_PIGGYBACK, default=())


@wire_message(21)
@dataclass(frozen=True, slots=True)
class MeshAck:
    TYPE_ID: ClassVar[int]
    seq: int
    records: tuple[PresenceRecord, ...] = limit(max_len=MAX_PIGGYBACK, default=())
    claims: tuple[MeshClaim, ...] = limit(max_len=MAX_PIGGYBACK, default=())


@wire_message(22)
@dataclass(frozen=True, slots=True)
class MeshProbeRequest:
    """Ask a neighbour to probe ``target`` for us (SWIM's indirect probe)."""

    TYPE_ID: ClassVar[int]
    seq: int
    target: bytes = limit(size=32)


@wire_message(23)
@dataclass(frozen=True, slots=True)
class MeshProbeResult:
    """The answer to a ``MeshProbeRequest``: ``reached`` false is Lifeguard's nack."""

    TYPE_ID: ClassVar[int]
    seq: int
    target: bytes = limit(size=32)
    reached: bool = False


@wire_message(24)
@dataclass(frozen=True, slots=True)
class MeshGossip:
    """Eager push of news: records and claims the sender has just accepted.

    ``repair`` marks the answer to a digest exchange (old news the receiver lacked).
    """

    TYPE_ID: ClassVar[int]
    records: tuple[PresenceRecord, ...] = limit(max_len=MAX_GOSSIP_ITEMS, default=())
    claims: tuple[MeshClaim, ...] = limit(max_len=MAX_GOSSIP_ITEMS, default=())
    repair: bool = False


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
    with its full entries (``want_reply`` true) and the two send each other what the
    other lacks.
    """

    TYPE_ID: ClassVar[int]
    summary: bytes = limit(size=16)
    entries: tuple[DigestEntry, ...] = limit(max_len=MAX_DIGEST_ENTRIES, default=())
    full: bool = False
    want_reply: bool = False


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
    sender's wall clock in milliseconds since the Unix epoch (shown, never trusted)."""

    TYPE_ID: ClassVar[int]
    msg_id: bytes = limit(size=MSG_ID_BYTES)
    clock: int = 0
    time: int = 0
    text: str = limit(max_len=MAX_TEXT_CHARS, default="")

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
