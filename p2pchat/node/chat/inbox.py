"""What we receive: chat input waits here (bounded, roughly by its memory) until the
runner stores a batch of it in one transaction and only then acknowledges it. It
covers messages (through the contact gate), receipts, nudges (empty receipts: a peer
asks for everything again; rate-limited), and envelopes: opened when they are for us,
handed to :class:`~p2pchat.node.chat.relaying.Relay` when they are for someone else."""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pchat.chat.gate import ContactGate, Relation, Verdict
from p2pchat.chat.rules import MessageState, clock_acceptable, text_problem
from p2pchat.chat.sealing import check_signature, unseal
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import RemoteProtocolError
from p2pchat.identity import encode_peer_id
from p2pchat.node.chat.context import ChatContext
from p2pchat.node.chat.outbox import Outbox
from p2pchat.node.chat.relaying import Relay
from p2pchat.node.chat.settings import (
    MAX_BATCH,
    MAX_DEFERRED_NUDGES,
    MAX_NUDGES,
    NUDGE_BURST,
    NUDGE_RATE,
)
from p2pchat.node.events import ChatEvent, ContactRequest, MessageIn, Receipt
from p2pchat.ratelimit import KeyedBuckets
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import ChatMessage, ChatReceipt, Envelopes, EnvelopesTaken, Sealed

log = logging.getLogger("p2pchat.chat")

Acks = dict[bytes, list[bytes]]  # peer -> ids of its messages we stored (to acknowledge)


