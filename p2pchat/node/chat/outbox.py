"""What we send: new messages, resends and retries, and receipts.

A peer with a live session gets at most WINDOW messages in flight; the rest wait in
its ordered backlog, refilled as receipts make room (a timer is only the
``link_retry_ms`` backstop). Without a session each send starts or joins a dial and
retries back off; peers that are away get sealed copies through relays. The outbox
itself is the store's: every message is committed there before it is handed on."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

from p2pchat.chat.rules import SETTLED_STATES, MessageState, compose, retry_delay_ms
from p2pchat.node.chat.context import ChatContext
from p2pchat.node.chat.relaying import Relay
from p2pchat.node.chat.settings import WINDOW
from p2pchat.node.events import Receipt
from p2pchat.store import OutboxItem, StoredMessage
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import MAX_RECEIPT_IDS, ChatMessage, ChatReceipt


class Outbox:
    def __init__(self, context: ChatContext, relay: Relay) -> None:
        self._ctx = context
        self._relay = relay
        self._in_flight: dict[bytes, set[bytes]] = {}  # peer -> sent, not yet acknowledged
        # peer -> message ids waiting for window room, in order (a dict: an ordered set)
        self._backlog: dict[bytes, dict[bytes, None]] = {}
        self._room: set[bytes] = set()  # peers whose window receipts have just opened

    def waiting_for_room(self, peer: bytes) -> int:
        """How many messages to ``peer`` wait in its backlog for window room."""
        return len(self._backlog.get(peer, {}))

    # ------------------------------------------------------------------ sending

    def send_text(self, peer: bytes, text: str, *, action: bool = False) -> StoredMessage:
        """Commit a new message to the outbox, then hand it to the network."""
        new = self._store_new(peer, text, action, planned=0)
        self._hand_over(*new)
        return new[1]

    def send_texts(self, items: list[tuple[bytes, str, bool]]) -> list[StoredMessage | ValueError]:
        """Several new messages (peer, text, action) committed together, then handed to
        the network: one commit instead of one each. An item the chat rules refuse is
        its ValueError in the result, and the others go; a failed commit (a StoreError)
        stores and sends none of them."""
        results: list[StoredMessage | ValueError] = []
        made: list[tuple[bytes, StoredMessage, ChatMessage, bool]] = []
        planned: dict[bytes, int] = {}  # direct sends planned per peer in this batch
        with self._ctx.store.transaction():
            for peer, text, action in items:
                try:
                    new = self._store_new(peer, text, action, planned=planned.get(peer, 0))
                except ValueError as refused:  # before anything of it was written
                    results.append(refused)
                    continue
                planned[peer] = planned.get(peer, 0) + new[3]
                made.append(new)
                results.append(new[1])
        for new in made:  # committed: now, and only now, handed over
            self._hand_over(*new)
        return results

    def _store_new(
        self, peer: bytes, text: str, action: bool, *, planned: int
    ) -> tuple[bytes, StoredMessage, ChatMessage, bool]:
        """Store one new message (ValueError, before any write, if the rules refuse it);
        whether it goes straight out is decided here (``planned``: direct sends to the
        peer already decided in the same transaction)."""
        ctx = self._ctx
        now = now_ms()
        message = compose(os.urandom(16), ctx.clock(peer), now, text, action=action)
        window = self._in_flight.get(peer, ())
        live = ctx.links.is_connected(peer)
        # The common case: a live session with room, nothing waiting before this one. It
        # is stored as sent in the same insert, and handed over right after the commit
        # (nothing can run in between: no await), so a failed commit sends nothing.
        direct = live and len(window) + planned < WINDOW and not self._backlog.get(peer)
        direct = direct and ctx.links.has_room(peer)
        retry_ms = ctx.settings.link_retry_ms if live else retry_delay_ms(0, ctx.rng)
        stored = ctx.store.add_outgoing(
            msg_id=message.msg_id,
            peer=peer,
            sender=ctx.me,
            clock=message.clock,
            sent_at=message.time,
            text=text,
            next_attempt_at=now + retry_ms,
            sent=direct,
            action=action,
        )
        ctx.clocks.observe(peer, message.clock)
        return peer, stored, message, direct

    def _hand_over(
        self, peer: bytes, stored: StoredMessage, message: ChatMessage, direct: bool
    ) -> None:
        ctx = self._ctx
        window = self._in_flight.setdefault(peer, set())
        if direct and ctx.links.send(peer, message):
            window.add(message.msg_id)
            ctx.emit(Receipt(peer, message.msg_id, MessageState.SENT))
        elif direct:  # the link closed this very instant: the next session resends it
            ctx.emit(Receipt(peer, message.msg_id, MessageState.SENT))
        elif ctx.reachable(peer):
            with ctx.store.transaction():
                self._transmit(peer, [stored], now_ms())
            ctx.wake.set()  # its retry may be the runner's next deadline
        else:
            ctx.wake.set()  # the runner hands it to relays

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
        ctx = self._ctx
        if not ctx.links.is_connected(peer):
            for item in items:
                stored = self._unsettled(item)
                if stored is not None:
                    ctx.links.send(peer, _wire(stored))  # may drop: the backoff retries it
                    attempts = _attempts(item) + 1
                    delay = retry_delay_ms(attempts, ctx.rng)
                    ctx.store.reschedule(
                        stored.msg_id, attempts=attempts, next_attempt_at=now + delay
                    )
            return
        retry_ms = ctx.settings.link_retry_ms
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
            if not ctx.links.send(peer, _wire(stored)):
                waiting.append(item)  # the link's queue is full: again when receipts come
                continue
            window.add(stored.msg_id)
            attempts = _attempts(item) + 1
            ctx.store.reschedule(stored.msg_id, attempts=attempts, next_attempt_at=now + retry_ms)
            sent_ids.append(stored.msg_id)
        if waiting:
            ids = [item.msg_id for item in waiting]
            if from_backlog:  # back to the head, in order
                self._backlog[peer] = dict.fromkeys([*ids, *backlog])
            else:
                backlog.update(dict.fromkeys(ids))
            for item in waiting:  # due ones wait another backstop period, never spin
                if isinstance(item, OutboxItem) and item.next_attempt_at <= now:
                    ctx.store.reschedule(
                        item.msg_id, attempts=item.attempts, next_attempt_at=now + retry_ms
                    )
        for changed in ctx.store.advance(sent_ids, MessageState.SENT, at=now):
            ctx.emit(Receipt(peer, changed.msg_id, MessageState.SENT))

    def _unsettled(self, item: StoredMessage | OutboxItem) -> StoredMessage | None:
        stored = item if isinstance(item, StoredMessage) else self._ctx.store.message(item.msg_id)
        return None if stored is None or stored.state in SETTLED_STATES else stored

    # ------------------------------------------------------------------ windows

    def acknowledged(self, peer: bytes, msg_ids: Iterable[bytes]) -> None:
        """A receipt from ``peer``: what it names is no longer in flight."""
        window = self._in_flight.get(peer)
        if window:
            window.difference_update(msg_ids)
            self._room.add(peer)

    def refill_opened(self, now: int, *, skip: set[bytes]) -> None:
        """Send what waits in the backlogs whose windows receipts opened (but for the
        peers in ``skip``, that are sent everything anyway)."""
        # Only peers with a backlog have anything to send: at chat rates none has, and
        # an empty transaction still costs a BEGIN IMMEDIATE and a COMMIT.
        waiting = [peer for peer in self._room - skip if self._backlog.get(peer)]
        self._room.clear()
        if waiting:
            with self._ctx.store.transaction():
                for peer in waiting:
                    self._refill(peer, now)

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
            stored = self._ctx.store.message(msg_id) if msg_id not in window else None
            if stored is not None and stored.state not in SETTLED_STATES:
                batch.append(stored)
        if batch:
            self._transmit(peer, batch, now, from_backlog=True)

    # ------------------------------------------------------------------ sessions

    def peer_up(self, peer: bytes) -> None:
        """A session with ``peer`` opened: resend what waits for it, offer what we keep."""
        ctx = self._ctx
        now = now_ms()
        # A new session: whatever was in flight went with the old one, and is sent below.
        self._in_flight.pop(peer, None)
        self._backlog.pop(peer, None)
        with ctx.store.transaction():
            waiting = ctx.store.outbox(peer)
            if waiting:
                self._transmit(peer, waiting, now)
        self._relay.offer_relayed(peer, now)
        ctx.wake.set()  # new retry times: let the runner take its next deadline

    def peer_online(self, peer: bytes) -> None:
        """The mesh says ``peer`` is (back) online."""
        ctx = self._ctx
        if ctx.store.outbox(peer) or ctx.store.relay_count(recipient=peer):
            now = now_ms()
            if ctx.links.is_connected(peer):
                self.peer_up(peer)
            else:  # dial by sending; the session's arrival resends everything in order
                waiting = ctx.store.outbox(peer)
                if waiting:
                    self._transmit(peer, waiting[:1], now)
                self._relay.offer_relayed(peer, now)
                ctx.wake.set()

    def peer_down(self, peer: bytes) -> None:
        """The session closed: nothing is in flight any more. What it carried and was not
        acknowledged is tried again after the first retry delay (~1 s), by dialling, not
        only when the peer next dials us or the 30 s backstop passes: a session the peer
        closes for being idle can cross a message just sent."""
        ctx = self._ctx
        window = self._in_flight.pop(peer, None)
        self._backlog.pop(peer, None)
        if not window:
            return
        soon = now_ms() + retry_delay_ms(0, ctx.rng)
        with ctx.store.transaction():
            for item in ctx.store.outbox(peer):
                if item.msg_id in window and item.next_attempt_at > soon:
                    ctx.store.reschedule(item.msg_id, attempts=item.attempts, next_attempt_at=soon)
        ctx.wake.set()  # an earlier deadline for the runner

    # ------------------------------------------------------------------ retries, receipts

    def retry_due(self, now: int) -> None:
        """Send again what is due: over the link where the peer is reachable, else
        through relays (and one direct try per pass)."""
        ctx = self._ctx
        due = ctx.store.outbox_due(now)
        by_peer: dict[bytes, list[OutboxItem]] = defaultdict(list)
        for item in due:
            by_peer[item.peer].append(item)
        for peer, items in by_peer.items():
            if ctx.reachable(peer):
                self._transmit(peer, items, now, from_backlog=True)
                continue
            if ctx.peers.is_online(peer) and (first := self._unsettled(items[0])) is not None:
                # Online but our dials fail: relays carry it, and one send per pass lets
                # the link try a direct path again (its own backoff paces the dials).
                ctx.links.send(peer, _wire(first))
            for item in items:
                attempts = item.attempts + 1
                wanted = ctx.settings.relay.copies - item.relays
                if wanted > 0:
                    stored = ctx.store.message(item.msg_id)
                    if stored is not None:
                        self._relay.deposit(
                            peer, _wire(stored), now, msg_id=item.msg_id, wanted=wanted
                        )
                ctx.store.reschedule(
                    item.msg_id,
                    attempts=attempts,
                    next_attempt_at=now + retry_delay_ms(attempts, ctx.rng),
                )

    def send_receipts(
        self, peer: bytes, state: MessageState, ids: list[bytes], *, nudge: bool = False
    ) -> None:
        """Tell ``peer`` the ``state`` of its messages ``ids``; ``nudge``: even with no ids
        (an empty receipt asks the peer to send again what it holds for us)."""
        ctx = self._ctx
        chunks = [ids[i : i + MAX_RECEIPT_IDS] for i in range(0, len(ids), MAX_RECEIPT_IDS)]
        if nudge and not chunks:
            chunks = [[]]
        for chunk in chunks:
            receipt = ChatReceipt(state.value, tuple(chunk))
            if ctx.reachable(peer):
                ctx.links.send(peer, receipt)
            else:  # the sender is away: the receipt travels like a message, sealed
                self._relay.deposit(
                    peer, receipt, now_ms(), msg_id=None, wanted=ctx.settings.relay.copies
                )


def _wire(stored: StoredMessage) -> ChatMessage:
    return ChatMessage(stored.msg_id, stored.clock, stored.sent_at, stored.text, stored.action)


def _attempts(item: StoredMessage | OutboxItem) -> int:
    return item.attempts if isinstance(item, OutboxItem) else 0
