"""Everything a node tells its front ends: one typed vocabulary, in one module.

A node's observations arrive as one stream of these frozen values (``Node.events``).
Ids are bytes here — a peer's public key, a message id, a room id — and become text
(a peer id, hex) only at the edges that show or serialise them: the JSON-lines API
(:mod:`p2pchat.api.events`) and the chat window. A status is a
:class:`~p2pchat.wire.messages.Status`; a message state a
:class:`~p2pchat.chat.rules.MessageState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from p2pchat.chat.rules import MessageState
from p2pchat.diskfaults import DiskRecovered, DiskTrouble
from p2pchat.wire.messages import Status

__all__ = [
    "ChatEvent",
    "ContactRequest",
    "DiscoveryNote",
    "DiskRecovered",
    "DiskTrouble",
    "EventsDropped",
    "FileEvent",
    "LinkLocalMessage",
    "LinkLocalPresence",
    "Listening",
    "MessageIn",
    "NodeEvent",
    "PeerConnected",
    "PeerDisconnected",
    "Presence",
    "Receipt",
    "RoomChanged",
    "RoomEvent",
    "RoomGone",
    "RoomInvited",
    "RoomMemberJoined",
    "RoomMessageIn",
]

# ---------------------------------------------------------------------- the node


@dataclass(frozen=True, slots=True)
class Listening:
    peer: bytes
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TorState:
    """Where our tor stands (--tor, docs/protocol.md §19): ``starting``, ``connecting``
    (``progress`` percent bootstrapped, ``step`` in tor's words), ``on`` (``address``:
    our onion service, as invite codes carry it) or ``failed`` (``reason``; the LAN
    side keeps working)."""

    state: str
    progress: int = 0
    step: str = ""
    address: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PeerConnected:
    peer: bytes
    address: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    peer: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Presence:
    """How a member looks now: shown ``status`` is OFFLINE once it is dead or left.

    ``proven``: a session or a verified handshake showed us this peer; otherwise only
    gossip vouches for it (anyone can make up identities). State ``forgotten``: the
    member was dropped from the full member list; treat it as unknown.
    """

    peer: bytes
    nick: str
    status: Status
    status_text: str
    state: str  # alive / suspect / dead / left / forgotten
    version: int
    is_self: bool = False
    proven: bool = False
    network: str = ""  # the private network we met it in (docs/protocol.md §17), if any


@dataclass(frozen=True, slots=True)
class DiscoveryNote:
    """What discovery saw (discovered, verified, gone, spoof...), as the CLI prints it."""

    name: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventsDropped:
    """``count`` events were dropped here, the oldest first: the reader fell behind."""

    count: int


# ---------------------------------------------------------------------- chat


@dataclass(frozen=True, slots=True)
class MessageIn:
    """A message was stored (first time only). ``request``: it waits in the requests box."""

    peer: bytes
    msg_id: bytes
    text: str
    time: int
    clock: int
    request: bool
    relayed: bool
    action: bool = False  # a /me line


@dataclass(frozen=True, slots=True)
class Receipt:
    """One of our messages moved on: sent, delivered or read."""

    peer: bytes
    msg_id: bytes
    state: MessageState


@dataclass(frozen=True, slots=True)
class ContactRequest:
    """A stranger wrote for the first time; their messages wait until accepted."""

    peer: bytes
    nick: str
    address: str
    text: str


ChatEvent = MessageIn | Receipt | ContactRequest


# ---------------------------------------------------------------------- rooms


@dataclass(frozen=True, slots=True)
class RoomMessageIn:
    room: bytes
    msg_id: bytes
    author: bytes
    text: str
    time: int
    clock: int
    own: bool
    action: bool = False  # a /me line
    topic: bool = False  # the text is the room's new topic
    file: bool = False  # the message shares a file (its FileEvent follows)


@dataclass(frozen=True, slots=True)
class RoomInvited:
    room: bytes
    name: str
    inviter: bytes


@dataclass(frozen=True, slots=True)
class RoomChanged:
    """Joined, or the members or key changed. ``by``: whose message made the change
    (our own key for our own commands; empty if not known). A member who is gone and
    was ``by`` left; a member gone by someone else's key update was removed, or left
    and the update came before their own notice."""

    room: bytes
    name: str
    epoch: int
    members: tuple[bytes, ...]
    by: bytes = b""


@dataclass(frozen=True, slots=True)
class RoomMemberJoined:
    """Someone we invited took part in the room for the first time (their first room
    message or gossip reached us, §15.3). Only the inviter learns it: the others saw
    the invitation as a change of the member list."""

    room: bytes
    member: bytes


@dataclass(frozen=True, slots=True)
class RoomGone:
    room: bytes
    reason: str  # "left" | "removed"


RoomEvent = RoomMessageIn | RoomInvited | RoomChanged | RoomMemberJoined | RoomGone


@dataclass(frozen=True, slots=True)
class FileEvent:
    """A file offer or transfer changed (docs/protocol.md §16). ``kind``: ``offer`` (a
    peer offered us a file), ``answer`` (the state moved: accepted, declined, cancelled
    and so on), ``progress`` (a few times a second at most), ``done`` or ``failed``
    (with a ``reason``). ``done_bytes``: theirs, the bytes held; ours, the bytes this
    node has sent of it since it started (more than the size when blocks went again
    after a lost session). ``path``: ours, the file we serve; theirs, where it was
    saved once done."""

    kind: str
    offer_id: bytes
    peer: bytes
    outgoing: bool
    name: str
    size: int
    state: str
    done_bytes: int = 0
    reason: str = ""
    path: str = ""
    room: bytes = b""  # a file shared with this room (``peer``: its author)


# ------------------------------------------------------- XMPP link-local (XEP-0174)


@dataclass(frozen=True, slots=True)
class LinkLocalPresence:
    """An XMPP link-local peer appeared, changed (``gone`` False) or left. Nothing it
    says is encrypted or proven: its record is anyone's word on the network."""

    jid: str  # user@machine, its instance name
    name: str
    status: Status = Status.OFFLINE
    message: str = ""
    addresses: tuple[str, ...] = ()
    client: str = ""
    gone: bool = False


@dataclass(frozen=True, slots=True)
class LinkLocalMessage:
    """A message from an XMPP link-local peer: it came unencrypted, from whoever sent it
    from the address its record announced."""

    jid: str
    text: str
    time: int  # our clock, ms: XEP-0174 messages carry no time
    request: bool = False  # not a contact: it waits for our user's say
    row_id: int = 0  # in the store (0: not kept, a node without one)


NodeEvent = (
    Listening
    | PeerConnected
    | PeerDisconnected
    | Presence
    | DiscoveryNote
    | ChatEvent
    | RoomEvent
    | FileEvent
    | EventsDropped
    | DiskTrouble
    | DiskRecovered
    | LinkLocalPresence
    | LinkLocalMessage
    | TorState
)
