"""The chat service: the chat rules of :mod:`p2pchat.chat` around the store and the links.

Durability comes from two orders that are never broken:

- a message is committed to the outbox *before* it is handed to the network, and it
  stays there until the recipient acknowledges it;
- an incoming message is committed *before* it is acknowledged.

Incoming traffic is processed in batches (everything that arrived since the last
pass) inside one transaction, so a burst costs one commit, not one per message.
Messages sent over a live session are resent when the session is replaced; a timer
retries the rest with backoff, and hands messages for absent recipients to relays.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pchat.chat.gate import ContactGate, GateLimits, Relation, Verdict
from p2pchat.chat.invites import MAX_OUTSTANDING, TOKEN_BYTES, VALID_MS, token_key
from p2pchat.chat.relay import RelayLimits, RelayLoad, choose_relays, kept_until, refusal
from p2pchat.chat.rules import (
    Clocks,
    MessageState,
    clock_acceptable,
    compose,
    retry_delay_ms,
    text_problem,
)
from p2pchat.chat.sealing import check_signature, seal, unseal
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import LocalProtocolError, RemoteProtocolError, StoreError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.events import ChatEvent, ContactRequest, MessageIn, Receipt
from p2pchat.node.ports import Links, Peers
from p2pchat.ratelimit import KeyedBuckets, LogLimiter
from p2pchat.session.core import Refusal
from p2pchat.store import Contact, OutboxItem, Store, StoredMessage
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import (
    MAX_ENVELOPES,
    MAX_RECEIPT_IDS,
    ChatMessage,
    ChatReceipt,
    Envelopes,
    EnvelopesTaken,
    Sealed,
)

log = logging.getLogger("p2pchat.chat")

CHAT_MESSAGES = (ChatMessage, ChatReceipt, Envelopes, EnvelopesTaken)
WINDOW = 256  # messages in flight (sent, not acknowledged) per peer
SETTLED = (MessageState.DELIVERED, MessageState.READ)
LINK_RETRY_MS = 30_000  # sent over a live session: resent on reconnect, this is a backstop
RELAY_RECHECK_MS = 30_000  # how often a relay re-offers what it keeps to online recipients
MAX_BATCH = 2048
MAX_INPUT_BYTES = 64 * 1024 * 1024  # waiting input, roughly counted (see _weight)
MAX_NUDGES = 4096  # peers remembered to be asked to retry what we had to drop
DISK_PAUSE = 1.0  # seconds before trying the disk again after it refused a write ...
DISK_PAUSE_MAX = 8.0  # ... doubling up to this while it keeps refusing
CONTACTS_ONLY = "contacts-only"  # the close code (docs/protocol.md §7)
CONTACTS_ONLY_REASON = "this node talks to its contacts only"


@dataclass(slots=True)
class ChatSettings:
    gate: GateLimits = field(default_factory=GateLimits)
    relay: RelayLimits = field(default_factory=RelayLimits)


NUDGE_RATE = 1 / 5  # nudges honoured per second per peer, after a burst of...
NUDGE_BURST = 3
MAX_DEFERRED_NUDGES = 4096


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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
        self.settings = settings or ChatSettings()
        self.gate = ContactGate(self.settings.gate)
        self._links = links
        self._peers = peers
        self._emit = emit
        self._rng = rng or random.Random()
        self._codec = Codec()
        self._clocks = Clocks()
        self._relations: dict[bytes, Relation] = {}
        self._incoming: list[tuple[bytes, Any, str]] = []
        self._incoming_bytes = 0
        self._deposits: dict[bytes, bytes] = {}  # envelope id -> msg id, while relays answer
        self._kept_by: set[tuple[bytes, bytes]] = set()  # (envelope id, relay) that took it
        self._in_flight: dict[bytes, set[bytes]] = {}  # peer -> sent, not yet acknowledged
        # peer -> message ids waiting for window room, in order (a dict: an ordered set)
        self._backlog: dict[bytes, dict[bytes, None]] = {}
        self._room: set[bytes] = set()  # peers whose window receipts have just opened
        self._nudged: set[bytes] = set()  # peers that asked for everything again
        # A nudge costs store reads (the outbox, kept envelopes); an empty receipt is
        # also the cheapest thing a stranger can send, so nudges are rate-limited.
        self._nudges = KeyedBuckets(NUDGE_RATE, NUDGE_BURST, capacity=MAX_DEFERRED_NUDGES)
        self._deferred_nudges: dict[bytes, None] = {}  # over the rate: honoured later
        self._relay_offered: dict[bytes, bytes] = {}  # envelope id -> recipient
        self._next_relay_check = 0
        self._wake = trio.Event()
        self._dropped_from: set[bytes] = set()  # peers whose input we had to drop
        self._log_limit = LogLimiter(60.0)
        # While the disk refuses our writes, the runner pauses (doubling up to
        # DISK_PAUSE_MAX) before trying the held input and the retries again.
        self._held_until = 0.0
        self._pause = 0.0

    # ------------------------------------------------------------------ commands

    def send_text(self, peer: bytes, text: str) -> StoredMessage:
        """Commit a new message to the outbox, then hand it to the network."""
        if peer == self.me:
            raise ValueError("that is your own id")
        relation = self.relation(peer)
        if relation is Relation.BLOCKED:
            raise ValueError("you blocked this peer: unblock it first")
        if relation is Relation.STRANGER:
            self.add_contact(peer)  # writing to someone accepts them, as in any messenger
        now = now_ms()
        message = compose(os.urandom(16), self._clock(peer), now, text)  # checks the text
        window = self._in_flight.setdefault(peer, set())
        live = self._links.is_connected(peer)
        # The common case: a live session with room, nothing waiting before this one. It
        # is stored as sent in the same insert, and handed over right after the commit
        # (nothing can run in between: no await), so a failed commit sends nothing.
        direct = live and len(window) < WINDOW and not self._backlog.get(peer)
        direct = direct and self._links.has_room(peer)
        stored = self.store.add_outgoing(
            msg_id=message.msg_id,
            peer=peer,
            sender=self.me,
            clock=message.clock,
            sent_at=message.time,
            text=text,
            next_attempt_at=now + (LINK_RETRY_MS if live else retry_delay_ms(0, self._rng)),
            sent=direct,
        )
        self._clocks.observe(peer, message.clock)
        if direct and self._links.send(peer, message):
            window.add(message.msg_id)
            self._emit(Receipt(peer, message.msg_id, MessageState.SENT))
        elif direct:  # the link closed this very instant: the next session resends it
            self._emit(Receipt(peer, message.msg_id, MessageState.SENT))
        elif self._reachable(peer):
            with self.store.transaction():
                self._transmit(peer, [stored], now)
            self._wake.set()  # its retry may be the runner's next deadline
        else:
            self._wake.set()  # the runner hands it to relays
        return stored

    def mark_read(self, peer: bytes) -> int:
        """Mark the conversation read and tell the sender (a read receipt)."""
        unread = self.store.unread(peer)
        if not unread:
            return 0
        self.store.advance(unread, MessageState.READ, at=now_ms())
        self._send_receipts(peer, MessageState.READ, unread)
        return len(unread)

    def add_contact(self, peer: bytes, petname: str = "", nick: str = "") -> Contact:
        """Make ``peer`` a contact. ``nick``: its nick as we learnt it (an invite code),
        else the request's or the mesh's."""
        if peer == self.me:
            raise ValueError("that is your own id")
        request = self.store.request(peer)
        nick = nick or (request.nick if request else self._peers.nick_of(peer))
        contact = self.store.add_contact(peer, petname=petname, nick=nick, now=now_ms())
        self._relations[peer] = Relation.BLOCKED if contact.blocked else Relation.CONTACT
        if request is not None:
            # An empty receipt asks the sender to retry what it holds for us now:
            # the messages the gate held back while this was a request.
            self._send_receipts(peer, MessageState.DELIVERED, [], nudge=True)
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
        self.store.set_blocked(peer, blocked, now=now_ms())
        self._relations.pop(peer, None)
        if blocked:
            # An open session would otherwise outlive the block.
            self._links.close(peer, code="not-authorized", reason="blocked")

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
            skipped = self._log_limit.allow("authorize", time.monotonic())
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
        log.info("invite code redeemed by %s: now a contact", encode_peer_id(peer))
        return True

    def new_invite(self) -> tuple[bytes, int]:
        """A fresh one-time token for an invite code, remembered durably; (token, expiry
        in ms). At most MAX_OUTSTANDING are outstanding: the oldest are forgotten."""
        return new_invite(self.store)

    def _unwanted(self, sender: bytes) -> bool:
        """In contacts-only mode, a stranger (not blocked: its envelopes are taken and
        dropped) whose sealed messages we refuse."""
        return self.contacts_only and self.relation(sender) is Relation.STRANGER

    def _is_contact(self, peer: bytes) -> bool:
        return self.relation(peer) is Relation.CONTACT

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
            if len(self._relations) > 65_536:
                self._relations.clear()  # a cache: bounded, refilled from the store
            self._relations[peer] = relation
        return relation

    # ------------------------------------------------------------------ inputs

    def receive(self, peer: bytes, message: Any, address: str) -> None:
        """A chat message arrived on a session (processed by the runner, in batches)."""
        weight = _weight(message)
        if self._incoming_bytes + weight > MAX_INPUT_BYTES:
            # The sender retries: nothing is acknowledged that was not stored. Once the
            # backlog drains it is asked to retry at once (a nudge), not in 30 s.
            if len(self._dropped_from) < MAX_NUDGES:
                self._dropped_from.add(peer)
            skipped = self._log_limit.allow("input-full", trio.current_time())
            if skipped is not None:
                log.warning("chat input backlog full (%d bytes waiting): dropping input, "
                            "%d more dropped since the last report",
                            self._incoming_bytes, skipped)  # fmt: skip
            return
        self._incoming_bytes += weight
        self._incoming.append((peer, message, address))
        self._wake.set()

    def peer_up(self, peer: bytes) -> None:
        """A session with ``peer`` opened: resend what waits for it, offer what we keep."""
        now = now_ms()
        # A new session: whatever was in flight went with the old one, and is sent below.
        self._in_flight.pop(peer, None)
        self._backlog.pop(peer, None)
        with self.store.transaction():
            waiting = self.store.outbox(peer)
            if waiting:
                self._transmit(peer, waiting, now)
        self._offer_relayed(peer, now)
        self._wake.set()  # new retry times: let the runner take its next deadline

    def peer_online(self, peer: bytes) -> None:
        """The mesh says ``peer`` is (back) online."""
        if self.store.outbox(peer) or self.store.relay_count(recipient=peer):
            now = now_ms()
            if self._links.is_connected(peer):
                self.peer_up(peer)
            else:  # dial by sending; the session's arrival resends everything in order
                waiting = self.store.outbox(peer)
                if waiting:
                    self._transmit(peer, waiting[:1], now)
                self._offer_relayed(peer, now)
                self._wake.set()

    # ------------------------------------------------------------------ runner

    async def run(self) -> None:
        deadline = 0.0
        while True:
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                if trio.current_time() >= self._held_until:
                    await self._pass()
                deadline = self._next_deadline()
                if self._incoming:
                    deadline = min(deadline, self._held_until)
            except Exception as error:  # a bug or a store error must not stop chat
                if disk_fault(error) is not None:  # logged by the store's DiskHealth
                    deadline = self._hold()
                else:
                    log.exception("chat service pass failed")
                    deadline = trio.current_time() + 1.0  # and must not spin either

    async def _pass(self) -> None:
        while self._incoming:
            if not self._process_incoming():
                self._hold()
                return
            await trio.sleep(0)  # let the readers and writers run between batches
        self._honour_deferred_nudges()
        if self._due(now_ms()):
            with self.store.transaction():
                self._retry_due(now_ms())
        self._pause = 0.0

    def _honour_nudge(self, peer: bytes) -> None:
        if self._links.is_connected(peer):
            self.peer_up(peer)
        else:
            self.peer_online(peer)

    def _honour_deferred_nudges(self) -> None:
        now_s = now_ms() / 1000
        for peer in list(self._deferred_nudges):
            if self._nudges.take(peer, now_s):
                del self._deferred_nudges[peer]
                self._honour_nudge(peer)

    def _hold(self) -> float:
        """The disk refused a write: wait a while before the next try (no spinning, no
        resending the outbox every second while it stays full)."""
        self._pause = min(DISK_PAUSE_MAX, self._pause * 2) if self._pause else DISK_PAUSE
        self._held_until = trio.current_time() + self._pause
        return self._held_until

    def _due(self, now: int) -> bool:
        due = self.store.next_outbox_deadline()
        relay_due = bool(self._next_relay_check) and self._next_relay_check <= now
        return relay_due or (due is not None and due <= now)

    def _next_deadline(self) -> float:
        due = self.store.next_outbox_deadline()
        if self._next_relay_check and (due is None or self._next_relay_check < due):
            due = self._next_relay_check
        nudges = trio.current_time() + 1 / NUDGE_RATE if self._deferred_nudges else float("inf")
        if due is None:
            return nudges
        return min(nudges, trio.current_time() + max(0.0, (due - now_ms()) / 1000))

    # ------------------------------------------------------------------ incoming

    def _process_incoming(self) -> bool:
        """Store, then acknowledge, one batch of input. False if the disk refused it:
        then nothing of it is stored or acknowledged, and it waits at the head of the
        input for the next try (so a full disk loses nothing the sender sent)."""
        batch = self._incoming[:MAX_BATCH]
        del self._incoming[:MAX_BATCH]
        weight = sum(_weight(message) for _, message, _ in batch)
        self._incoming_bytes -= weight
        now = now_ms()
        try:
            try:
                # The fast path: the whole batch in one transaction. A peer's protocol
                # error is raised before its item writes anything: it drops that item.
                with self.store.transaction():
                    taken = self._take_batch(batch, now, isolate=False)
            except Exception as error:
                if disk_fault(error) is not None:
                    raise
                # Something failed half-way (a bug, a store error): undo the batch and
                # take the items one by one, each in its own savepoint, so that one bad
                # item is dropped (never acknowledged) without taking the others with it.
                log.warning("a chat batch failed; retrying its %d items one by one", len(batch))
                with self.store.transaction():
                    taken = self._take_batch(batch, now, isolate=True)
        except Exception as error:
            if disk_fault(error) is None:
                raise
            self._incoming[:0] = batch
            self._incoming_bytes += weight
            return False
        # Committed: now, and only now, acknowledge and report.
        for peer, reply in taken.replies:
            self._links.send(peer, reply)
        for peer, ids in taken.acks.items():
            self._send_receipts(peer, MessageState.DELIVERED, ids)
        for event in taken.events:
            self._emit(event)
        nudged, self._nudged = self._nudged, set()
        for peer in nudged:
            self._honour_nudge(peer)
        if self._room:
            with self.store.transaction():
                for peer in self._room - nudged:
                    self._refill(peer, now)
            self._room.clear()
        if self._dropped_from and not self._incoming:
            # Input we dropped (the backlog was full): ask its senders to retry now.
            dropped, self._dropped_from = self._dropped_from, set()
            for peer in dropped:
                if self._links.is_connected(peer):
                    self._send_receipts(peer, MessageState.DELIVERED, [], nudge=True)
        return True

    def _take_batch(
        self, batch: list[tuple[bytes, Any, str]], now: int, *, isolate: bool
    ) -> _Taken:
        taken = _Taken()
        for peer, message, address in batch:
            item = _Taken() if isolate else taken
            try:
                with self.store.savepoint() if isolate else contextlib.nullcontext():
                    reply = self._take_one(peer, message, address, now, item.acks, item.events)
            except RemoteProtocolError as error:
                self._log_refusal("chat input", peer, error)
                continue
            except Exception as error:
                if not isolate or disk_fault(error) is not None:
                    raise  # a full disk fails the whole batch, not this one item
                log.exception("chat input from %s failed", encode_peer_id(peer))
                continue
            if reply is not None:
                item.replies.append((peer, reply))
            if isolate:
                taken.merge(item)
        return taken

    def _take_one(
        self,
        peer: bytes,
        message: Any,
        address: str,
        now: int,
        acks: dict[bytes, list[bytes]],
        events: list[ChatEvent],
    ) -> EnvelopesTaken | None:
        if isinstance(message, ChatMessage):
            self._take_message(peer, message, address, now, acks, events, False)
        elif isinstance(message, ChatReceipt):
            self._take_receipt(peer, message, now, events)
        elif isinstance(message, Envelopes):
            return self._take_envelopes(peer, message, address, now, acks, events)
        elif isinstance(message, EnvelopesTaken):
            self._take_envelopes_taken(peer, message, now, events)
        return None

    def _take_message(
        self,
        peer: bytes,
        message: ChatMessage,
        address: str,
        now: int,
        acks: dict[bytes, list[bytes]],
        events: list[ChatEvent],
        relayed: bool,
    ) -> bool:
        """Store one message if the gate lets it in; True if it is stored (now or before),
        False if the gate holds it back for now."""
        existing = self.store.message(message.msg_id)
        if existing is not None:
            if existing.peer == peer and not existing.outgoing:
                acks[peer].append(message.msg_id)  # a duplicate: acknowledge it again
                return True
            raise RemoteProtocolError("a message id that belongs to another conversation")
        if not clock_acceptable(self._clock(peer), message.clock):
            raise RemoteProtocolError(f"implausible clock {message.clock}")
        problem = text_problem(message.text)
        if problem:  # e.g. terminal escape sequences: never shown, never stored
            raise RemoteProtocolError(f"unacceptable text: {problem}")
        relation = self.relation(peer)
        if self.contacts_only and relation is Relation.STRANGER:
            # No session admits a stranger in this mode; this guards the relay path too.
            raise RemoteProtocolError("contacts only: not from a contact")
        request = self.store.request(peer) if relation is Relation.STRANGER else None
        verdict = self.gate.judge(
            peer=peer,
            relation=relation,
            address=_host(address),
            text_chars=len(message.text),
            request_messages=None if request is None else request.messages,
            pending_requests=self.store.count_requests() if request is None else 0,
            now_ms=now,
        )
        if verdict is Verdict.ANNOUNCE:
            # Too long for a request: the request is made, the message waits for "accept".
            nick = self._peers.nick_of(peer)
            if self.store.add_request(peer, nick=nick, address=address, now=now):
                text = f"(a message of {len(message.text)} characters waits until you accept)"
                events.append(ContactRequest(peer, nick, address, text))
            return False
        if verdict is Verdict.REFUSE:
            raise RemoteProtocolError("a message from a blocked identity")
        if verdict is Verdict.HOLD:
            return False
        stored = self.store.add_incoming(
            msg_id=message.msg_id,
            peer=peer,
            clock=message.clock,
            sent_at=message.time,
            received_at=now,
            text=message.text,
        )
        if stored is None:
            return True
        self._clocks.observe(peer, message.clock)
        acks[peer].append(message.msg_id)
        is_request = verdict is Verdict.REQUEST
        if is_request:
            nick = self._peers.nick_of(peer)
            if self.store.add_request(peer, nick=nick, address=address, now=now):
                events.append(ContactRequest(peer, nick, address, message.text))
        events.append(
            MessageIn(
                peer,
                message.msg_id,
                message.text,
                message.time,
                message.clock,
                is_request,
                relayed,
            )
        )
        return True

    def _take_receipt(
        self, peer: bytes, receipt: ChatReceipt, now: int, events: list[ChatEvent]
    ) -> None:
        # advance() only moves our own messages to this peer, and only forward.
        for changed in self.store.advance(receipt.msg_ids, receipt.state, at=now, peer=peer):
            events.append(Receipt(peer, changed.msg_id, MessageState(changed.state)))
        window = self._in_flight.get(peer)
        if window:
            window.difference_update(receipt.msg_ids)
            self._room.add(peer)
        if not receipt.msg_ids:
            # A nudge: the peer accepted us and asks for what its gate held back. Over
            # the rate it waits (once per peer) until the bucket allows it.
            if self._nudges.take(peer, now / 1000):
                self._nudged.add(peer)
            else:
                self._deferred_nudges[peer] = None
                while len(self._deferred_nudges) > MAX_DEFERRED_NUDGES:
                    del self._deferred_nudges[next(iter(self._deferred_nudges))]

    def _take_envelopes(
        self,
        peer: bytes,
        message: Envelopes,
        address: str,
        now: int,
        acks: dict[bytes, list[bytes]],
        events: list[ChatEvent],
    ) -> EnvelopesTaken:
        taken: list[bytes] = []
        refused: list[bytes] = []
        reasons: set[str] = set()
        for envelope in message.envelopes:
            try:
                check_signature(envelope)
                if envelope.recipient == self.me and self._unwanted(envelope.sender):
                    # No contact requests in this mode: refused, so the relay forgets it.
                    reasons.add("contacts only")
                    done = False
                elif envelope.recipient == self.me:
                    done = self._open_envelope(envelope, address, now, acks, events)
                    if not done:
                        continue  # held by the gate: the relay keeps it and offers it again
                else:
                    reason = self._keep_for_other(envelope, now)
                    done = reason is None
                    if reason:
                        reasons.add(reason)
            except RemoteProtocolError as error:
                self._log_refusal("an envelope", peer, error)
                reasons.add("invalid")
                done = False
            (taken if done else refused).append(envelope.envelope_id)
        return EnvelopesTaken(tuple(taken), tuple(refused), "; ".join(sorted(reasons))[:128])

    def _open_envelope(
        self,
        envelope: Sealed,
        address: str,
        now: int,
        acks: dict[bytes, list[bytes]],
        events: list[ChatEvent],
    ) -> bool:
        sender = envelope.sender
        if self.relation(sender) is Relation.BLOCKED:
            return True  # taken, and dropped: the relay may forget it

        inner = self._codec.decode(unseal(self.identity, envelope))
        if isinstance(inner, ChatMessage):
            return self._take_message(sender, inner, address, now, acks, events, True)
        if isinstance(inner, ChatReceipt):
            self._take_receipt(sender, inner, now, events)
            return True
        raise RemoteProtocolError(f"a sealed {type(inner).__name__} is not allowed")

    def _keep_for_other(self, envelope: Sealed, now: int) -> str | None:
        if self.contacts_only and not (
            self._is_contact(envelope.sender) and self._is_contact(envelope.recipient)
        ):
            return "contacts only"  # we carry nothing for (or from) strangers
        held_from = self.store.relay_sender(envelope.envelope_id)
        if held_from == envelope.sender:
            return None  # asked again for what we keep: taken, whatever the quotas say now
        if held_from is not None:  # someone else's envelope took this id first
            return "envelope id in use"
        limits = self.settings.relay
        load = RelayLoad(
            from_sender=self.store.relay_count(sender=envelope.sender),
            for_recipient=self.store.relay_count(recipient=envelope.recipient),
            total_bytes=self.store.relay_bytes(),
        )
        reason = refusal(
            envelope,
            limits=limits,
            load=load,
            now_ms=now,
            sender_blocked=self.relation(envelope.sender) is Relation.BLOCKED,
        )
        if reason is None:
            self.store.relay_put(
                envelope_id=envelope.envelope_id,
                sender=envelope.sender,
                recipient=envelope.recipient,
                expires_at=kept_until(envelope, limits, now),
                stored_at=now,
                envelope=self._codec.encode(Envelopes((envelope,))),
            )
            if self._peers.is_online(envelope.recipient):
                self._next_relay_check = now  # it is back already: offer it at once
        return reason

    def _take_envelopes_taken(
        self, peer: bytes, message: EnvelopesTaken, now: int, events: list[ChatEvent]
    ) -> None:
        delivered = [i for i in (*message.taken, *message.refused) if i in self._relay_offered]
        mine = [i for i in delivered if self._relay_offered[i] == peer]
        for envelope_id in mine:
            del self._relay_offered[envelope_id]
        if mine:
            self.store.relay_remove(mine)
        for envelope_id in message.taken:
            msg_id = self._deposits.get(envelope_id)
            if msg_id is None or (envelope_id, peer) in self._kept_by:
                continue
            self._kept_by.add((envelope_id, peer))
            item = self.store.outbox_item(msg_id)
            if item is not None:
                self.store.set_relays(msg_id, item.relays + 1)
                for changed in self.store.advance([msg_id], MessageState.SENT, at=now):
                    events.append(Receipt(changed.peer, msg_id, MessageState(changed.state)))
        if message.refused and message.reason:
            self._log_refusal("our envelopes", peer, message.reason, by_peer=True)

    def _log_refusal(
        self, what: str, peer: bytes, reason: object, *, by_peer: bool = False
    ) -> None:
        """One line per peer and kind per minute, whatever a peer sends."""
        skipped = self._log_limit.allow((what, peer), trio.current_time())
        if skipped is None:
            return
        more = f" ({skipped} more since the last line)" if skipped else ""
        if by_peer:
            log.info("%s refused %s: %s%s", encode_peer_id(peer), what, reason, more)
        else:
            log.info("%s from %s refused: %s%s", what, encode_peer_id(peer), reason, more)

    # ------------------------------------------------------------------ outgoing

    def _transmit(
        self,
        peer: bytes,
        items: Iterable[StoredMessage | OutboxItem],
        now: int,
        *,
        from_backlog: bool = False,
    ) -> None:
        """Hand ``items`` (in conversation order) to the peer.

        With a live session they go through the peer's window: at most WINDOW in flight,
        the rest wait in its ordered backlog, refilled by receipts (the timer is only a
        30 s backstop). Without a session each send starts or joins a dial, and retries
        back off. ``from_backlog``: the items come from the head of the backlog.
        """
        if not self._links.is_connected(peer):
            for item in items:
                stored = self._unsettled(item)
                if stored is not None:
                    self._links.send(peer, _wire(stored))  # may drop: the backoff retries it
                    attempts = _attempts(item) + 1
                    delay = retry_delay_ms(attempts, self._rng)
                    self.store.reschedule(
                        stored.msg_id, attempts=attempts, next_attempt_at=now + delay
                    )
            return
        window = self._in_flight.setdefault(peer, set())
        backlog = self._backlog.setdefault(peer, {})
        waiting: list[StoredMessage | OutboxItem] = []
        sent_ids: list[bytes] = []
        for item in items:
            queued_behind = waiting or (backlog and not from_backlog)
            if item.msg_id not in window and (len(window) >= WINDOW or queued_behind):
                waiting.append(item)
                continue
            stored = self._unsettled(item)
            if stored is None:
                continue
            if not self._links.send(peer, _wire(stored)):
                waiting.append(item)  # the link's queue is full: again when receipts come
                continue
            window.add(stored.msg_id)
            attempts = _attempts(item) + 1
            self.store.reschedule(
                stored.msg_id, attempts=attempts, next_attempt_at=now + LINK_RETRY_MS
            )
            sent_ids.append(stored.msg_id)
        if waiting:
            ids = [item.msg_id for item in waiting]
            if from_backlog:  # back to the head, in order
                self._backlog[peer] = dict.fromkeys([*ids, *backlog])
            else:
                backlog.update(dict.fromkeys(ids))
            for item in waiting:  # due ones wait another backstop period, never spin
                if isinstance(item, OutboxItem) and item.next_attempt_at <= now:
                    self.store.reschedule(
                        item.msg_id, attempts=item.attempts, next_attempt_at=now + LINK_RETRY_MS
                    )
        for changed in self.store.advance(sent_ids, MessageState.SENT, at=now):
            self._emit(Receipt(peer, changed.msg_id, MessageState.SENT))

    def _unsettled(self, item: StoredMessage | OutboxItem) -> StoredMessage | None:
        stored = item if isinstance(item, StoredMessage) else self.store.message(item.msg_id)
        return None if stored is None or stored.state in SETTLED else stored

    def _refill(self, peer: bytes, now: int) -> None:
        """Receipts made room in the peer's window: send what waits in its backlog."""
        window = self._in_flight.get(peer, set())
        backlog = self._backlog.get(peer)
        if not backlog or len(window) >= WINDOW:
            return
        batch: list[StoredMessage] = []
        while backlog and len(window) + len(batch) < WINDOW:
            msg_id = next(iter(backlog))
            del backlog[msg_id]
            stored = self.store.message(msg_id) if msg_id not in window else None
            if stored is not None and stored.state not in SETTLED:
                batch.append(stored)
        if batch:
            self._transmit(peer, batch, now, from_backlog=True)

    def peer_down(self, peer: bytes) -> None:
        """The session closed: nothing is in flight any more. What it carried and was not
        acknowledged is tried again after the first retry delay (~1 s), by dialling, not
        only when the peer next dials us or the 30 s backstop passes: a session the peer
        closes for being idle can cross a message just sent."""
        window = self._in_flight.pop(peer, None)
        self._backlog.pop(peer, None)
        if not window:
            return
        soon = now_ms() + retry_delay_ms(0, self._rng)
        with self.store.transaction():
            for item in self.store.outbox(peer):
                if item.msg_id in window and item.next_attempt_at > soon:
                    self.store.reschedule(item.msg_id, attempts=item.attempts, next_attempt_at=soon)
        self._wake.set()  # an earlier deadline for the runner

    def _send_receipts(
        self, peer: bytes, state: MessageState, ids: list[bytes], *, nudge: bool = False
    ) -> None:
        chunks = [ids[i : i + MAX_RECEIPT_IDS] for i in range(0, len(ids), MAX_RECEIPT_IDS)]
        if nudge and not chunks:
            chunks = [[]]
        for chunk in chunks:
            receipt = ChatReceipt(state.value, tuple(chunk))
            if self._reachable(peer):
                self._links.send(peer, receipt)
            else:  # the sender is away: the receipt travels like a message, sealed
                self._deposit(
                    peer, receipt, now_ms(), msg_id=None, wanted=self.settings.relay.copies
                )

    def _deposit(
        self,
        recipient: bytes,
        content: ChatMessage | ChatReceipt,
        now: int,
        *,
        msg_id: bytes | None,
        wanted: int,
    ) -> int:
        """Seal ``content`` for ``recipient`` and hand it to relays; how many were asked."""
        relays = self._relays_for(recipient, wanted)
        if not relays:
            return 0
        try:
            encoded = self._codec.encode(content)
        except LocalProtocolError as error:
            log.warning("cannot seal for %s: %s", encode_peer_id(recipient), error)
            return 0
        # A message keeps one envelope id however often it is deposited, so a relay asked
        # twice keeps one copy; receipts are fire-and-forget and get fresh ids.
        envelope_id = os.urandom(16) if msg_id is None else _envelope_id(msg_id, recipient)
        try:
            envelope = seal(
                self.identity, recipient, envelope_id, now + self.settings.relay.expiry_ms, encoded
            )
        except ValueError as error:  # e.g. a key that has no X25519 form: it waits for a session
            log.warning("cannot seal for %s: %s", encode_peer_id(recipient), error)
            return 0
        if msg_id is not None:
            self._deposits[envelope_id] = msg_id
            if len(self._deposits) > 65_536:  # bounded: forgetting costs only a count
                self._deposits.pop(next(iter(self._deposits)))
                self._kept_by.clear()
        for relay in relays:
            self._links.send(relay, Envelopes((envelope,)))
        return len(relays)

    def _relays_for(self, recipient: bytes, wanted: int) -> list[bytes]:
        candidates = [p for p in self._peers.online_peers() if p not in (recipient, self.me)]
        if self.contacts_only:
            candidates = [p for p in candidates if self._is_contact(p)]
        connected = frozenset(p for p in candidates if self._links.is_connected(p))
        return choose_relays(candidates, wanted, self._rng, prefer=connected)

    def _retry_due(self, now: int) -> None:
        due = self.store.outbox_due(now)
        by_peer: dict[bytes, list[OutboxItem]] = defaultdict(list)
        for item in due:
            by_peer[item.peer].append(item)
        for peer, items in by_peer.items():
            if self._reachable(peer):
                self._transmit(peer, items, now, from_backlog=True)
                continue
            if self._peers.is_online(peer) and (first := self._unsettled(items[0])) is not None:
                # Online but our dials fail: relays carry it, and one send per pass lets
                # the link try a direct path again (its own backoff paces the dials).
                self._links.send(peer, _wire(first))
            for item in items:
                attempts = item.attempts + 1
                wanted = self.settings.relay.copies - item.relays
                if wanted > 0:
                    stored = self.store.message(item.msg_id)
                    if stored is not None:
                        self._deposit(peer, _wire(stored), now, msg_id=item.msg_id, wanted=wanted)
                self.store.reschedule(
                    item.msg_id,
                    attempts=attempts,
                    next_attempt_at=now + retry_delay_ms(attempts, self._rng),
                )
        if self._next_relay_check and now >= self._next_relay_check:
            self._next_relay_check = 0
            for recipient in self.store.relay_recipients(now):
                if self._peers.is_online(recipient):
                    self._offer_relayed(recipient, now)
        if self.store.relay_recipients(now):
            self._next_relay_check = self._next_relay_check or now + RELAY_RECHECK_MS
        self.store.relay_expire(now)

    def _offer_relayed(self, recipient: bytes, now: int) -> None:
        """Hand the recipient what we keep for it; it answers with EnvelopesTaken."""
        kept = self.store.relay_for(recipient, now=now)
        batch: list[Sealed] = []
        for envelope_id, blob in kept:
            try:
                wrapped = self._codec.decode(blob)
            except RemoteProtocolError:
                self.store.relay_remove([envelope_id])
                continue
            batch.extend(wrapped.envelopes)
            if len(self._relay_offered) > 65_536:  # answers that never came: forget them
                self._relay_offered.clear()
            self._relay_offered[envelope_id] = recipient
            if len(batch) == MAX_ENVELOPES:
                self._links.send(recipient, Envelopes(tuple(batch)))
                batch = []
        if batch:
            self._links.send(recipient, Envelopes(tuple(batch)))

    # ------------------------------------------------------------------ helpers

    def _reachable(self, peer: bytes) -> bool:
        """Connected, or online and not failing to dial (then relays carry it instead)."""
        return self._links.is_connected(peer) or (
            self._peers.is_online(peer) and not self._links.dial_failing(peer)
        )

    def _clock(self, peer: bytes) -> int:
        if not self._clocks.known(peer):
            if len(self._clocks) > 4096:  # a cache of the store's clocks: bounded
                self._clocks = Clocks()
            self._clocks.seed(peer, self.store.max_clock(peer))
        return self._clocks.highest(peer)


