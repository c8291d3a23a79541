"""The node's side of the link manager (:class:`~p2pchat.net.owner.LinkOwner`): where
messages go (mesh, rooms, chat), what sessions coming and going mean to the services
and the mesh, whom to keep, admit and dial where.

An adapter rather than public methods on :class:`~p2pchat.node.node.Node`, whose public
methods are the commands front ends call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from p2pchat.chat.gate import Relation
from p2pchat.identity import encode_peer_id
from p2pchat.mesh.core import MESH_MESSAGES
from p2pchat.net.slots import Value
from p2pchat.node.chat import CHAT_MESSAGES
from p2pchat.node.events import DiscoveryNote, NodeEvent, PeerConnected, PeerDisconnected
from p2pchat.node.files import FILE_MESSAGES
from p2pchat.node.guard import guarded
from p2pchat.node.rooms import ROOM_WIRE
from p2pchat.session.core import Refusal
from p2pchat.wire.messages import AnnounceKey, OnionAddress

if TYPE_CHECKING:
    from p2pchat.node.node import Node

log = logging.getLogger("p2pchat.node")


class NodeLinkOwner:
    def __init__(self, node: Node, emit: Callable[[NodeEvent], None]) -> None:
        # The node's parts are made after its link manager (the services send through
        # it): they are looked up when the link manager asks, never before.
        self._node = node
        self._emit = emit
        self._via_tor: dict[bytes, bool] = {}  # each session's way, to tell of a move

    def resolve(self, peer: bytes) -> list[str]:
        return self._node.dialler.resolve(peer)

    def needed(self, peer: bytes) -> bool:
        mesh = self._node.mesh
        return mesh is not None and mesh.keeps(peer)

    def priority(self, peer: bytes) -> Value:
        """What a session with ``peer`` is worth to us, for the link manager's slots."""
        node = self._node
        if node.chat is not None and node.chat.relation(peer) is Relation.CONTACT:
            return Value.CONTACT
        if self.needed(peer):
            return Value.NEIGHBOUR
        if node.rooms is not None and any(peer in r.members for r in node.rooms.rooms.values()):
            return Value.IN_USE
        return Value.NONE

    def authorize(self, peer: bytes, invite: bytes) -> Refusal | None:
        return self._node.admission.authorize(peer, invite)

    def on_message(self, peer: bytes, message: Any) -> None:
        node = self._node
        if isinstance(message, MESH_MESSAGES) and node.mesh is not None:
            # News waits for the runner's next step (it ticks, which passes news on):
            # messages read in one round of the event loop go on as one gossip per
            # neighbour. Answers leave at once.
            node.mesh.receive(peer, message, trio.current_time(), flush=False)
            node.mesh_runner.pump()
        elif isinstance(message, ROOM_WIRE) and node.rooms is not None:
            node.rooms.queue(peer, message)  # judged by the room task, not this reader
        elif isinstance(message, CHAT_MESSAGES) and node.chat is not None:
            link = node.links.links.get(peer)
            node.chat.receive(peer, message, link.address if link else "")
        elif isinstance(message, FILE_MESSAGES) and node.files is not None:
            guarded(partial(node.files.receive, message=message), peer)
        elif isinstance(message, AnnounceKey) and node.announce is not None:
            guarded(partial(node.announce.receive, message=message), peer)
        elif isinstance(message, OnionAddress) and node.onion is not None:
            guarded(partial(node.onion.received, message=message), peer)
        else:
            log.debug("ignoring %s from %s", type(message).__name__, encode_peer_id(peer))

    def on_up(self, peer: bytes, address: str) -> None:
        self._emit(PeerConnected(peer, address))
        mesh = self._node.mesh
        if mesh is not None:
            mesh.mark_proven(peer)  # ranks it above gossip hearsay (§12.6)
            self._node.mesh_runner.pump()

    def unreached(self, peer: bytes) -> None:
        # A member we met under a network that no handshake under it reaches now: it may
        # have left the network. The next dial is a plain one (a contact's, with its
        # knock); if it is still a member, its network record brings it back (§17.1).
        self._node.networks.forget(peer)

    def on_session(self, peer: bytes) -> None:
        """Every new session, a replacement of one too (a dial that crossed the peer's,
        a verifying handshake's session followed by the real one)."""
        node = self._node
        link = node.links.links.get(peer)
        if link is not None and link.connection.network is not None:
            node.networks.joined(peer, link.connection.network)
        if link is not None:
            self._tell_move(peer, link.via_tor, link.address)
        if node.mesh is not None:
            # Our unlisted record goes with each session: one sent on a session that was
            # replaced at once may never have been read (§11.1). Through Tor, presence
            # is pairwise; a session on the LAN ends that (§19.5).
            node.mesh.session_up(peer, pairwise=link is not None and link.via_tor)
            node.mesh_runner.pump()
        if node.chat is not None:
            guarded(node.chat.peer_up, peer)
        if node.rooms is not None:
            features = None if link is None else link.connection.features
            guarded(partial(node.rooms.session_up, features=features), peer)
        if node.files is not None:
            guarded(node.files.session_up, peer)
        if node.announce is not None:
            guarded(node.announce.session_up, peer)
        if node.onion is not None:
            guarded(node.onion.session_up, peer)

    def _tell_move(self, peer: bytes, via_tor: bool, address: str) -> None:
        """A session that replaced one going the other way (Tor, the LAN): say so; the
        peer never went offline."""
        before = self._via_tor.get(peer)
        self._via_tor[peer] = via_tor
        if before is None or before == via_tor:
            return
        mesh = self._node.mesh
        member = mesh.members.get(peer) if mesh is not None else None
        name = (member.record.nick if member is not None else "") or encode_peer_id(peer)[:12]
        where = "through Tor" if via_tor else f"to the LAN ({address})"
        self._emit(DiscoveryNote("moved", f"the session with {name} moved {where}",
                                 {"id": encode_peer_id(peer), "address": address,
                                  "via": "tor" if via_tor else "direct"}))  # fmt: skip

    def on_down(self, peer: bytes, reason: str) -> None:
        self._via_tor.pop(peer, None)
        self._emit(PeerDisconnected(peer, reason))
        node = self._node
        if node.chat is not None:
            guarded(node.chat.peer_down, peer)
        if node.rooms is not None:
            guarded(node.rooms.session_down, peer)
        if node.files is not None:
            guarded(node.files.session_down, peer)
        if node.mesh is not None:
            node.mesh.link_down(peer, trio.current_time())
            node.mesh_runner.pump()
