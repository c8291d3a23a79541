"""Presence and reaching peers: one's own status, who is around, invite codes,
connecting by code or address, ping, and the network checks of ``p2pchat doctor``.

All but the invite code made without a node (a token kept in the store for the next
node) and the network checks need the running node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2pchat.chat.gate import Relation
from p2pchat.commands.base import CommandContext, CommandError, readable_errors
from p2pchat.discovery.doctor import AskNode, Report, run_checks
from p2pchat.discovery.known import Target, make_invite, static_targets
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import decode_peer_id, encode_peer_id
from p2pchat.mesh.presence import text_problem
from p2pchat.node.chat import new_invite
from p2pchat.node.events import DiscoveryNote, Presence
from p2pchat.node.node import Invitation
from p2pchat.wire.messages import SETTABLE_STATUSES

PING_WITHIN = 5.0  # seconds for a session and each round trip
CONNECT_OUTCOMES = ("verified", "refused", "spoof", "unreachable")


@dataclass(frozen=True, slots=True)
class Peer:
    """A member of the mesh (not ourselves), and whether we hold a session with it."""

    presence: Presence
    connected: bool
    network: str = ""  # the private network we met it in (§17), if any
    via: str = ""  # how its session goes: "direct", "tor" (§19), or "" without one
    rtt: float | None = None  # the session's last round trip in seconds, if measured


@dataclass(frozen=True, slots=True)
class Connected:
    """What a connect came to: ``state`` is verified, refused (by either side's policy),
    spoof (someone else answered) or unreachable; ``notes`` are the dial's reports, in
    order (also emitted as node events). ``contact``: the peer proved is a contact."""

    state: str
    peer_id: str | None
    address: str | None
    detail: str
    code: str | None = None
    contact: bool = False
    notes: list[DiscoveryNote] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PingResult:
    peer: bytes
    address: str | None  # where the session runs
    rtts: list[float]  # seconds


class NetworkCommands(CommandContext):
    def own_presence(self) -> Presence | None:
        """How we look on the mesh, if a node runs."""
        if self.node is None or self.node.mesh is None:
            return None
        return self.node.presence_of(self.node.peer_id)

    async def set_presence(
        self, *, nick: str | None = None, status: str | None = None, status_text: str | None = None
    ) -> Presence:
        """Publish a new nick, status (avail, away, dnd) or status text; None keeps it."""
        node = self.require_node()
        if status is not None and status not in SETTABLE_STATUSES:
            raise CommandError('"status" is one of avail, away, dnd')
        own = self.own_presence()
        problem = text_problem(
            nick if nick is not None else (own.nick if own else ""),
            status_text if status_text is not None else (own.status_text if own else ""),
        )
        if problem:
            raise CommandError(problem)
        with readable_errors():
            await node.set_presence(nick=nick, status=status, status_text=status_text)
        own = self.own_presence()
        assert own is not None
        return own

    def peers(self) -> list[Peer]:
        """Every member of the mesh but ourselves, with whether a session is up."""
        node = self.require_node()
        if node.mesh is None:
            return []
        connected = set(node.connected())
        peers = []
        for member in node.members():
            if member.is_self:
                continue
            network = node.networks.network_of(member.peer)
            peer = member.peer
            peers.append(Peer(member, encode_peer_id(peer) in connected,
                              network.name if network is not None else "",
                              node.reached_via(peer), node.latency(peer)))  # fmt: skip
        return peers

    def reload_networks(self) -> list[str]:
        """The running node reads our private networks again (`p2pchat network` changed
        them): the names of those it now announces and browses under."""
        return self.require_node().reload_networks()

    def invite(self) -> Invitation:
        """A new invite code with the node's addresses and a fresh one-time token (kept in
        the store), which admits whoever dials it first, for a week."""
        node = self.require_node()
        self._chat()  # the token is kept in the message store
        own = self.own_presence()
        nick = own.nick if own is not None and node.settings.announce_nick else None
        with readable_errors():
            return node.invite(nick)

    def invite_offline(self, addresses: list[str], nick: str | None) -> Invitation:
        """An invite code made while no node runs: the token waits in the store for the
        next node, which is expected to listen at ``addresses``."""
        with readable_errors():
            token, expires = new_invite(self._store)
        code = make_invite(self.identity.peer_id, addresses, nick, token)
        return Invitation(code, list(addresses), expires)

    @staticmethod
    def parse_target(text: str) -> list[Target]:
        """Where an invite code or a HOST:PORT says to dial."""
        try:
            return static_targets(None, [text])
        except ValueError as error:
            raise CommandError(str(error)) from None

    async def connect(self, targets: list[Target]) -> Connected:
        """Dial ``targets`` now; an invite code's identity becomes a contact once its
        handshake proved it."""
        node = self.require_node()
        with readable_errors():
            notes = await node.connect(targets)
        outcome = _outcome(notes)
        contact = False
        if outcome.peer_id and node.chat is not None:
            with readable_errors():
                relation = node.chat.relation(decode_peer_id(outcome.peer_id))
            contact = relation is Relation.CONTACT
        return Connected(outcome.state, outcome.peer_id, outcome.address, outcome.detail,
                         outcome.code, contact, notes)  # fmt: skip

    async def ping(self, peer: bytes, *, count: int = 1, size: int = 0) -> PingResult:
        """``count`` Pings of ``size`` bytes over the session with ``peer`` (dialled if
        there is none)."""
        node = self.require_node()
        rtts = []
        for _ in range(count):
            try:
                rtts.append(await node.ping(peer, data=bytes(size), within=PING_WITHIN))
            except ConnectionClosed as closed:
                raise CommandError(f"cannot reach {encode_peer_id(peer)}: {closed}") from None
            except trio.TooSlowError:
                raise CommandError(f"no answer from {encode_peer_id(peer)} within "
                                   f"{PING_WITHIN:g} s") from None  # fmt: skip
        link = node.links.links.get(peer)
        return PingResult(peer, link.address if link is not None else None, rtts)

    @staticmethod
    async def check_network(
        home: Path, interfaces: list[str] | None, *, node: bool = True, ask: AskNode | None = None
    ) -> Report:
        """The checks of ``p2pchat doctor``: interfaces, multicast and (``node``)
        whether the profile's node answers, and (``ask``: its API) whom it found."""
        return await run_checks(home, interfaces, node=node, ask=ask)


def _outcome(notes: list[DiscoveryNote]) -> Connected:
    """What a connect came to, from the notes of its dial: proven, refused (by either
    side's policy), answered by someone else, or not reached."""
    for state in CONNECT_OUTCOMES:
        for note in notes:
            if note.name == state:
                fields: dict[str, Any] = note.fields
                addresses = fields.get("addresses") or [fields.get("address")]
                return Connected(state, fields.get("id"), addresses[0],
                                 fields.get("detail", ""), fields.get("code"))  # fmt: skip
    return Connected("unreachable", None, None, "nothing to dial")