def _wire(stored: StoredMessage) -> ChatMessage:
    return ChatMessage(stored.msg_id, stored.clock, stored.sent_at, stored.text)


def _attempts(item: StoredMessage | OutboxItem) -> int:
    return item.attempts if isinstance(item, OutboxItem) else 0


def _weight(message: Any) -> int:
    """About how much memory a waiting input item holds."""
    if isinstance(message, ChatMessage):
        return 64 + 4 * len(message.text)
    if isinstance(message, Envelopes):
        return 64 + sum(200 + len(envelope.box) for envelope in message.envelopes)
    return 64 + 16 * len(getattr(message, "msg_ids", ()))


@dataclass(slots=True)
class _Taken:
    """What a batch of input owes once it is committed: replies, receipts, events."""

    acks: dict[bytes, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    replies: list[tuple[bytes, EnvelopesTaken]] = field(default_factory=list)
    events: list[ChatEvent] = field(default_factory=list)

    def merge(self, other: _Taken) -> None:
        for peer, ids in other.acks.items():
            self.acks[peer].extend(ids)
        self.replies.extend(other.replies)
        self.events.extend(other.events)


def _envelope_id(msg_id: bytes, recipient: bytes) -> bytes:
    return hashlib.blake2b(msg_id + recipient, digest_size=16, person=b"p2pchat-envelope").digest()


def _host(address: str) -> str:
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address
