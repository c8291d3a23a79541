"""The contact-request gate for XMPP link-local peers, and their messages kept
(store/link_local.py). A ``user@machine`` is never a contact by itself: its first
messages wait as a request until our user answers or accepts, as a p2pchat stranger's
do (docs/protocol.md §13.6); a blocked one is dropped unheard. What strangers can make
us keep is bounded: MAX_REQUESTS peers waiting, MAX_REQUEST_MESSAGES each."""

from __future__ import annotations

import logging
from collections.abc import Callable

from p2pchat.node.events import LinkLocalMessage, NodeEvent
from p2pchat.store import Store
from p2pchat.store.link_local import BLOCKED, CONTACT, REQUEST, LinkLocalRow
from p2pchat.wallclock import now_ms

log = logging.getLogger("p2pchat.xmpp")

MAX_REQUESTS = 32  # link-local peers whose messages wait for our user's say
MAX_REQUEST_MESSAGES = 20  # messages kept from one of them until then


class LinkLocalChats:
    def __init__(self, store: Store, emit: Callable[[NodeEvent], None]) -> None:
        self._store = store
        self._emit = emit

    def received(self, jid: str, text: str, address: str) -> None:
        """A message came from ``jid`` at ``address``: kept and shown, or held back."""
        standing = self._store.link_local_standing(jid)
        if standing == BLOCKED:
            return
        now = now_ms()
        if standing != CONTACT:
            if standing is None and len(self._store.link_local_peers(REQUEST)) >= MAX_REQUESTS:
                log.debug("dropped a message from %s: %d requests wait", jid, MAX_REQUESTS)
                return
            if self._store.link_local_count(jid) >= MAX_REQUEST_MESSAGES:
                log.debug("dropped a message from %s: its request holds %d already", jid,
                          MAX_REQUEST_MESSAGES)  # fmt: skip
                return
            self._store.set_link_local_standing(jid, REQUEST, address=address, now=now)
        row = self._store.add_link_local_message(
            jid, outgoing=False, text=text, at=now, address=address
        )
        self._emit(LinkLocalMessage(jid, text, now, request=standing != CONTACT,
                                    row_id=row.row_id))  # fmt: skip

    def sent(self, jid: str, text: str) -> LinkLocalRow:
        """Our user wrote to ``jid``: a contact from now on (replying accepts)."""
        now = now_ms()
        self._store.set_link_local_standing(jid, CONTACT, address="", now=now)
        return self._store.add_link_local_message(jid, outgoing=True, text=text, at=now)

    def accept(self, jid: str) -> None:
        self._store.set_link_local_standing(jid, CONTACT, address="", now=now_ms())

    def block(self, jid: str) -> None:
        """Nothing more from ``jid``, and what it sent while it was no contact goes."""
        with self._store.transaction():
            if self._store.link_local_standing(jid) != CONTACT:
                self._store.forget_link_local_messages(jid)
            self._store.set_link_local_standing(jid, BLOCKED, address="", now=now_ms())

    def history(self, jid: str, *, limit: int, before: int | None) -> list[LinkLocalRow]:
        return self._store.link_local_history(jid, limit=limit, before=before)

    def blocked(self, jid: str) -> bool:
        return self._store.link_local_standing(jid) == BLOCKED
