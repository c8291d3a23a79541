"""Relaying, both ways: our own messages and receipts sealed and deposited with relays
for recipients that are away (and the relays' answers, EnvelopesTaken), and the
envelopes we keep for others, offered to their recipients once they are online."""

from __future__ import annotations

import hashlib
import logging
import os

from p2pchat.chat.gate import Relation
from p2pchat.chat.relay import RelayLoad, choose_relays, kept_until, refusal
from p2pchat.chat.rules import MessageState
from p2pchat.chat.sealing import MAX_CONTENT, SEALED_PREFIX_BYTES, seal
from p2pchat.errors import LocalProtocolError, RemoteProtocolError
from p2pchat.identity import encode_peer_id
from p2pchat.node.chat.context import ChatContext
from p2pchat.node.chat.settings import RELAY_RECHECK_MS
from p2pchat.node.events import ChatEvent, Receipt
from p2pchat.wire.messages import (
    MAX_ENVELOPES,
    ChatMessage,
    ChatReceipt,
    Envelopes,
    EnvelopesTaken,
    Sealed,
)

log = logging.getLogger("p2pchat.chat")

MAX_REMEMBERED = 65_536  # deposits and offers awaiting an answer, bounded


class Relay:
    def __init__(self, context: ChatContext) -> None:
        self._ctx = context
        self._deposits: dict[bytes, bytes] = {}  # envelope id -> msg id, while relays answer
        self._kept_by: set[tuple[bytes, bytes]] = set()  # (envelope id, relay) that took it
        self._offered: dict[bytes, bytes] = {}  # envelope id -> recipient
        self.next_check = 0  # when to offer what we keep again (ms); 0: nothing to offer

    # ------------------------------------------------------------------ our deposits

    def deposit(
        self,
        recipient: bytes,
        content: ChatMessage | ChatReceipt,
        now: int,
        *,
        msg_id: bytes | None,
        wanted: int,
    ) -> int:
        """Seal ``content`` for ``recipient`` and hand it to relays; how many were asked."""
        ctx = self._ctx
        relays = self.relays_for(recipient, wanted)
        if not relays:
            return 0
        try:
            # Padded so that what a relay sees of the box is a size class (§13.4).
            encoded = ctx.codec.encode_padded(content, SEALED_PREFIX_BYTES)
            if len(encoded) > MAX_CONTENT:  # the longest texts: sealed as they are
                encoded = ctx.codec.encode(content)
        except LocalProtocolError as error:
            log.warning("cannot seal for %s: %s", encode_peer_id(recipient), error)
            return 0
        # A message keeps one envelope id however often it is deposited, so a relay asked
        # twice keeps one copy; receipts are fire-and-forget and get fresh ids.
        envelope_id = os.urandom(16) if msg_id is None else _envelope_id(msg_id, recipient)
        try:
            envelope = seal(
                ctx.identity, recipient, envelope_id, now + ctx.settings.relay.expiry_ms, encoded
            )
        except ValueError as error:  # e.g. a key that has no X25519 form: it waits for a session
            log.warning("cannot seal for %s: %s", encode_peer_id(recipient), error)
            return 0
        if msg_id is not None:
            self._deposits[envelope_id] = msg_id
            if len(self._deposits) > MAX_REMEMBERED:  # bounded: forgetting costs only a count
                self._deposits.pop(next(iter(self._deposits)))
                self._kept_by.clear()
        for relay in relays:
            ctx.links.send(relay, Envelopes((envelope,)))
        return len(relays)

    def relays_for(self, recipient: bytes, wanted: int) -> list[bytes]:
        """Up to ``wanted`` online peers to carry something for ``recipient``, connected
        ones first (in contacts-only mode, contacts only)."""
        ctx = self._ctx
        candidates = [p for p in ctx.peers.online_peers() if p not in (recipient, ctx.me)]
        if ctx.contacts_only:
            candidates = [p for p in candidates if ctx.is_contact(p)]
        connected = frozenset(p for p in candidates if ctx.links.is_connected(p))
        return choose_relays(candidates, wanted, ctx.rng, prefer=connected)

    def take_envelopes_taken(
        self, peer: bytes, message: EnvelopesTaken, now: int, events: list[ChatEvent]
    ) -> None:
        """A relay's answer to our deposit, or a recipient's to our offer."""
        store = self._ctx.store
        delivered = [i for i in (*message.taken, *message.refused) if i in self._offered]
        mine = [i for i in delivered if self._offered[i] == peer]
        for envelope_id in mine:
            del self._offered[envelope_id]
        if mine:
            store.relay_remove(mine)
        for envelope_id in message.taken:
            msg_id = self._deposits.get(envelope_id)
            if msg_id is None or (envelope_id, peer) in self._kept_by:
                continue
            self._kept_by.add((envelope_id, peer))
            item = store.outbox_item(msg_id)
            if item is not None:
                store.set_relays(msg_id, item.relays + 1)
                for changed in store.advance([msg_id], MessageState.SENT, at=now):
                    events.append(Receipt(changed.peer, msg_id, MessageState(changed.state)))
        if message.refused and message.reason:
            self._ctx.log_refusal("our envelopes", peer, message.reason, by_peer=True)

    # ------------------------------------------------------------------ kept for others

    def keep_for_other(self, envelope: Sealed, now: int) -> str | None:
        """Keep ``envelope`` for its recipient; None if kept (now or before), else why not."""
        ctx = self._ctx
        store = ctx.store
        if ctx.contacts_only and not (
            ctx.is_contact(envelope.sender) and ctx.is_contact(envelope.recipient)
        ):
            return "contacts only"  # we carry nothing for (or from) strangers
        held_from = store.relay_sender(envelope.envelope_id)
        if held_from == envelope.sender:
            return None  # asked again for what we keep: taken, whatever the quotas say now
        if held_from is not None:  # someone else's envelope took this id first
            return "envelope id in use"
        limits = ctx.settings.relay
        load = RelayLoad(
            from_sender=store.relay_count(sender=envelope.sender),
            for_recipient=store.relay_count(recipient=envelope.recipient),
            total_bytes=store.relay_bytes(),
        )
        reason = refusal(
            envelope,
            limits=limits,
            load=load,
            now_ms=now,
            sender_blocked=ctx.relation(envelope.sender) is Relation.BLOCKED,
        )
        if reason is None:
            store.relay_put(
                envelope_id=envelope.envelope_id,
                sender=envelope.sender,
                recipient=envelope.recipient,
                expires_at=kept_until(envelope, limits, now),
                stored_at=now,
                envelope=ctx.codec.encode(Envelopes((envelope,))),
            )
            if ctx.peers.is_online(envelope.recipient):
                self.next_check = now  # it is back already: offer it at once
        return reason

    def offer_relayed(self, recipient: bytes, now: int) -> None:
        """Hand the recipient what we keep for it; it answers with EnvelopesTaken."""
        ctx = self._ctx
        kept = ctx.store.relay_for(recipient, now=now)
        batch: list[Sealed] = []
        for envelope_id, blob in kept:
            try:
                wrapped = ctx.codec.decode(blob)
            except RemoteProtocolError:
                ctx.store.relay_remove([envelope_id])
                continue
            batch.extend(wrapped.envelopes)
            if len(self._offered) > MAX_REMEMBERED:  # answers that never came: forget them
                self._offered.clear()
            self._offered[envelope_id] = recipient
            if len(batch) == MAX_ENVELOPES:
                ctx.links.send(recipient, Envelopes(tuple(batch)))
                batch = []
        if batch:
            ctx.links.send(recipient, Envelopes(tuple(batch)))

    def due(self, now: int) -> bool:
        return bool(self.next_check) and self.next_check <= now

    def recheck(self, now: int) -> None:
        """Offer what we keep to recipients that are online, every RELAY_RECHECK_MS while
        we keep anything; forget what expired."""
        store = self._ctx.store
        if self.next_check and now >= self.next_check:
            self.next_check = 0
            for recipient in store.relay_recipients(now):
                if self._ctx.peers.is_online(recipient):
                    self.offer_relayed(recipient, now)
        if store.relay_recipients(now):
            self.next_check = self.next_check or now + RELAY_RECHECK_MS
        store.relay_expire(now)


def _envelope_id(msg_id: bytes, recipient: bytes) -> bytes:
    return hashlib.blake2b(msg_id + recipient, digest_size=16, person=b"p2pchat-envelope").digest()
