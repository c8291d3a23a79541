"""The JSON-lines API's side of XMPP link-local peers (docs/api.md, docs/protocol.md §18):
what ``send``, ``history``, ``accept``, ``block``, ``unblock`` and ``peers`` do when the
peer is a ``user@machine`` rather than a p2pchat peer id.

Such a peer has no key: its messages go unencrypted through the node's bridge, and its
chats and standing live in the bridge's
:class:`~p2pchat.node.xmpp.chats.LinkLocalChats`, not in the command layer. Kept apart
from :mod:`p2pchat.api.handler` so that the handler's commands read as the p2pchat
case, with one branch each that hands a ``user@machine`` to :class:`LinkLocalApi`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p2pchat.api.protocol import ApiError, int_arg
from p2pchat.node.node import Node
from p2pchat.node.xmpp.bridge import PROTOCOL, XmppBridge, XmppError
from p2pchat.node.xmpp.chats import LinkLocalChats
from p2pchat.store.link_local import LinkLocalRow

OFF = "XMPP link-local is off: start with --xmpp-link-local"


class LinkLocalApi:
    """The link-local halves of the handler's commands, on the node ``node()`` gives
    (None: no node runs, so no bridge either)."""

    def __init__(self, node: Callable[[], Node | None]) -> None:
        self._node = node

    async def send(self, jid: str, text: str) -> dict[str, Any]:
        """A message to an XMPP link-local peer (docs/api.md): unencrypted, unstored
        yet, and sent or refused at once (XEP-0174 has no receipts)."""
        bridge = self._bridge()
        if bridge is None:
            raise ApiError(OFF)
        try:
            await bridge.send(jid, text)
        except XmppError as error:
            raise ApiError(str(error)) from None
        return {"to": jid, "state": "sent", "protocol": PROTOCOL, "encrypted": False}

    def history(self, jid: str, command: dict[str, Any]) -> dict[str, Any]:
        """An XMPP link-local chat (docs/api.md): ``before`` is a row ``id``."""
        limit = int_arg(command, "limit", 50, 1, 10_000)
        before = int_arg(command, "before", 2**62, 1, 2**62) if "before" in command else None
        found = self._chats().history(jid, limit=limit, before=before)
        return {"with": jid, "protocol": PROTOCOL, "encrypted": False,
                "messages": [link_local_row_json(row) for row in found]}  # fmt: skip

    def accept(self, jid: str) -> dict[str, Any]:
        self._chats().accept(jid)
        return {"contact": {"id": jid, "protocol": PROTOCOL, "encrypted": False}}

    def block(self, jid: str) -> dict[str, Any]:
        self._chats().block(jid)
        return {"id": jid, "blocked": True, "protocol": PROTOCOL}

    def unblock(self, jid: str) -> dict[str, Any]:
        self._chats().accept(jid)  # unblocked: a contact, as before it was blocked
        return {"id": jid, "blocked": False, "protocol": PROTOCOL}

    def peers(self) -> list[dict[str, Any]]:
        """The link-local peers the bridge shows (none while it is off)."""
        bridge = self._bridge()
        return [peer.listed() for peer in bridge.shown.values()] if bridge else []

    def _bridge(self) -> XmppBridge | None:
        node = self._node()
        return node.xmpp if node is not None else None

    def _chats(self) -> LinkLocalChats:
        bridge = self._bridge()
        if bridge is None or bridge.chats is None:
            raise ApiError(OFF)
        return bridge.chats


def jid_arg(command: dict[str, Any], name: str) -> str | None:
    """An XMPP link-local peer's ``user@machine`` if the argument names one (a peer id
    never holds "@"), else None."""
    value = command.get(name)
    return value if isinstance(value, str) and "@" in value else None


def link_local_row_json(row: LinkLocalRow) -> dict[str, Any]:
    return {"id": row.row_id, "outgoing": row.outgoing, "text": row.text, "time": row.at,
            "encrypted": False}  # fmt: skip