class Inbox:
    def __init__(
        self, context: ChatContext, gate: ContactGate, outbox: Outbox, relay: Relay
    ) -> None:
        self._ctx = context
        self._gate = gate
        self._outbox = outbox
        self._relay = relay
        self._incoming: list[tuple[bytes, Any, str]] = []
        self._incoming_bytes = 0
        self._dropped_from: set[bytes] = set()  # peers whose input we had to drop
        self.dropped = 0  # input items dropped because the input was full, ever
        self._nudged: set[bytes] = set()  # peers that asked for everything again
        # A nudge costs store reads (the outbox, kept envelopes); an empty receipt is
        # also the cheapest thing a stranger can send, so nudges are rate-limited.
        self._nudges = KeyedBuckets(NUDGE_RATE, NUDGE_BURST, capacity=MAX_DEFERRED_NUDGES)
        self._deferred_nudges: dict[bytes, None] = {}  # over the rate: honoured later

    @property
    def waiting(self) -> int:
        """How many input items wait to be processed."""
        return len(self._incoming)

    @property
    def has_deferred_nudges(self) -> bool:
        return bool(self._deferred_nudges)

    def receive(self, peer: bytes, message: Any, address: str) -> None:
        """A chat message arrived on a session (processed by the runner, in batches)."""
        weight = input_weight(message)
        if self._incoming_bytes + weight > self._ctx.settings.max_input_bytes:
            # The sender retries: nothing is acknowledged that was not stored. Once the
            # backlog drains it is asked to retry at once (a nudge), not in 30 s.
            self.dropped += 1
            if len(self._dropped_from) < MAX_NUDGES:
                self._dropped_from.add(peer)
            skipped = self._ctx.log_limit.allow("input-full", trio.current_time())
            if skipped is not None:
                log.warning("chat input backlog full (%d bytes waiting): dropping input, "
                            "%d more dropped since the last report",
                            self._incoming_bytes, skipped)  # fmt: skip
            return
        self._incoming_bytes += weight
        self._incoming.append((peer, message, address))
        self._ctx.wake.set()

    # ------------------------------------------------------------------ batches

    def process_batch(self) -> bool:
        """Store, then acknowledge, one batch of input. False if the disk refused it:
        then nothing of it is stored or acknowledged, and it waits at the head of the
        input for the next try (so a full disk loses nothing the sender sent)."""
        ctx = self._ctx
        batch = self._incoming[:MAX_BATCH]
        del self._incoming[:MAX_BATCH]
        weight = sum(input_weight(message) for _, message, _ in batch)
        self._incoming_bytes -= weight
        now = now_ms()
        try:
            try:
                # The fast path: the whole batch in one transaction. A peer's protocol
                # error is raised before its item writes anything: it drops that item.
                with ctx.store.transaction():
                    taken = self._take_batch(batch, now, isolate=False)
            except Exception as error:
                if disk_fault(error) is not None:
                    raise
                # Something failed half-way (a bug, a store error): undo the batch and
                # take the items one by one, each in its own savepoint, so that one bad
                # item is dropped (never acknowledged) without taking the others with it.
                log.warning("a chat batch failed; retrying its %d items one by one", len(batch))
                with ctx.store.transaction():
                    taken = self._take_batch(batch, now, isolate=True)
        except Exception as error:
            if disk_fault(error) is None:
                raise
            self._incoming[:0] = batch
            self._incoming_bytes += weight
            return False
        # Committed: now, and only now, acknowledge and report.
        for peer, reply in taken.replies:
            ctx.links.send(peer, reply)
        for peer, ids in taken.acks.items():
            self._outbox.send_receipts(peer, MessageState.DELIVERED, ids)
        for event in taken.events:
            ctx.emit(event)
        nudged, self._nudged = self._nudged, set()
        for peer in nudged:
            self._honour_nudge(peer)
        self._outbox.refill_opened(now, skip=nudged)
        if self._dropped_from and not self._incoming:
            # Input we dropped (the backlog was full): ask its senders to retry now.
            dropped, self._dropped_from = self._dropped_from, set()
            for peer in dropped:
                if ctx.links.is_connected(peer):
                    self._outbox.send_receipts(peer, MessageState.DELIVERED, [], nudge=True)
        return True

    def _take_batch(
        self, batch: list[tuple[bytes, Any, str]], now: int, *, isolate: bool
    ) -> _Taken:
        store = self._ctx.store
        taken = _Taken()
        for peer, message, address in batch:
            item = _Taken() if isolate else taken
            try:
                with store.savepoint() if isolate else contextlib.nullcontext():
                    reply = self._take_one(peer, message, address, now, item.acks, item.events)
            except RemoteProtocolError as error:
                self._ctx.log_refusal("chat input", peer, error)
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
        self, peer: bytes, message: Any, address: str, now: int, acks: Acks, events: list[ChatEvent]
    ) -> EnvelopesTaken | None:
        if isinstance(message, ChatMessage):
            self._take_message(peer, message, address, now, acks, events, False)
        elif isinstance(message, ChatReceipt):
            self._take_receipt(peer, message, now, events)
        elif isinstance(message, Envelopes):
            return self._take_envelopes(peer, message, address, now, acks, events)
        elif isinstance(message, EnvelopesTaken):
            self._relay.take_envelopes_taken(peer, message, now, events)
        return None

    # ------------------------------------------------------------------ messages, receipts

    def _take_message(
        self,
        peer: bytes,
        message: ChatMessage,
        address: str,
        now: int,
        acks: Acks,
        events: list[ChatEvent],
        relayed: bool,
    ) -> bool:
        """Store one message if the gate lets it in; True if it is stored (now or before),
        False if the gate holds it back for now."""
        ctx = self._ctx
        store = ctx.store
        existing = store.message(message.msg_id)
        if existing is not None:
            if existing.peer == peer and not existing.outgoing:
                acks[peer].append(message.msg_id)  # a duplicate: acknowledge it again
                return True
            raise RemoteProtocolError("a message id that belongs to another conversation")
        if not clock_acceptable(ctx.clock(peer), message.clock):
            raise RemoteProtocolError(f"implausible clock {message.clock}")
        problem = text_problem(message.text)
        if problem:  # e.g. terminal escape sequences: never shown, never stored
            raise RemoteProtocolError(f"unacceptable text: {problem}")
        relation = ctx.relation(peer)
        if ctx.contacts_only and relation is Relation.STRANGER:
            # No session admits a stranger in this mode; this guards the relay path too.
            raise RemoteProtocolError("contacts only: not from a contact")
        request = store.request(peer) if relation is Relation.STRANGER else None
        verdict = self._gate.judge(
            peer=peer,
            relation=relation,
            address=_host(address),
            text_chars=len(message.text),
            request_messages=None if request is None else request.messages,
            pending_requests=store.count_requests() if request is None else 0,
            now_ms=now,
        )
        if verdict is Verdict.ANNOUNCE:
            # Too long for a request: the request is made, the message waits for "accept".
            nick = ctx.peers.nick_of(peer)
            if store.add_request(peer, nick=nick, address=address, now=now):
                text = f"(a message of {len(message.text)} characters waits until you accept)"
                events.append(ContactRequest(peer, nick, address, text))
            return False
        if verdict is Verdict.REFUSE:
            raise RemoteProtocolError("a message from a blocked identity")
        if verdict is Verdict.HOLD:
            return False
        stored = store.add_incoming(
            msg_id=message.msg_id,
            peer=peer,
            clock=message.clock,
            sent_at=message.time,
            received_at=now,
            text=message.text,
            action=message.action,
        )
        if stored is None:
            return True
        ctx.clocks.observe(peer, message.clock)
        acks[peer].append(message.msg_id)
        is_request = verdict is Verdict.REQUEST
        if is_request:
            nick = ctx.peers.nick_of(peer)
            if store.add_request(peer, nick=nick, address=address, now=now):
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
                message.action,
            )
        )
        return True

    def _take_receipt(
        self, peer: bytes, receipt: ChatReceipt, now: int, events: list[ChatEvent]
    ) -> None:
        # advance() only moves our own messages to this peer, and only forward.
        for changed in self._ctx.store.advance(receipt.msg_ids, receipt.state, at=now, peer=peer):
            events.append(Receipt(peer, changed.msg_id, MessageState(changed.state)))
        self._outbox.acknowledged(peer, receipt.msg_ids)
        if not receipt.msg_ids:
            # A nudge: the peer accepted us and asks for what its gate held back. Over
            # the rate it waits (once per peer) until the bucket allows it.
            if self._nudges.take(peer, now / 1000):
                self._nudged.add(peer)
            else:
                self._deferred_nudges[peer] = None
                while len(self._deferred_nudges) > MAX_DEFERRED_NUDGES:
                    del self._deferred_nudges[next(iter(self._deferred_nudges))]

    # ------------------------------------------------------------------ envelopes

    def _take_envelopes(
        self,
        peer: bytes,
        message: Envelopes,
        address: str,
        now: int,
        acks: Acks,
        events: list[ChatEvent],
    ) -> EnvelopesTaken:
        me = self._ctx.me
        taken: list[bytes] = []
        refused: list[bytes] = []
        reasons: set[str] = set()
        for envelope in message.envelopes:
            try:
                check_signature(envelope)
                if envelope.recipient == me and self._ctx.unwanted(envelope.sender):
                    # No contact requests in this mode: refused, so the relay forgets it.
                    reasons.add("contacts only")
                    done = False
                elif envelope.recipient == me:
                    done = self._open_envelope(envelope, address, now, acks, events)
                    if not done:
                        continue  # held by the gate: the relay keeps it and offers it again
                else:
                    reason = self._relay.keep_for_other(envelope, now)
                    done = reason is None
                    if reason:
                        reasons.add(reason)
            except RemoteProtocolError as error:
                self._ctx.log_refusal("an envelope", peer, error)
                reasons.add("invalid")
                done = False
            (taken if done else refused).append(envelope.envelope_id)
        return EnvelopesTaken(tuple(taken), tuple(refused), "; ".join(sorted(reasons))[:128])

    def _open_envelope(
        self, envelope: Sealed, address: str, now: int, acks: Acks, events: list[ChatEvent]
    ) -> bool:
        ctx = self._ctx
        sender = envelope.sender
        if ctx.relation(sender) is Relation.BLOCKED:
            return True  # taken, and dropped: the relay may forget it

        inner = ctx.codec.decode(unseal(ctx.identity, envelope))
        if isinstance(inner, ChatMessage):
            return self._take_message(sender, inner, address, now, acks, events, True)
        if isinstance(inner, ChatReceipt):
            self._take_receipt(sender, inner, now, events)
            return True
        raise RemoteProtocolError(f"a sealed {type(inner).__name__} is not allowed")

    # ------------------------------------------------------------------ nudges

    def _honour_nudge(self, peer: bytes) -> None:
        if self._ctx.links.is_connected(peer):
            self._outbox.peer_up(peer)
        else:
            self._outbox.peer_online(peer)

    def honour_deferred_nudges(self) -> None:
        """Honour the nudges that were over the rate, as far as the rate allows now."""
        now_s = now_ms() / 1000
        for peer in list(self._deferred_nudges):
            if self._nudges.take(peer, now_s):
                del self._deferred_nudges[peer]
                self._honour_nudge(peer)


def input_weight(message: Any) -> int:
    """About how much memory a waiting input item holds."""
    if isinstance(message, ChatMessage):
        return 64 + 4 * len(message.text)
    if isinstance(message, Envelopes):
        return 64 + sum(200 + len(envelope.box) for envelope in message.envelopes)
    return 64 + 16 * len(getattr(message, "msg_ids", ()))


@dataclass(slots=True)
class _Taken:
    """What a batch of input owes once it is committed: replies, receipts, events."""

    acks: Acks = field(default_factory=lambda: defaultdict(list))
    replies: list[tuple[bytes, EnvelopesTaken]] = field(default_factory=list)
    events: list[ChatEvent] = field(default_factory=list)

    def merge(self, other: _Taken) -> None:
        for peer, ids in other.acks.items():
            self.acks[peer].extend(ids)
        self.replies.extend(other.replies)
        self.events.extend(other.events)


def _host(address: str) -> str:
    host, _, _ = address.rpartition(":")
    return host.strip("[]") or address
