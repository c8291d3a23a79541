"""The chat service: the commands (send, read, contacts, blocks, invites), the session
hooks (authorize, peer up, down, online) and the runner, around the parts that do the
work: :class:`~p2pchat.node.chat.inbox.Inbox` (what arrives),
:class:`~p2pchat.node.chat.outbox.Outbox` (what we send) and
:class:`~p2pchat.node.chat.relaying.Relay` (what relays carry), which share one
:class:`~p2pchat.node.chat.context.ChatContext`.

Durability comes from two orders that are never broken:

- a message is committed to the outbox *before* it is handed to the network, and it
  stays there until the recipient acknowledges it;
- an incoming message is committed *before* it is acknowledged.

The runner stores the input in batches and retries what is due; while the disk
refuses writes it pauses, doubling up to DISK_PAUSE_MAX, instead of spinning.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import trio

from p2pchat.chat.gate import ContactGate, Relation
from p2pchat.chat.invites import MAX_OUTSTANDING, TOKEN_BYTES, VALID_MS, token_key
from p2pchat.chat.rules import MessageState
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import StoreError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.chat.context import ChatContext
from p2pchat.node.chat.inbox import Inbox
from p2pchat.node.chat.outbox import Outbox
from p2pchat.node.chat.relaying import Relay
from p2pchat.node.chat.settings import (
    CONTACTS_ONLY,
    CONTACTS_ONLY_REASON,
    DISK_PAUSE,
    DISK_PAUSE_MAX,
    NUDGE_RATE,
    ChatSettings,
)
from p2pchat.node.events import ChatEvent
from p2pchat.node.ports import Links, Peers
from p2pchat.session.core import Refusal
from p2pchat.store import Contact, Store, StoredMessage
from p2pchat.wallclock import now_ms

log = logging.getLogger("p2pchat.chat")


def new_invite(store: Store) -> tuple[bytes, int]:
    """A fresh invite token, remembered in ``store`` (what only a hash of it is kept
    as); (token, expiry in ms). Also for `p2pchat invite` when no node runs."""
    token = os.urandom(TOKEN_BYTES)
    now = now_ms()
    expires = now + VALID_MS
    store.add_invite(token_key(token), now=now, expires_at=expires, keep=MAX_OUTSTANDING)
    return token, expires


class ChatService:
    def __init__(
        self,
        identity: Identity,
        store: Store,
        *,
        links: Links,
        peers: Peers,
        emit: Callable[[ChatEvent], None],
        settings: ChatSettings | None = None,
        rng: random.Random | None = None,
        contacts_only: bool = False,
    ) -> None:
        """``contacts_only``: talk to contacts only (docs/protocol.md §13.6): strangers get
        no session (see :meth:`authorize`), no relaying and nothing through relays."""
        self.identity = identity
        self.contacts_only = contacts_only
        self.me = identity.public_key
        self.store = store
        self.settings = settings = settings or ChatSettings()
        self.gate = ContactGate(settings.gate)
        rng = rng or random.Random()
        self._ctx = ChatContext(identity, store, links, peers, emit, settings, rng, contacts_only)
        self.relay = Relay(self._ctx)
        self.outbox = Outbox(self._ctx, self.relay)
        self.inbox = Inbox(self._ctx, self.gate, self.outbox, self.relay)
        self.runner_passes = 0  # passes of the runner, each ending with its next deadline
        # While the disk refuses our writes, the runner pauses (doubling up to
        # DISK_PAUSE_MAX) before trying the held input and the retries again.
        self._held_until = 0.0
        self._pause = 0.0
        # Told when someone becomes a contact, and when a contact is blocked (the node
        # gives or replaces its announce key, §10.2).
        self.on_contact_added: Callable[[bytes], None] = lambda _: None
        self.on_contact_dropped: Callable[[bytes], None] = lambda _: None
        self.on_code_redeemed: Callable[[bytes], None] = lambda _: None

    # ------------------------------------------------------------------ commands

    def send_text(self, peer: bytes, text: str, *, action: bool = False) -> StoredMessage:
        """Commit a new message to the outbox, then hand it to the network."""
        self._accept_recipient(peer)
        return self.outbox.send_text(peer, text, action=action)

    def send_texts(self, items: list[tuple[bytes, str, bool]]) -> list[StoredMessage | ValueError]:
        """Several messages (peer, text, action), committed to the outbox in one
        transaction and handed to the network after it; a refused item is its
        ValueError in the result. Not inside a transaction of the caller's: the commit
        must come before the hand-over."""
        refused: dict[int, ValueError] = {}
        accepted: list[tuple[bytes, str, bool]] = []
        for index, (peer, text, action) in enumerate(items):
            try:
                self._accept_recipient(peer)
            except ValueError as error:
                refused[index] = error
            else:
                accepted.append((peer, text, action))
        stored = iter(self.outbox.send_texts(accepted))
        return [refused[i] if i in refused else next(stored) for i in range(len(items))]

    def _accept_recipient(self, peer: bytes) -> None:
        if peer == self.me:
            raise ValueError("that is your own id")
        relation = self.relation(peer)
        if relation is Relation.BLOCKED:
            raise ValueError("you blocked this peer: unblock it first")
        if relation is Relation.STRANGER:
            self.add_contact(peer)  # writing to someone accepts them, as in any messenger

    def mark_read(self, peer: bytes) -> int:
        """Mark the conversation read and tell the sender (a read receipt)."""
        unread = self.store.unread(peer)
        if not unread:
            return 0
        self.store.advance(unread, MessageState.READ, at=now_ms())
        self.outbox.send_receipts(peer, MessageState.READ, unread)
        return len(unread)

    def add_contact(self, peer: bytes, petname: str = "", nick: str = "") -> Contact:
        """Make ``peer`` a contact. ``nick``: its nick as we learnt it (an invite code),
        else the request's or the mesh's."""
        if peer == self.me:
            raise ValueError("that is your own id")
        request = self.store.request(peer)
        nick = nick or (request.nick if request else self._ctx.peers.nick_of(peer))
        contact = self.store.add_contact(peer, petname=petname, nick=nick, now=now_ms())
        self._ctx.remember(peer, Relation.BLOCKED if contact.blocked else Relation.CONTACT)
        if not contact.blocked:
            self.on_contact_added(peer)
        if request is not None:
            # An empty receipt asks the sender to retry what it holds for us now:
            # the messages the gate held back while this was a request.
            self.outbox.send_receipts(peer, MessageState.DELIVERED, [], nudge=True)
        return contact

    def accept(self, peer: bytes) -> Contact:
        if self.store.request(peer) is None and self.relation(peer) is not Relation.STRANGER:
            contact = self.store.contact(peer)
            if contact is not None and contact.is_contact:
                return contact
        return self.add_contact(peer)

    def set_blocked(self, peer: bytes, blocked: bool) -> None:
        if peer == self.me:
            raise ValueError("that is your own id")
        was = self.store.contact(peer)
        self.store.set_blocked(peer, blocked, now=now_ms())
        self._ctx.forget(peer)
        if blocked and was is not None and was.is_contact and not was.blocked:
            self.on_contact_dropped(peer)
        if blocked:
            # An open session would otherwise outlive the block.
            self._ctx.links.close(peer, code="not-authorized", reason="blocked")

    def authorize(
        self, peer: bytes, invite: bytes = b"", *, wanted: bool = False
    ) -> Refusal | None:
        """The handshake hook, asked right after the peer proved its identity and before
        anything of it is stored (docs/protocol.md §3, §13.6).

        Blocked identities are refused (``not-authorized``), whatever they present. A
        valid ``invite`` token (one of our codes) is spent: it admits the peer and makes
        it a contact. In contacts-only mode everyone else who is not a contact is refused
        (``contacts-only``), unless ``wanted``: we are dialling this peer's own invite
        code. The store errors (a full disk, say) refuse with ``busy``, which makes the
        peer back off and try again: never an exception out of the handshake.
        """
        try:
            relation = self.relation(peer)
            if relation is Relation.BLOCKED:
                return Refusal("not-authorized", "not accepting this identity")
            if invite and self._redeem(peer, invite):
                return None
        except StoreError as error:
            skipped = self._ctx.log_limit.allow("authorize", time.monotonic())
            if skipped is not None and disk_fault(error) is None:
                log.warning("cannot decide about %s: %s", encode_peer_id(peer), error)
            return Refusal("busy", "cannot decide about this identity now; try again later")
        if self.contacts_only and relation is not Relation.CONTACT and not wanted:
            return Refusal(CONTACTS_ONLY, CONTACTS_ONLY_REASON)
        return None

    def _redeem(self, peer: bytes, invite: bytes) -> bool:
        """Spend one of our invite tokens for ``peer``: True if it was valid (the peer is
        a contact now), False for a spent, expired or unknown one (no admission)."""
        if len(invite) != TOKEN_BYTES:
            return False
        with self.store.transaction():
            if not self.store.redeem_invite(token_key(invite), now=now_ms()):
                return False
            self.add_contact(peer)
        self.on_code_redeemed(token_key(invite))
        log.info("invite code redeemed by %s: now a contact", encode_peer_id(peer))
        return True

    def new_invite(self) -> tuple[bytes, int]:
        """A fresh one-time token for an invite code, remembered durably; (token, expiry
        in ms). At most MAX_OUTSTANDING are outstanding: the oldest are forgotten."""
        return new_invite(self.store)

    def relation(self, peer: bytes) -> Relation:
        return self._ctx.relation(peer)

    def reachable(self, peer: bytes) -> bool:
        """Connected, or online and not failing to dial (then relays carry it instead)."""
        return self._ctx.reachable(peer)

    @property
    def cached_clocks(self) -> int:
        """How many conversation clocks are cached (the cache is bounded)."""
        return len(self._ctx.clocks)

    # ------------------------------------------------------------------ inputs

    def receive(self, peer: bytes, message: Any, address: str) -> None:
        """A chat message arrived on a session (processed by the runner, in batches)."""
        self.inbox.receive(peer, message, address)

    def peer_up(self, peer: bytes) -> None:
        """A session with ``peer`` opened: resend what waits for it, offer what we keep."""
        self.outbox.peer_up(peer)

    def peer_online(self, peer: bytes) -> None:
        """The mesh says ``peer`` is (back) online."""
        self.outbox.peer_online(peer)

    def peer_down(self, peer: bytes) -> None:
        """The session closed: what it carried unacknowledged is tried again soon."""
        self.outbox.peer_down(peer)

    # ------------------------------------------------------------------ runner

    async def run(self) -> None:
        deadline = 0.0
        while True:
            await self._ctx.wake.wait(deadline)
            try:
                if trio.current_time() >= self._held_until:
                    await self._pass()
                deadline = self._next_deadline()
                self.runner_passes += 1
                if self.inbox.waiting:
                    deadline = min(deadline, self._held_until)
            except Exception as error:  # a bug or a store error must not stop chat
                if disk_fault(error) is not None:  # logged by the store's DiskHealth
                    deadline = self._hold()
                else:
                    log.exception("chat service pass failed")
                    deadline = trio.current_time() + 1.0  # and must not spin either

    def process_pending(self) -> bool:
        """Store and acknowledge all the waiting input now, batch by batch, as the runner
        does (without yielding between batches): for driving the service without its
        runner. False if the disk refused a batch (it waits, as in the runner)."""
        while self.inbox.waiting:
            if not self.inbox.process_batch():
                return False
        return True

    async def _pass(self) -> None:
        while self.inbox.waiting:
            if not self.inbox.process_batch():
                self._hold()
                return
            if self.inbox.waiting:
                await trio.sleep(0)  # let the readers and writers run between batches
        self.inbox.honour_deferred_nudges()
        if self._due(now_ms()):
            with self.store.transaction():
                now = now_ms()
                self.outbox.retry_due(now)
                self.relay.recheck(now)
        self._pause = 0.0

    def _hold(self) -> float:
        """The disk refused a write: wait a while before the next try (no spinning, no
        resending the outbox every second while it stays full)."""
        self._pause = min(DISK_PAUSE_MAX, self._pause * 2) if self._pause else DISK_PAUSE
        self._held_until = trio.current_time() + self._pause
        return self._held_until

    def _due(self, now: int) -> bool:
        due = self.store.next_outbox_deadline()
        return self.relay.due(now) or (due is not None and due <= now)

    def _next_deadline(self) -> float:
        due = self.store.next_outbox_deadline()
        next_check = self.relay.next_check
        if next_check and (due is None or next_check < due):
            due = next_check
        nudges = (
            trio.current_time() + 1 / NUDGE_RATE if self.inbox.has_deferred_nudges else float("inf")
        )
        if due is None:
            return nudges
        return min(nudges, trio.current_time() + max(0.0, (due - now_ms()) / 1000))
