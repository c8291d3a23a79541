"""The Textual messages the chat window posts to itself.

Work that happens inside trio (the node's life, its events, a sent message) reaches the
window only as one of these messages, handled on Textual's side by :class:`ChatApp`'s
``on_…`` methods; keeping them in one module gives the app and its helpers one shared
vocabulary and lets tests and benches post node events without reaching into the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from p2pchat.node.events import NodeEvent
from p2pchat.node.node import Node


@dataclass
class NodeUp(Message):
    node: Node


@dataclass
class NodeEventArrived(Message):
    event: NodeEvent


class NodeEventsWaiting(Message):
    """Node events wait in the bridge (at most one of these is queued at a time)."""


@dataclass
class NodeFailed(Message):
    text: str


@dataclass
class Sent(Message):
    peer_id: str
    msg_id: bytes
