"""The Node: one nursery running the listener, discovery, links and the mesh.

Every front end (daemon, TUI, tests) drives a node the same way::

    async with open_node(identity, NodeSettings(nick="ann")) as node:
        await node.set_presence(status="away")
        async for event in node.events:
            ...

Commands are methods; everything the node observes arrives as one stream of typed
:data:`NodeEvent` values. Leaving the ``async with`` announces a graceful leave to
the mesh, says goodbye on mDNS and closes every session, promptly.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from p2pchat.addresses import format_host_port
from p2pchat.backlog import approx_size
from p2pchat.chat.gate import Relation
from p2pchat.discovery.dial import dial_all
from p2pchat.discovery.known import KnownPeers, Target, make_invite
from p2pchat.discovery.mdns import local_addresses, open_mdns
from p2pchat.discovery.records import Announcement
from p2pchat.discovery.watch import watch
from p2pchat.diskfaults import DiskEvent, DiskHealth, DiskRecovered, disk_fault
from p2pchat.errors import ConnectionClosed, StoreError
from p2pchat.feed import Feed
from p2pchat.identity import Identity, decode_peer_id, encode_peer_id
from p2pchat.mesh.admission import GossipRefused
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.core import MESH_MESSAGES, MemberForgotten, Mesh, MeshEvent, PresenceChanged
from p2pchat.mesh.membership import ONLINE_STATES, State
from p2pchat.mesh.presence import make_record, next_version
from p2pchat.net.connection import ConnectionConfig
from p2pchat.net.links import LinkLimits, LinkManager, Value
from p2pchat.net.server import listener_addresses, serve_secure
from p2pchat.node.chat import (
    CHAT_MESSAGES,
    CONTACTS_ONLY,
    CONTACTS_ONLY_REASON,
    ChatService,
    ChatSettings,
)
from p2pchat.node.events import (
    ChatEvent,
    ContactRequest,
    DiscoveryNote,
    EventsDropped,
    Listening,
    MessageIn,
    NodeEvent,
    PeerConnected,
    PeerDisconnected,
    Presence,
)
from p2pchat.node.rooms import ROOM_WIRE, RoomService
from p2pchat.ratelimit import LogLimiter
from p2pchat.session.core import SUPPORTED_VERSIONS, Refusal
from p2pchat.store import Store
from p2pchat.wire.messages import SETTABLE_STATUSES, PresenceRecord, Status

log = logging.getLogger("p2pchat.node")

# Every front end moves events on at each wake-up and never waits for its own reader
# (each has its own bounded queue), so this only has to hold what the node emits
# between two scheduling points: a chat batch (2,048 inputs) and the receipts of the
# windows it frees. When nobody reads at all, the oldest go, with an EventsDropped.
EVENT_BUFFER = 16_384
EVENT_BUFFER_BYTES = 16 * 1024 * 1024  # roughly counted (approx_size)
STATIC_RETRY_MAX = 60.0


# ---------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invite code we handed out: ``expires`` (ms since the epoch) ends its token."""

    code: str
    addresses: list[str]
    expires: int


# ---------------------------------------------------------------------- settings


@dataclass(slots=True)
class NodeSettings:
    nick: str = ""
    status: str = "avail"
    status_text: str = ""
    host: str = "0.0.0.0"
    port: int = 0
    mdns: bool = True
    announce_nick: bool = True
    interfaces: list[str] | None = None
    static: list[Target] = field(default_factory=list)
    known_peers: KnownPeers | None = None
    mesh: MeshConfig = field(default_factory=MeshConfig)
    limits: LinkLimits = field(default_factory=LinkLimits)
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)
    seed: int | None = None  # for repeatable tests; None: the OS's randomness
    store: Store | None = None  # without one the node carries presence only, no chat
    chat: ChatSettings = field(default_factory=ChatSettings)
    # One per process, shared with the log and the profile; the node makes its own if
    # none is given, and hands it to the store and the address book.
    disk: DiskHealth | None = None
    # Talk to contacts only (docs/protocol.md §13.6): strangers' handshakes are refused
    # (`contacts-only`), nobody else is dialled, relayed for or gossiped with; invite
    # codes still admit whoever redeems them.
    contacts_only: bool = False


