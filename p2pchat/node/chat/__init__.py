"""The chat service: the chat rules of :mod:`p2pchat.chat` around the store and the links.

Durability comes from two orders that are never broken:

- a message is committed to the outbox *before* it is handed to the network, and it
  stays there until the recipient acknowledges it;
- an incoming message is committed *before* it is acknowledged.

Incoming traffic is processed in batches (everything that arrived since the last
pass) inside one transaction, so a burst costs one commit, not one per message.
Messages sent over a live session are resent when the session is replaced; a timer
retries the rest with backoff, and hands messages for absent recipients to relays.

The parts: :mod:`.service` (the commands, session hooks and the runner),
:mod:`.inbox` (what arrives), :mod:`.outbox` (what we send), :mod:`.relaying`
(what relays carry, ours and others'), :mod:`.context` (what they share) and
:mod:`.settings` (limits and settings). Import from this package, not its modules.
"""

from p2pchat.node.chat.inbox import Inbox, input_weight
from p2pchat.node.chat.outbox import Outbox
from p2pchat.node.chat.relaying import Relay
from p2pchat.node.chat.service import ChatService, new_invite
from p2pchat.node.chat.settings import (
    CHAT_MESSAGES,
    CONTACTS_ONLY,
    CONTACTS_ONLY_REASON,
    LINK_RETRY_MS,
    MAX_INPUT_BYTES,
    NUDGE_BURST,
    NUDGE_RATE,
    WINDOW,
    ChatSettings,
)

__all__ = [
    "CHAT_MESSAGES",
    "CONTACTS_ONLY",
    "CONTACTS_ONLY_REASON",
    "LINK_RETRY_MS",
    "MAX_INPUT_BYTES",
    "NUDGE_BURST",
    "NUDGE_RATE",
    "WINDOW",
    "ChatService",
    "ChatSettings",
    "Inbox",
    "Outbox",
    "Relay",
    "input_weight",
    "new_invite",
]
