"""Direct messages: sending (and waiting for delivery), history, read marks.

Sending needs a node; reading the history, the conversations and marking them read
work on the store alone (without a node the read receipts are not sent).
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from p2pchat.chat.rules import SETTLED_STATES, MessageState
from p2pchat.commands.base import CommandContext, CommandError, readable_errors
from p2pchat.identity import Identity
from p2pchat.node.events import NodeEvent, Receipt
from p2pchat.node.node import Node
from p2pchat.store import Conversation, Store, StoredMessage
from p2pchat.wallclock import now_ms


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where a sent message stands: its state and, while it waits in the outbox, how
    many relays hold a sealed copy for the recipient."""

    message: StoredMessage
    state: str
    relays: int


class MessageCommands(CommandContext):
    def __init__(self, identity: Identity, store: Store, node: Node | None = None) -> None:
        super().__init__(identity, store, node)
        self._waiting: dict[bytes, trio.Event] = {}  # sent messages, by id, until delivered

    def observe(self, event: NodeEvent) -> None:
        """Every node event passes here: it wakes :meth:`delivery` calls waiting for it."""
        if isinstance(event, Receipt) and event.state in SETTLED_STATES:
            waiter = self._waiting.pop(event.msg_id, None)
            if waiter is not None:
                waiter.set()

    def send(self, peer: bytes, text: str, *, action: bool = False) -> StoredMessage:
        """Store a message for ``peer`` and hand it to the network (writing to a stranger
        makes them a contact). ``action``: a /me line, something you do."""
        chat = self._chat()
        with readable_errors():
            return chat.send_text(peer, text, action=action)

    def send_many(self, items: list[tuple[bytes, str, bool]]) -> list[StoredMessage | CommandError]:
        """Several messages (peer, text, action) stored in one commit, then handed to the
        network; an item the chat rules refuse is its CommandError in the result. A
        store failure raises a CommandError for them all: none is stored."""
        chat = self._chat()
        with readable_errors():
            results = chat.send_texts(items)
        return [CommandError(str(r)) if isinstance(r, ValueError) else r for r in results]

    async def delivery(self, message: StoredMessage, wait: float = 0) -> Delivery:
        """How ``message`` stands, after waiting up to ``wait`` seconds for it to be
        delivered (node events must reach :meth:`observe` meanwhile). ``message`` is
        what :meth:`send` returned, with no await in between."""
        if wait:
            waiter = self._waiting[message.msg_id] = trio.Event()
            with trio.move_on_after(wait):
                await waiter.wait()
            self._waiting.pop(message.msg_id, None)
        elif message.state == MessageState.SENT:
            # Just handed to a live session, and nothing ran since (no await): that is
            # how it stands, and no relay holds it. No need to read it back.
            return Delivery(message, message.state, 0)
        with readable_errors():
            now = self._store.message(message.msg_id) or message
            # One row, not the peer's whole outbox: a bot that keeps hundreds of
            # messages in flight pays for this on every send.
            waiting = self._store.outbox_item(message.msg_id)
        return Delivery(message, now.state, waiting.relays if waiting else 0)

    def history(
        self, peer: bytes, *, limit: int = 50, before: bytes | None = None
    ) -> list[StoredMessage]:
        """The conversation with ``peer``, oldest first: the last ``limit`` messages, or
        the ``limit`` before the message ``before``."""
        with readable_errors():
            position = None
            if before is not None:
                anchor = self._store.message(before)
                if anchor is None or anchor.peer != peer:
                    raise CommandError('"before": no such message in this conversation')
                position = (anchor.clock, anchor.msg_id)
            return self._store.history(peer, limit=limit, before=position)

    def message(self, msg_id: bytes) -> StoredMessage | None:
        with readable_errors():
            return self._store.message(msg_id)

    def conversations(self) -> list[Conversation]:
        """Every conversation with its last message and unread count."""
        with readable_errors():
            return self._store.conversations()

    def mark_read(self, peer: bytes) -> int:
        """Mark the conversation read (telling the sender, if a node runs); how many
        messages were unread."""
        chat = self._running_chat()
        with readable_errors():
            if chat is not None:
                return chat.mark_read(peer)
            unread = self._store.unread(peer)
            return len(self._store.advance(unread, MessageState.READ, at=now_ms()))
