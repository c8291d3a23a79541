"""What the parts of the chat service share: its identity, store, links and peers, the
event sink, the runner's wake-up, and three small caches with their rules: who is a
contact (and the contacts-only policy), the conversation clocks, and the rate-limited
log of refusals."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from p2pchat.chat.gate import Relation
from p2pchat.chat.rules import Clocks
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.chat.settings import ChatSettings
from p2pchat.node.events import ChatEvent
from p2pchat.node.ports import Links, Peers
from p2pchat.node.wake import Wake
from p2pchat.ratelimit import LogLimiter
from p2pchat.store import Store
from p2pchat.wire.codec import Codec

log = logging.getLogger("p2pchat.chat")

MAX_RELATIONS = 65_536  # the relation cache is refilled from the store past this
MAX_CLOCKS = 4096  # the clock cache is refilled from the store past this


@dataclass(eq=False)
class ChatContext:
    """One per chat service, handed to each of its parts. ``clocks`` is replaced when it
    grows past MAX_CLOCKS: read it through the context, never keep it."""

    identity: Identity
    store: Store
    links: Links
    peers: Peers
    emit: Callable[[ChatEvent], None]
    settings: ChatSettings
    rng: random.Random
    contacts_only: bool
    me: bytes = field(init=False)
    codec: Codec = field(init=False, default_factory=Codec)
    clocks: Clocks = field(init=False, default_factory=Clocks)
    log_limit: LogLimiter = field(init=False, default_factory=lambda: LogLimiter(60.0))
    _relations: dict[bytes, Relation] = field(init=False, default_factory=dict)
    wake: Wake = field(init=False, default_factory=Wake)  # the runner's alarm

    def __post_init__(self) -> None:
        self.me = self.identity.public_key

    # ------------------------------------------------------------------ relations

    def relation(self, peer: bytes) -> Relation:
        relation = self._relations.get(peer)
        if relation is None:
            contact = self.store.contact(peer)
            if contact is not None and contact.blocked:
                relation = Relation.BLOCKED
            elif contact is not None and contact.is_contact:
                relation = Relation.CONTACT
            else:
                relation = Relation.STRANGER
            if len(self._relations) > MAX_RELATIONS:
                self._relations.clear()  # a cache: bounded, refilled from the store
            self._relations[peer] = relation
        return relation

    def remember(self, peer: bytes, relation: Relation) -> None:
        self._relations[peer] = relation

    def forget(self, peer: bytes) -> None:
        self._relations.pop(peer, None)

    def is_contact(self, peer: bytes) -> bool:
        return self.relation(peer) is Relation.CONTACT

    def unwanted(self, sender: bytes) -> bool:
        """In contacts-only mode, a stranger (not blocked: its envelopes are taken and
        dropped) whose sealed messages we refuse."""
        return self.contacts_only and self.relation(sender) is Relation.STRANGER

    # ------------------------------------------------------------------ peers

    def reachable(self, peer: bytes) -> bool:
        """Connected, or online and not failing to dial (then relays carry it instead)."""
        return self.links.is_connected(peer) or (
            self.peers.is_online(peer) and not self.links.dial_failing(peer)
        )

    def clock(self, peer: bytes) -> int:
        """The highest clock of the conversation with ``peer``, seeded from the store."""
        if not self.clocks.known(peer):
            if len(self.clocks) > MAX_CLOCKS:  # a cache of the store's clocks: bounded
                self.clocks = Clocks()
            self.clocks.seed(peer, self.store.max_clock(peer))
        return self.clocks.highest(peer)

    # ------------------------------------------------------------------ logging

    def log_refusal(self, what: str, peer: bytes, reason: object, *, by_peer: bool = False) -> None:
        """One line per peer and kind per minute, whatever a peer sends."""
        skipped = self.log_limit.allow((what, peer), trio.current_time())
        if skipped is None:
            return
        more = f" ({skipped} more since the last line)" if skipped else ""
        if by_peer:
            log.info("%s refused %s: %s%s", encode_peer_id(peer), what, reason, more)
        else:
            log.info("%s from %s refused: %s%s", what, encode_peer_id(peer), reason, more)