class Node:
    def __init__(self, identity: Identity, settings: NodeSettings, nursery: trio.Nursery) -> None:
        self.identity = identity
        self.settings = settings
        self.peer_id = identity.peer_id
        self._nursery = nursery
        self._rng = random.Random(settings.seed)
        self._hints: dict[bytes, list[str]] = {}
        self._verified_addresses: set[str] = set()
        self._shown: dict[bytes, tuple[str, str, str, bool, bool]] = {}
        self._store_log = LogLimiter(60.0)
        self._wake = trio.Event()
        self.events = Feed[NodeEvent](EVENT_BUFFER, EVENT_BUFFER_BYTES, marker=EventsDropped)
        self._drop_log = LogLimiter()
        self.addresses: tuple[str, ...] = ()
        self.mesh: Mesh | None = None
        self.links = LinkManager(
            identity,
            nursery,
            resolve=self._resolve,
            on_message=self._on_message,
            on_up=self._on_up,
            on_down=self._on_down,
            on_session=self._on_session,
            needed=self._needed,
            priority=self._priority,
            config=settings.connection,
            limits=settings.limits,
            rng=random.Random(self._rng.getrandbits(64)),
            authorize=self._authorize,
        )
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
                relations=self.chat,
                emit=self._emit,
                rng=random.Random(self._rng.getrandbits(64)),
            )

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
        self._pump()

    def introduce(self, peer_id: str, address: str | None = None) -> None:
        """Tell the node about a peer to join through (an invite, a static peer)."""
        key = decode_peer_id(peer_id)
        if address:
            self._hint(key, address)
        self._require_mesh().introduce([key], trio.current_time())
        self._pump()

    def members(self) -> list[Presence]:
        mesh = self._require_mesh()
        return [
            self._presence(member.record, member.state, member.proven) for member in mesh.members
        ]

    def presence_of(self, peer_id: str) -> Presence | None:
        member = self._require_mesh().members.get(decode_peer_id(peer_id))
        if member is None:
            return None
        return self._presence(member.record, member.state, member.proven)

    def neighbours(self) -> list[str]:
        return sorted(encode_peer_id(peer) for peer in self._require_mesh().active)

    def connected(self) -> list[str]:
        return sorted(encode_peer_id(peer) for peer in self.links.links)

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
                authorize=self._authorize,
            )
        )
        bound = listener_addresses(listeners)
        port = bound[0][1]
        hosts = [host for host, _ in bound]
        if any(host in ("0.0.0.0", "::") for host in hosts):
            hosts = local_addresses(settings.interfaces)
        self.addresses = tuple(format_host_port(host, port) for host in hosts)[:8]
        record = make_record(
            self.identity,
            version=next_version(0, int(time.time() * 1000)),
            nick=settings.nick,
            status=settings.status,
            status_text=settings.status_text,
            addresses=self.addresses,
        )
        self.mesh = Mesh(
            self.identity,
            record,
            now=trio.current_time(),
            rng=random.Random(self._rng.getrandbits(64)),
            config=settings.mesh,
            protected=self._is_contact,
            contacts_only=settings.contacts_only,
        )
        self._emit(Listening(self.identity.public_key, self.addresses))
        self._emit_presence(PresenceChanged(record, State.ALIVE, proven=True))
        self._nursery.start_soon(self._run_mesh)
        self._nursery.start_soon(self.links.reap_idle)
        if self.chat is not None:
            self._nursery.start_soon(self.chat.run)
        if self.rooms is not None:
            self._nursery.start_soon(self.rooms.run)
        targets = list(settings.static)
        if settings.known_peers is not None:
            targets = [*settings.known_peers.targets(), *targets]
        if targets:
            self._nursery.start_soon(self._keep_trying, targets)
        if settings.mdns:
            await self._nursery.start(self._run_discovery, port)
        task_status.started()

    async def _run_mesh(self) -> None:
        mesh = self._require_mesh()
        while True:
            with trio.move_on_at(mesh.next_deadline()):
                await self._wake.wait()
            self._wake = trio.Event()
            mesh.tick(trio.current_time())
            self._drain()  # not _pump: waking ourselves here would spin the CPU

    async def _run_discovery(self, port: int, *, task_status: trio.TaskStatus[None]) -> None:
        settings = self.settings
        async with open_mdns(
            own_peer_id=self.peer_id,
            supported_versions=SUPPORTED_VERSIONS,
            interfaces=settings.interfaces,
        ) as mdns:
            announcement = Announcement(
                peer_id=self.peer_id,
                port=port,
                versions=SUPPORTED_VERSIONS,
                nick=settings.nick if settings.announce_nick else None,
                status=Status(settings.status) if settings.announce_nick else None,
            )
            await watch(
                mdns,
                self.identity,
                self._note,
                announcement=announcement,
                on_verified=self._verified,
                authorize=self._authorize,
                wanted=self._wanted if settings.contacts_only else None,
                task_status=task_status,
            )

    async def _keep_trying(self, targets: list[Target]) -> None:
        """Dial static and remembered peers until each answered once, backing off. One
        we refused (a stranger, in contacts-only mode) is not dialled again."""
        delay = 1.0
        waiting = list(targets)
        refused: set[str] = set()

        def report(name: str, text: str, **fields: Any) -> None:
            if name == "refused" and not fields.get("by_peer"):
                refused.add(fields["address"])
            self._note(name, text, **fields)

        while waiting:
            await self._dial(waiting, report)
            done = self._verified_addresses | refused
            waiting = [t for t in waiting if t.address not in done and self._dialable(t)]
            if not waiting:
                return
            await trio.sleep(delay * self._rng.uniform(0.5, 1.5))
            delay = min(STATIC_RETRY_MAX, delay * 2)

    async def connect(self, targets: list[Target]) -> list[DiscoveryNote]:
        """Dial an invite code's or an address's targets now (the API's and the UI's
        connect): what happened, as the notes also emitted as events. A code's identity
        becomes a contact once its handshake proved it (in either mode)."""
        notes: list[DiscoveryNote] = []

        def report(name: str, text: str, **fields: Any) -> None:
            notes.append(DiscoveryNote(name, text, fields))
            self._note(name, text, **fields)

        await self._dial(targets, report)
        return notes

    async def _dial(self, targets: list[Target], report: Any) -> None:
        """Invite codes with their token, the rest under our usual policy."""
        codes = [t for t in targets if t.source == "invite" and t.peer_id]
        others = [t for t in targets if t not in codes and self._dialable(t)]
        async with trio.open_nursery() as nursery:
            if codes:
                verified, policy = self._code_verified, self._authorize_code
                nursery.start_soon(
                    partial(dial_all, codes, self.identity, report, verified, authorize=policy)
                )
            if others:
                verified, policy = self._verified, self._authorize
                nursery.start_soon(
                    partial(dial_all, others, self.identity, report, verified, authorize=policy)
                )

    def _dialable(self, target: Target) -> bool:
        """In contacts-only mode, a target known to be a stranger (a remembered address,
        say) is not dialled; one without an id is, and refused if a stranger answers."""
        if not self.settings.contacts_only or target.peer_id is None or target.source == "invite":
            return True
        return self._wanted(target.peer_id)

    def invite(self, nick: str | None = None) -> Invitation:
        """A new invite code: our listening addresses and a fresh one-time token, which
        admits whoever dials it first (and makes it a contact), for a week."""
        token, expires = self.require_chat().new_invite()
        addresses = list(self.addresses)
        return Invitation(make_invite(self.peer_id, addresses, nick, token), addresses, expires)

    async def ping(self, peer: bytes, *, data: bytes = b"", within: float = 5.0) -> float:
        """Round-trip time in seconds of one Ping to ``peer``, over its session (dialled
        if there is none). ConnectionClosed if there is no session within ``within``."""
        connection = await self.links.session(peer, within)
        if connection is None:
            raise ConnectionClosed(
                "no session: the peer is unknown, unreachable or refused", by_peer=False,
                code="unreachable",
            )  # fmt: skip
        with trio.fail_after(within):
            return await connection.ping(data)

    def peer_verified(self, peer_id: str, address: str, nick: str | None = None) -> None:
        """A handshake proved ``peer_id`` at ``address`` (an invite, /connect): join it."""
        self._verified(peer_id, address, nick)

    def _verified(self, peer_id: str, address: str, nick: str | None = None) -> None:
        self._verified_addresses.add(address)
        if self.settings.known_peers is not None:
            self.settings.known_peers.remember(peer_id, address, nick)  # never raises
        key = decode_peer_id(peer_id)
        if key == self.identity.public_key:
            return
        self._hint(key, address)
        if self.store is not None:
            # Only a hint for later dials: a full disk must not stop the join (nor the
            # discovery task that called us, nor the node with it).
            try:
                self.store.remember_address(key, address, now=int(time.time() * 1000))
            except StoreError as error:
                if disk_fault(error) is None:
                    log.warning("cannot remember %s at %s: %s", peer_id, address, error)
        if self.mesh is not None:
            self.mesh.mark_proven(key)
            self.mesh.introduce([key], trio.current_time())
            self._pump()

    async def _leave(self) -> None:
        if self.mesh is not None and not self.mesh.stopped:
            self.mesh.leave(trio.current_time())
            self._pump()
        await self.links.close_all()

    # ------------------------------------------------------------------ plumbing

    def _require_mesh(self) -> Mesh:
        if self.mesh is None:
            raise RuntimeError("the node has not started")
        return self.mesh

    def _hint(self, peer: bytes, address: str) -> None:
        known = self._hints.setdefault(peer, [])
        if address in known:
            known.remove(address)
        known.insert(0, address)
        del known[4:]

    def _resolve(self, peer: bytes) -> list[str]:
        addresses = list(self._hints.get(peer, ()))
        if self.store is not None:
            addresses += [a for a in self.store.addresses(peer) if a not in addresses]
        if self.mesh is not None:
            member = self.mesh.members.get(peer)
            if member is not None:
                addresses += [a for a in member.record.addresses if a not in addresses]
        return addresses

    def _needed(self, peer: bytes) -> bool:
        return self.mesh is not None and peer in self.mesh.active

    def _priority(self, peer: bytes) -> Value:
        """What a session with ``peer`` is worth to us, for the link manager's slots."""
        if self.chat is not None and self.chat.relation(peer) is Relation.CONTACT:
            return Value.CONTACT
        if self._needed(peer):
            return Value.NEIGHBOUR
        if self.rooms is not None and any(peer in r.members for r in self.rooms.rooms.values()):
            return Value.IN_USE
        return Value.NONE

    def _chat_event(self, event: ChatEvent) -> None:
        if isinstance(event, ContactRequest) or (isinstance(event, MessageIn) and event.request):
            # A stranger's message was stored: its session did something useful. (Only
            # what is stored counts, so keepalive traffic cannot keep a slot.)
            self.links.mark_useful(event.peer)
        self._emit(event)

    def _on_message(self, peer: bytes, message: Any) -> None:
        if isinstance(message, MESH_MESSAGES) and self.mesh is not None:
            self.mesh.receive(peer, message, trio.current_time())
            self._pump()
        elif isinstance(message, ROOM_WIRE) and self.rooms is not None:
            _guarded(partial(self.rooms.receive, message=message), peer)
        elif isinstance(message, CHAT_MESSAGES) and self.chat is not None:
            link = self.links.links.get(peer)
            self.chat.receive(peer, message, link.address if link else "")
        else:
            log.debug("ignoring %s from %s", type(message).__name__, encode_peer_id(peer))

    def _on_up(self, peer: bytes, address: str) -> None:
        self._emit(PeerConnected(peer, address))
        if self.mesh is not None:
            self.mesh.mark_proven(peer)  # ranks it above gossip hearsay (§12.6)
            self._pump()

    def _on_session(self, peer: bytes) -> None:
        if self.chat is not None:
            _guarded(self.chat.peer_up, peer)
        if self.rooms is not None:
            _guarded(self.rooms.session_up, peer)

    def _authorize(self, peer: bytes, invite: bytes) -> Refusal | None:
        if self.chat is not None:
            return self.chat.authorize(peer, invite)
        if self.settings.contacts_only:  # no store, so no contacts: nobody
            return Refusal(CONTACTS_ONLY, CONTACTS_ONLY_REASON)
        return None

    def _authorize_code(self, peer: bytes, invite: bytes) -> Refusal | None:
        """For the dial of an invite code: the code names the peer (the handshake has
        checked it is that identity), so only a block stands in the way."""
        return None if self.chat is None else self.chat.authorize(peer, invite, wanted=True)

    def _code_verified(self, peer_id: str, address: str, nick: str | None = None) -> None:
        """A handshake proved an invite code's identity: it becomes a contact (we used
        its code on purpose), then joins like any verified peer."""
        if self.chat is not None and peer_id != self.peer_id:
            try:
                self.chat.add_contact(decode_peer_id(peer_id), nick=nick or "")
            except (StoreError, ValueError) as error:
                log.warning("cannot add %s as a contact: %s", peer_id, error)
        self._verified(peer_id, address, nick)

    def _wanted(self, peer_id: str) -> bool:
        return self._is_contact(decode_peer_id(peer_id))

    def _is_contact(self, peer: bytes) -> bool:
        """For the mesh, which asks about the records it admits and evicts. A store
        that cannot answer makes the peer a stranger (the safe side), not a crash."""
        if self.chat is None:
            return False
        try:
            return self.chat.relation(peer) is Relation.CONTACT
        except Exception:
            if self._store_log.allow("relation", time.monotonic()) is not None:
                log.exception("mesh: cannot tell whether %s is a contact", encode_peer_id(peer))
            return False

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

    def nick_of(self, peer: bytes) -> str:
        member = None if self.mesh is None else self.mesh.members.get(peer)
        return "" if member is None else str(member.record.nick)

    def _on_down(self, peer: bytes, reason: str) -> None:
        self._emit(PeerDisconnected(peer, reason))
        if self.chat is not None:
            _guarded(self.chat.peer_down, peer)
        if self.rooms is not None:
            _guarded(self.rooms.session_down, peer)
        if self.mesh is not None:
            self.mesh.link_down(peer, trio.current_time())
            self._pump()

    def _pump(self) -> None:
        """After feeding the mesh from outside its runner: send, report, re-arm its timer."""
        self._drain()
        self._wake.set()  # the mesh's next deadline may have moved

    def _drain(self) -> None:
        mesh = self.mesh
        if mesh is None:
            return
        for peer, message in mesh.take_outgoing():
            self.links.send(peer, message)
        for event in mesh.take_events():
            self._on_mesh_event(event)

    def _on_mesh_event(self, event: MeshEvent) -> None:
        if isinstance(event, PresenceChanged):
            self._emit_presence(event)
        elif isinstance(event, MemberForgotten):
            self._forget_presence(event.record)
        else:
            self._log_refusal(event)

    def _log_refusal(self, event: GossipRefused) -> None:
        # The mesh reports each peer at most once per interval (LogLimiter).
        log.warning(
            "mesh: dropped %d new members, %d updates or claims and %d digest requests "
            "from %s, over the rate limits%s (docs/protocol.md §12.6)",
            event.members,
            event.items,
            event.digests,
            encode_peer_id(event.peer),
            f"; {event.reports_skipped} more refusals since the last line"
            if event.reports_skipped
            else "",
        )

    def _presence(
        self, record: PresenceRecord, state: State | str, proven: bool = False
    ) -> Presence:
        online = state in ONLINE_STATES
        return Presence(
            peer=record.owner,
            nick=record.nick,
            status=Status(record.status) if online else Status.OFFLINE,
            status_text=record.status_text,
            state=state.value if isinstance(state, State) else state,
            version=record.version,
            is_self=record.owner == self.identity.public_key,
            proven=proven,
        )

    def _emit_presence(self, event: PresenceChanged) -> None:
        presence = self._presence(event.record, event.state, event.proven)
        online = presence.status is not Status.OFFLINE
        shown = (presence.nick, presence.status, presence.status_text, online, presence.proven)
        if self._shown.get(event.record.owner) == shown:
            return  # a suspicion, or a refutation: nothing a person would see changed
        self._shown[event.record.owner] = shown
        self._emit(presence)
        if self.chat is not None and not presence.is_self and online:
            _guarded(self.chat.peer_online, event.record.owner)
        if self.rooms is not None and not presence.is_self:
            if online:
                _guarded(self.rooms.peer_online, event.record.owner)
            else:
                _guarded(self.rooms.peer_offline, event.record.owner)

    def _disk_event(self, event: DiskEvent) -> None:
        self._emit(event)
        known = self.settings.known_peers
        if isinstance(event, DiskRecovered) and known is not None:
            known.flush()  # what a full disk kept from peers.json

    def _forget_presence(self, record: PresenceRecord) -> None:
        """A member left the full member list: front ends drop it (and free its memory)."""
        self._shown.pop(record.owner, None)
        self._emit(self._presence(record, "forgotten"))
        if self.rooms is not None:
            _guarded(self.rooms.peer_offline, record.owner)

    def _note(self, name: str, text: str, **fields: Any) -> None:
        self._emit(DiscoveryNote(name, text, fields))

    def _emit(self, event: NodeEvent) -> None:
        if self.events.put_nowait(event, size=approx_size(event)):
            skipped = self._drop_log.allow("events", time.monotonic())
            if skipped is not None:
                log.warning("node events are not read fast enough: the oldest are dropped "
                            "(%d so far)", self.events.backlog.total_dropped)  # fmt: skip


def _guarded(callback: Any, peer: bytes) -> None:
    """Chat work triggered by the network (a session, a presence change) touches the
    store; a store error there is logged, and must not take the node down with it. (A
    full disk is logged by the store's DiskHealth, once per interval, not here.)"""
    try:
        callback(peer)
    except Exception as error:
        if disk_fault(error) is not None:
            return
        name = getattr(callback, "__name__", None) or getattr(callback, "func", callback)
        log.exception("%s failed for %s", name, encode_peer_id(peer))


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
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


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
