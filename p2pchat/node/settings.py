"""What a node is started with (:class:`NodeSettings`), and the invite codes it hands
out (:class:`Invitation`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pchat.discovery.known import KnownPeers, Target
from p2pchat.diskfaults import DiskHealth
from p2pchat.mesh.config import MeshConfig
from p2pchat.net.connection import ConnectionConfig
from p2pchat.net.slots import LinkLimits
from p2pchat.node.chat import ChatSettings
from p2pchat.node.files import FileSettings
from p2pchat.store import Store
from p2pchat.tor.process import TorSettings


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invite code we handed out: ``expires`` (ms since the epoch) ends its token."""

    code: str
    addresses: list[str]
    expires: int


@dataclass(slots=True)
class NodeSettings:
    nick: str = ""
    status: str = "avail"
    status_text: str = ""
    host: str = "0.0.0.0"
    port: int = 0
    mdns: bool = True
    announce_nick: bool = True
    # Announce a token only contacts recognise instead of id, nick and status
    # (docs/protocol.md §10.2); needs a store (where the announce keys are).
    private_discovery: bool = False
    interfaces: list[str] | None = None
    static: list[Target] = field(default_factory=list)
    known_peers: KnownPeers | None = None
    mesh: MeshConfig = field(default_factory=MeshConfig)
    limits: LinkLimits = field(default_factory=LinkLimits)
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    seed: int | None = None  # for repeatable tests; None: the OS's randomness
    store: Store | None = None  # without one the node carries presence only, no chat
    chat: ChatSettings = field(default_factory=ChatSettings)
    files: FileSettings = field(default_factory=FileSettings)
    # One per process, shared with the log and the profile; the node makes its own if
    # none is given, and hands it to the store and the address book.
    disk: DiskHealth | None = None
    # Talk to contacts only (docs/protocol.md §13.6): strangers' handshakes are refused
    # (`contacts-only`), nobody else is dialled, relayed for or gossiped with; invite
    # codes still admit whoever redeems them.
    contacts_only: bool = False
    # The XMPP link-local bridge (XEP-0174; off by default, needs mDNS): our user
    # announced on _presence._tcp under ``xmpp_name`` (empty: nick@host), Pidgin's and
    # finch's users seen and spoken to, unencrypted (docs/protocol.md §18).
    xmpp_link_local: bool = False
    xmpp_name: str = ""
    xmpp_port: int = 5298
    # Our own tor and onion service (--tor, docs/protocol.md §19; None: off): contacts
    # reached beyond the LAN, by the onion address invite codes carry.
    tor: TorSettings | None = None
