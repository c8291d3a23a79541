"""Announce keys between contacts (docs/protocol.md §10.2): we give ours to each
contact when a session with it opens (or it becomes a contact while one is open), keep
each contact's, and make a new one when someone who held ours is blocked. With them,
a node in private discovery announces a token instead of its id, and its contacts
recognise it (p2pchat.discovery.tokens)."""

from __future__ import annotations

import logging
import time

import trio

from p2pchat.chat.invites import token_key
from p2pchat.discovery.tokens import make_token, recognise
from p2pchat.errors import StoreError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.net.links import LinkManager
from p2pchat.session.knock import pair_knock_key
from p2pchat.store import Store
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import ANNOUNCE_FEATURE, AnnounceKey

log = logging.getLogger("p2pchat.discovery")

CODE_GRACE = 600.0  # seconds an invite code still knocks after its first use


class AnnounceKeys:
    def __init__(self, store: Store, identity: Identity) -> None:
        self._store = store
        self._identity = identity
        self._me = identity.public_key
        self._pair_keys: dict[bytes, bytes] = {}  # peer -> the knock key we share
        # An invite code opens the first session, before any announce key is given;
        # the links that follow it (the link manager's own dial, the other side's redial)
        # knock with the code's key for a while more, until the keys have been exchanged.
        self._codes_used: dict[bytes, tuple[bytes, float]] = {}  # peer -> (key, until)
        self._codes_redeemed: dict[bytes, float] = {}  # code key -> until
        # Set once the node's link manager exists (which is built with our knocks).
        self.links: LinkManager | None = None

    # ------------------------------------------------------------------ ours

    def token(self) -> str:
        """A fresh token for an announcement made now."""
        key, _ = self._store.own_announce_key(self._me, now=now_ms())
        return make_token(key, time.time())

    def session_up(self, peer: bytes) -> None:
        """A session opened: a contact gets our key (every time: cheap, and a contact
        that lost its store, or missed a new generation, has it again)."""
        if self._is_contact(peer):
            self._give(peer)

    def contact_added(self, peer: bytes) -> None:
        if self._require_links().is_connected(peer):
            self._give(peer)

    def contact_dropped(self, peer: bytes) -> None:
        """``peer`` no longer is a contact (blocked): it must not recognise us from now
        on, so a new key, given to every contact in session (the others get it on
        their next session)."""
        self._store.replace_own_announce_key(self._me, now=now_ms())
        for contact in self._store.contacts():
            if contact.peer != peer and self._require_links().is_connected(contact.peer):
                self.session_up(contact.peer)

    def _give(self, peer: bytes) -> None:
        link = self._require_links().links.get(peer)
        if link is None or ANNOUNCE_FEATURE not in link.connection.features:
            return  # an older p2pchat: it finds us by remembered addresses, not tokens
        key, generation = self._store.own_announce_key(self._me, now=now_ms())
        self._require_links().send(peer, AnnounceKey(key, generation))

    # ---------------------------------------------------------------- theirs

    def receive(self, peer: bytes, message: AnnounceKey) -> None:
        """A peer's key: kept if it is a contact (a stranger's would let us follow a
        stranger, and costs a row), unless we hold a later generation."""
        if not self._is_contact(peer):
            log.debug("ignoring an announce key from %s: not a contact", encode_peer_id(peer))
            return
        self._store.set_announce_key(peer, message.key, message.generation, now=now_ms())

    def recognise(self, token: str) -> bytes | None:
        """Which contact made this token, if any (within an hour of our clock)."""
        return recognise(token, self._store.contacts_announce_keys(), time.time())

    # ---------------------------------------------------------------- knocks

    def knock_key(self, peer: bytes | None, invite: bytes) -> bytes | None:
        """What to knock with when dialling ``peer`` (§3, §10.2): the key of the invite
        code we redeem, else the peer's announce key if it gave us one, else the key of
        a code of its we used within CODE_GRACE."""
        if invite:
            return token_key(invite)
        if peer is None:
            return None
        key = self._store.contacts_announce_keys().get(peer)
        if key is None and peer in self._codes_used:
            code_key, until = self._codes_used[peer]
            key = code_key if trio.current_time() < until else None
        if key is None and self._is_contact(peer):
            key = self._pair_key(peer)  # a contact added by id: no session gave us its key
        return key

    def _pair_key(self, peer: bytes) -> bytes:
        key = self._pair_keys.get(peer)
        if key is None:
            key = self._pair_keys[peer] = pair_knock_key(self._identity, peer)
        return key

    def knock_keys(self) -> list[bytes]:
        """Whose knocks we answer while hiding: our contacts (our announce key, or the
        key each shares with us), the holders of our outstanding invite codes, and of
        the codes redeemed within CODE_GRACE."""
        key, _ = self._store.own_announce_key(self._me, now=now_ms())
        return [key, *self._other_knock_keys()]

    def known_knocks(self) -> list[bytes]:
        """The keys of :meth:`knock_keys` for a responder that does not hide and only
        wants to tell a contact's or an invite holder's handshake from a stranger's
        (net/handshakes.py): read, never made (a stranger's handshake writes nothing),
        and none when the store cannot answer (the handshake is then a stranger's)."""
        try:
            own = self._store.announce_key(self._me)
            return [*([own] if own is not None else []), *self._other_knock_keys()]
        except StoreError as error:
            log.debug("no knock recognised: the store cannot answer (%s)", error)
            return []

    def _other_knock_keys(self) -> list[bytes]:
        now = trio.current_time()
        recent = [code for code, until in self._codes_redeemed.items() if now < until]
        contacts = [c.peer for c in self._store.contacts() if c.is_contact and not c.blocked]
        pairs = [self._pair_key(peer) for peer in contacts]
        return [*self._store.invite_keys(now=now_ms()), *recent, *pairs]

    def code_used(self, peer: bytes, invite: bytes) -> None:
        """We dial ``peer`` with its invite code."""
        self._forget_expired()
        self._codes_used[peer] = (token_key(invite), trio.current_time() + CODE_GRACE)

    def code_redeemed(self, code_key: bytes) -> None:
        """One of our invite codes was redeemed (and is spent for admission)."""
        self._forget_expired()
        self._codes_redeemed[code_key] = trio.current_time() + CODE_GRACE

    def _forget_expired(self) -> None:
        now = trio.current_time()
        self._codes_redeemed = {c: until for c, until in self._codes_redeemed.items()
                                if until > now}  # fmt: skip
        self._codes_used = {p: used for p, used in self._codes_used.items() if used[1] > now}

    def _require_links(self) -> LinkManager:
        assert self.links is not None, "the node sets links before any session"
        return self.links

    def _is_contact(self, peer: bytes) -> bool:
        contact = self._store.contact(peer)
        return contact is not None and contact.is_contact and not contact.blocked
