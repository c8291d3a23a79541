"""The Node: one nursery running the listener, discovery, links and the mesh.

Every front end (daemon, TUI, tests) drives a node the same way::

    async with open_node(identity, NodeSettings(nick="ann")) as node:
        await node.set_presence(status="away")
        async for event in node.events:
            ...

Commands are methods; everything the node observes arrives as one stream of typed
:data:`NodeEvent` values. Leaving the ``async with`` announces a graceful leave to
the mesh, says goodbye on mDNS and closes every session, promptly.

The node's parts: settings (node/settings.py), whom it admits (node/admission.py),
discovery and dialling (node/dialling.py), the mesh's runner (node/meshrun.py),
presence events (node/presence.py), and its side of the link manager
(node/link_owner.py). This module wires them and holds the command surface.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import trio

from p2pchat import __version__
from p2pchat.addresses import format_host_port
from p2pchat.backlog import approx_size
from p2pchat.discovery.known import Target, make_invite
from p2pchat.discovery.mdns import local_addresses
from p2pchat.diskfaults import DiskEvent, DiskHealth, DiskRecovered
from p2pchat.errors import ConnectionClosed, StoreError
from p2pchat.feed import Feed
from p2pchat.identity import Identity, decode_peer_id, encode_peer_id
from p2pchat.mesh.core import MemberForgotten, Mesh, MeshEvent, PresenceChanged
from p2pchat.mesh.membership import State
from p2pchat.mesh.presence import make_record, next_version
from p2pchat.net.groups import raise_sole
from p2pchat.net.links import LinkManager
from p2pchat.net.server import listener_addresses, serve_secure
from p2pchat.node.admission import Admission
from p2pchat.node.announce import AnnounceKeys
from p2pchat.node.chat import ChatService
from p2pchat.node.dialling import Dialler
from p2pchat.node.events import (
    ChatEvent,
    ContactRequest,
    DiscoveryNote,
    EventsDropped,
    Listening,
    MessageIn,
    NodeEvent,
    Presence,
)
from p2pchat.node.files import FileService
from p2pchat.node.link_owner import NodeLinkOwner
from p2pchat.node.meshrun import MeshRunner, log_refusal
from p2pchat.node.networks import NetworkMembers, WithNetworks
from p2pchat.node.onion import OnionService
from p2pchat.node.presence import PresenceBoard
from p2pchat.node.remote import RemoteContacts
from p2pchat.node.rooms import RoomService
from p2pchat.node.settings import Invitation as Invitation
from p2pchat.node.settings import NodeSettings as NodeSettings
from p2pchat.node.xmpp.bridge import LinkLocalSettings, XmppBridge
from p2pchat.node.xmpp.chats import LinkLocalChats
from p2pchat.ratelimit import LogLimiter
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import (
    ANNOUNCE_FEATURE,
    FILES_FEATURE,
    ONION_FEATURE,
    ROOM_CHAINS_FEATURE,
    SETTABLE_STATUSES,
)

log = logging.getLogger("p2pchat.node")

# Every front end moves events on at each wake-up and never waits for its own reader
# (each has its own bounded queue), so this only has to hold what the node emits
# between two scheduling points: a chat batch (2,048 inputs) and the receipts of the
# windows it frees. When nobody reads at all, the oldest go, with an EventsDropped.
EVENT_BUFFER = 16_384
EVENT_BUFFER_BYTES = 16 * 1024 * 1024  # roughly counted (approx_size)


class Node:
    def __init__(self, identity: Identity, settings: NodeSettings, nursery: trio.Nursery) -> None:
        self.identity = identity
        self.settings = settings
        self.peer_id = identity.peer_id
        self._nursery = nursery
        self._rng = random.Random(settings.seed)
        self.events = Feed[NodeEvent](EVENT_BUFFER, EVENT_BUFFER_BYTES, marker=EventsDropped)
        # A front end that can take an event at once, without blocking (the daemon: a
        # line into a pipe), sets this: an event then reaches it in the step that made
        # it instead of a step of its reader's own. It returns False to have the event
        # queued in ``events`` instead, and is asked only while nothing waits there, so
        # the order of events holds.
        self.take_event: Callable[[NodeEvent], bool] | None = None
        self._drop_log = LogLimiter()
        self.addresses: tuple[str, ...] = ()
        self._bound: list[tuple[str, int]] = []  # our listeners' (host, port)
        self.announce: AnnounceKeys | None = None
        self.networks = NetworkMembers(
            settings.store.networks() if settings.store is not None else []
        )
        if settings.store is not None:
            # Members are dialled under their network, and a member's message 1 is read
            # under its network's key whether or not we hide from strangers (§17.1).
            # Looked up at each handshake: networks joined while running count at once.
            settings.connection = dataclasses.replace(
                settings.connection,
                session=dataclasses.replace(
                    settings.connection.session,
                    network_for=self.networks.network_of,
                    networks=self.networks.all,
                    authorize_member=lambda peer, invite: self.admission.authorize_chosen(
                        peer, invite
                    ),
                ),
            )
        if settings.store is not None:
            # With a store the node takes files and keeps announce keys: its sessions
            # say so (§16.3, §10.2); it knocks on its contacts' doors, and in private
            # discovery it answers only those who knock (§3).
            self.announce = AnnounceKeys(settings.store, identity)
            session = settings.connection.session
            session = dataclasses.replace(
                session,
                features=session.features
                | {FILES_FEATURE, ANNOUNCE_FEATURE, ROOM_CHAINS_FEATURE}
                # Contacts tell each other their onion address (§19.2) when Tor is on.
                | ({ONION_FEATURE} if settings.tor is not None else set()),
                knock_key=self.announce.knock_key,
                knock_keys=self.announce.knock_keys if settings.private_discovery else None,
                known_knocks=self.announce.known_knocks,
            )
            settings.connection = dataclasses.replace(settings.connection, session=session)
        self.links = LinkManager(
            identity,
            nursery,
            NodeLinkOwner(self, self._emit),
            config=settings.connection,
            limits=settings.limits,
            rng=random.Random(self._rng.getrandbits(64)),
        )
        # Before the services, which ask who is online as they load.
        self.mesh_runner = MeshRunner(self.links, self._on_mesh_event)
        self.store = settings.store
        self.disk = settings.disk or DiskHealth()
        token = trio.lowlevel.current_trio_token()
        self.disk.attach(partial(_report_soon, token, self._disk_event))
        if settings.store is not None and settings.store.health is None:
            settings.store.health = self.disk
        if settings.known_peers is not None and settings.known_peers.health is None:
            settings.known_peers.health = self.disk
        self.chat: ChatService | None = None
        self.rooms: RoomService | None = None
        self.files: FileService | None = None
        if settings.store is not None:
            self.chat = ChatService(
                identity,
                settings.store,
                links=self.links,
                peers=self,
                emit=self._chat_event,
                settings=settings.chat,
                rng=random.Random(self._rng.getrandbits(64)),
                contacts_only=settings.contacts_only,
            )
            self.rooms = RoomService(
                identity,
                settings.store,
                links=self.links,
                peers=self,
                relations=WithNetworks(self.chat, self.networks),
                emit=self._emit,
                rng=random.Random(self._rng.getrandbits(64)),
            )
            self.rooms.own_nick = self._own_nick
            self.files = FileService(
                settings.store, self.links, self.chat, self._emit, settings.files,
                me=identity.public_key, rooms=self.rooms,
            )  # fmt: skip
            assert self.announce is not None
            self.announce.links = self.links
            self.chat.on_contact_added = self.announce.contact_added
            self.chat.on_contact_dropped = self.announce.contact_dropped
            self.chat.on_code_redeemed = self.announce.code_redeemed

        # The node's parts (the link manager asks them through its owner).
        self.admission = Admission(self.chat, contacts_only=settings.contacts_only)
        self._presence = PresenceBoard(identity.public_key, self._emit, self.chat, self.rooms,
                                       network_of=self._network_name)  # fmt: skip
        self.onion: OnionService | None = None
        if settings.tor is not None:
            self.onion = OnionService(identity, settings.tor, settings.connection.transports,
                                      self._emit)  # fmt: skip
        self.xmpp: XmppBridge | None = None
        if settings.xmpp_link_local:
            self.xmpp = XmppBridge(
                LinkLocalSettings(settings.nick, settings.status, settings.status_text,
                                  host=settings.host, port=settings.xmpp_port,
                                  name=settings.xmpp_name),
                self._emit, __version__,
            )  # fmt: skip
            if settings.store is not None:
                self.xmpp.chats = LinkLocalChats(settings.store, self._emit)
        self.dialler = Dialler(
            identity,
            settings,
            chat=self.chat,
            admission=self.admission,
            mesh=self.mesh_runner,
            rng=self._rng,
            emit=self._emit,
            announce=self.announce,
            networks=self.networks,
            xmpp=self.xmpp,
        )
        self.dialler.found_direct = self.links.prefer_direct
        self.dialler.through_tor = lambda peer: self.reached_via(peer) == "tor"
        self.dialler.addresses_moved = self._addresses_moved
        self.remote: RemoteContacts | None = None
        if self.onion is not None:
            self.onion.links = self.links
            self.onion.is_contact = self.admission.is_contact
            self.onion.remember = self.dialler.remember_address
            transports = settings.connection.transports
            self.remote = RemoteContacts(
                self.links,
                contacts=self._contact_keys,
                resolve=self.dialler.resolve,
                on_lan=self._on_lan,
                tor_ready=lambda: transports.tor_socks is not None,
                rng=random.Random(self._rng.getrandbits(64)),
            )

    def _contact_keys(self) -> list[bytes]:
        store = self.store
        if store is None:
            return []
        try:
            return [c.peer for c in store.contacts() if c.is_contact and not c.blocked]
        except StoreError as error:  # asked again in half a minute
            log.debug("cannot list contacts to keep in touch: %s", error)
            return []

    def _on_lan(self, peer: bytes) -> bool:
        """Whether the mesh shows ``peer`` online on the LAN (not through Tor alone)."""
        mesh = self.mesh
        if mesh is None:
            return False
        member = mesh.members.get(peer)
        return member is not None and member.online and not mesh.members.is_pairwise(peer)

    def reload_networks(self) -> list[str]:
        """Read our private networks from the store again (one was joined or left by
        `p2pchat network` while we run): announce and browse under each now. Their
        names."""
        if self.store is None:
            return []
        self.networks.replace(self.store.networks())
        self.dialler.networks_changed()
        ours = self.networks.all()
        for peer, link in list(self.links.links.items()):
            network = link.connection.network
            if network is not None and network not in ours:  # one we left: its sessions end
                self.links.close(peer, "bye", f"we left the network {network.name}")
        return [network.name for network in ours]

    def anonymous_nearby(self) -> int:
        """p2pchat nodes mDNS shows nearby that announce a token no key of ours knows."""
        return self.dialler.anonymous_nearby()

    def _network_name(self, peer: bytes) -> str:
        network = self.networks.network_of(peer)
        return network.name if network is not None else ""

    @property
    def mesh(self) -> Mesh | None:
        """The mesh, once the node has started."""
        return self.mesh_runner.mesh

    def _reachable_at(self, machine: Callable[[], list[str]]) -> tuple[str, ...]:
        """Where others reach our listener: its own address, or the machine's when it
        listens on all of them (``machine()``)."""
        port = self._bound[0][1]
        hosts = [host for host, _ in self._bound]
        if any(host in ("0.0.0.0", "::") for host in hosts):
            hosts = machine()
        return tuple(format_host_port(host, port) for host in hosts)[:8]

    def _addresses_moved(self, machine: list[str]) -> None:
        """The machine is on another network: our record names where we are now
        (contacts dial us there), and the user hears of it."""
        addresses = self._reachable_at(lambda: machine)
        self.dialler.note("network_changed", "network changed: now on " + ", ".join(addresses),
                          addresses=list(addresses))  # fmt: skip
        if addresses == self.addresses or self.mesh_runner.mesh is None:
            return
        self.addresses = addresses
        self.mesh_runner.mesh.update_presence(trio.current_time(), addresses=addresses)
        self.mesh_runner.pump()

    # ------------------------------------------------------------------ commands

    def require_chat(self) -> ChatService:
        if self.chat is None:
            raise RuntimeError("this node was started without a message store")
        return self.chat

    async def set_presence(
        self,
        *,
        nick: str | None = None,
        status: str | None = None,
        status_text: str | None = None,
    ) -> None:
        """Publish a new nick, status (avail/away/dnd) or status text to the mesh."""
        if status is not None and status not in SETTABLE_STATUSES:
            raise ValueError(f"unknown status {status!r}: use avail, away or dnd")
        mesh = self._require_mesh()
        mesh.update_presence(trio.current_time(), nick=nick, status=status, status_text=status_text)
        self.mesh_runner.pump()
        if self.xmpp is not None:
            await self.xmpp.set_presence(nick=nick, status=status, text=status_text)

    def introduce(self, peer_id: str, address: str | None = None) -> None:
        """Tell the node about a peer to join through (an invite, a static peer)."""
        key = decode_peer_id(peer_id)
        if address:
            self.dialler.hint(key, address)
        self._require_mesh().introduce([key], trio.current_time())
        self.mesh_runner.pump()

    def members(self) -> list[Presence]:
        mesh = self._require_mesh()
        return [
            self._presence.presence(member.record, member.state, member.proven)
            for member in mesh.members
        ]

    def presence_of(self, peer_id: str) -> Presence | None:
        member = self._require_mesh().members.get(decode_peer_id(peer_id))
        if member is None:
            return None
        return self._presence.presence(member.record, member.state, member.proven)

    def neighbours(self) -> list[str]:
        return sorted(encode_peer_id(peer) for peer in self._require_mesh().active)

    def connected(self) -> list[str]:
        return sorted(encode_peer_id(peer) for peer in self.links.links)

    def reached_via(self, peer: bytes) -> str:
        """How the session with ``peer`` goes: ``tor``, ``direct``, or ``""`` (none)."""
        link = self.links.links.get(peer)
        if link is None or link.closing:
            return ""
        return "tor" if link.via_tor else "direct"

    def latency(self, peer: bytes) -> float | None:
        """The last round trip measured on the session with ``peer``, in seconds; None
        without a session or before the first measure."""
        link = self.links.links.get(peer)
        return None if link is None or link.closing else link.connection.rtt

    async def connect(self, targets: list[Target]) -> list[DiscoveryNote]:
        """Dial an invite code's or an address's targets now (the API's and the UI's
        connect): what happened, as the notes also emitted as events. A code's identity
        becomes a contact once its handshake proved it (in either mode)."""
        return await self.dialler.connect(targets)

    def invite(self, nick: str | None = None) -> Invitation:
        """A new invite code: our listening addresses and a fresh one-time token, which
        admits whoever dials it first (and makes it a contact), for a week."""
        token, expires = self.require_chat().new_invite()
        addresses = list(self.addresses)
        if self.onion is not None and self.onion.address:
            addresses.append(self.onion.address)  # reachable beyond the LAN, through Tor
        return Invitation(make_invite(self.peer_id, addresses, nick, token), addresses, expires)

    async def ping(self, peer: bytes, *, data: bytes = b"", within: float = 5.0) -> float:
        """Round-trip time in seconds of one Ping to ``peer``, over its session (dialled
        if there is none). ConnectionClosed if there is no session within ``within``."""
        with trio.fail_after(within):
            for attempt in range(2):
                connection = await self.links.session(peer, within)
                if connection is None:
                    raise ConnectionClosed(
                        "no session: the peer is unknown, unreachable or refused",
                        by_peer=False, code="unreachable",
                    )  # fmt: skip
                try:
                    return await connection.ping(data)
                except ConnectionClosed as closed:
                    # A session replaced meanwhile (crossed dials, a move from Tor to
                    # the LAN): the ping goes again on the one that replaced it.
                    if closed.code != "duplicate" or attempt:
                        raise
        raise AssertionError("unreachable")

    def peer_verified(self, peer_id: str, address: str, nick: str | None = None) -> None:
        """A handshake proved ``peer_id`` at ``address`` (an invite, /connect): join it."""
        self.dialler.verified(peer_id, address, nick)

    # ------------------------------------------------------------------ peers (node/ports.py)

    def is_online(self, peer: bytes) -> bool:
        member = None if self.mesh is None else self.mesh.members.get(peer)
        return member is not None and member.online

    def online_peers(self) -> list[bytes]:
        if self.mesh is None:
            return []
        me = self.identity.public_key
        online = {member.peer for member in self.mesh.members if member.online}
        online.update(self.links.links)  # a fresh session counts before gossip arrives
        online.discard(me)
        return sorted(online)

    def _own_nick(self) -> str:
        """Our nick as our room messages carry it (§15.2): the one we publish now."""
        own = "" if self.mesh is None else str(self.mesh.own.nick)
        return own or self.settings.nick

    def nick_of(self, peer: bytes) -> str:
        """Its presence record's nick; else the one its latest room message carried (a
        fellow member we see no presence of, §15.2)."""
        member = None if self.mesh is None else self.mesh.members.get(peer)
        nick = "" if member is None else str(member.record.nick)
        if not nick and self.rooms is not None:
            nick = self.rooms.nick_of(peer)
        return nick

    # ------------------------------------------------------------------ running

    async def _start(self, *, task_status: trio.TaskStatus[None]) -> None:
        settings = self.settings
        listeners = await self._nursery.start(
            partial(
                serve_secure,
                self.links.serve,
                self.identity,
                host=settings.host,
                port=settings.port,
                config=settings.connection,
                authorize=self.admission.authorize,
            )
        )
        self._bound = listener_addresses(listeners)
        port = self._bound[0][1]
        self.addresses = self._reachable_at(lambda: local_addresses(settings.interfaces))
        record = make_record(
            self.identity,
            version=next_version(0, now_ms()),
            nick=settings.nick,
            status=settings.status,
            status_text=settings.status_text,
            addresses=self.addresses,
            # In private discovery our record goes to contacts only, and no further
            # (§11.1); so does our mesh: a stranger would learn who we are.
            unlisted=settings.private_discovery,
        )
        self.mesh_runner.mesh = Mesh(
            self.identity,
            record,
            now=trio.current_time(),
            rng=random.Random(self._rng.getrandbits(64)),
            config=settings.mesh,
            # A member of one of our networks is admitted as a contact is (§17.3).
            protected=lambda peer: self.admission.is_contact(peer) or self.networks.is_member(peer),
            contacts_only=settings.contacts_only or settings.private_discovery,
            linked=self.links.linked,
        )
        self._emit(Listening(self.identity.public_key, self.addresses))
        self._presence.changed(PresenceChanged(record, State.ALIVE, proven=True))
        self._nursery.start_soon(self.mesh_runner.run)
        self._nursery.start_soon(self.links.reap_idle)
        if self.chat is not None:
            self._nursery.start_soon(self.chat.run)
        if self.rooms is not None:
            self._nursery.start_soon(self.rooms.run)
        if self.files is not None:
            self._nursery.start_soon(self.files.run)
        targets = list(settings.static)
        if settings.known_peers is not None:
            targets = [*settings.known_peers.targets(), *targets]
        if targets:
            self._nursery.start_soon(self.dialler.keep_trying, targets)
        if settings.mdns:
            await self._nursery.start(self.dialler.run_discovery, port)
        if self.onion is not None:
            # Tor reaches us at a listener of its own, on loopback: sessions through it
            # are known as such (a move to the LAN replaces them), and strangers behind
            # Tor wait for handshakes apart from those on the LAN.
            tor_listeners = await self._nursery.start(
                partial(
                    serve_secure,
                    self.links.serve_tor,
                    self.identity,
                    host="127.0.0.1",
                    port=0,
                    config=settings.connection,
                    authorize=self.admission.authorize,
                )
            )
            self._nursery.start_soon(self.onion.run, listener_addresses(tor_listeners)[0])
        if self.remote is not None:
            self._nursery.start_soon(self.remote.run)
        task_status.started()

    async def _leave(self) -> None:
        mesh = self.mesh
        if mesh is not None and not mesh.stopped:
            mesh.leave(trio.current_time())
            self.mesh_runner.pump()
        await self.links.close_all()

    # ------------------------------------------------------------------ plumbing

    def _require_mesh(self) -> Mesh:
        return self.mesh_runner.require()

    def _chat_event(self, event: ChatEvent) -> None:
        if isinstance(event, ContactRequest) or (isinstance(event, MessageIn) and event.request):
            # A stranger's message was stored: its session did something useful. (Only
            # what is stored counts, so keepalive traffic cannot keep a slot.)
            self.links.mark_useful(event.peer)
        self._emit(event)

    def _on_mesh_event(self, event: MeshEvent) -> None:
        if isinstance(event, PresenceChanged):
            self._presence.changed(event)
            link = self.links.links.get(bytes(event.record.owner))
            if link is not None and link.dialled_by == link.peer:
                self.dialler.dialled_us(event.record, link.host())
        elif isinstance(event, MemberForgotten):
            self._presence.forgotten(event.record)
        else:
            log_refusal(event)

    def _disk_event(self, event: DiskEvent) -> None:
        self._emit(event)
        known = self.settings.known_peers
        if isinstance(event, DiskRecovered) and known is not None:
            known.flush()  # what a full disk kept from peers.json

    def _emit(self, event: NodeEvent) -> None:
        take = self.take_event
        if take is not None and not self.events.backlog.waiting and take(event):
            return
        if self.events.put_nowait(event, size=approx_size(event)):
            skipped = self._drop_log.allow("events", time.monotonic())
            if skipped is not None:
                log.warning("node events are not read fast enough: the oldest are dropped "
                            "(%d so far)", self.events.backlog.total_dropped)  # fmt: skip


def _report_soon(token: trio.lowlevel.TrioToken, emit: Any, event: DiskEvent) -> None:
    """DiskHealth reports from any thread (the log is written from zeroconf's too):
    the event joins the node's stream on the trio thread."""
    with contextlib.suppress(trio.RunFinishedError):
        token.run_sync_soon(emit, event)


@contextlib.asynccontextmanager
async def open_node(
    identity: Identity, settings: NodeSettings | None = None
) -> AsyncIterator[Node]:
    """Start a node; on exit leave the mesh gracefully and stop everything.

    Raises OSError if the listener cannot bind (a taken port, say).
    """
    try:
        async with trio.open_nursery() as nursery:
            node = Node(identity, settings or NodeSettings(), nursery)
            try:
                await nursery.start(node._start)
                yield node
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(3):
                    await node._leave()
                node.disk.attach(None)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The node's tasks never raise; a group holds one failure to start or whatever
        # the caller's body raised: pass it on as itself.
        raise_sole(group)


@contextlib.asynccontextmanager
async def crashable_node(
    identity: Identity, settings: NodeSettings | None = None
) -> AsyncIterator[tuple[Node, trio.CancelScope]]:
    """For tests: a node whose scope can be cancelled to stop it *without* a leave."""
    async with trio.open_nursery() as nursery:
        node = Node(identity, settings or NodeSettings(), nursery)
        await nursery.start(node._start)
        yield node, nursery.cancel_scope
        nursery.cancel_scope.cancel()
