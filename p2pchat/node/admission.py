"""Whom the node talks to: the handshake policy (blocked peers, strangers in
contacts-only mode) and who counts as a contact, asked by the links, the mesh and the
dialling of discovered and remembered peers."""

from __future__ import annotations

import logging
import time

from p2pchat.chat.gate import Relation
from p2pchat.identity import decode_peer_id, encode_peer_id
from p2pchat.node.chat import CONTACTS_ONLY, CONTACTS_ONLY_REASON, ChatService
from p2pchat.ratelimit import LogLimiter
from p2pchat.session.core import Refusal

log = logging.getLogger("p2pchat.node")


class Admission:
    """The chat service decides (contacts, blocks); a node without a store has no
    contacts, so in contacts-only mode it admits nobody."""

    def __init__(self, chat: ChatService | None, *, contacts_only: bool) -> None:
        self._chat = chat
        self._contacts_only = contacts_only
        self._store_log = LogLimiter(60.0)

    def authorize(self, peer: bytes, invite: bytes) -> Refusal | None:
        chat = self._chat
        if chat is not None:
            return chat.authorize(peer, invite)
        if self._contacts_only:  # no store, so no contacts: nobody
            return Refusal(CONTACTS_ONLY, CONTACTS_ONLY_REASON)
        return None

    def authorize_chosen(self, peer: bytes, invite: bytes) -> Refusal | None:
        """For a peer we chose, not a stranger: the dial of an invite code (the code
        names the peer, and the handshake checked it is that identity), or a session
        under one of our private networks (the peer holds its key: it is taken as a
        contact is, in contacts-only mode too, docs/protocol.md §17.3). Only a block
        stands in the way."""
        chat = self._chat
        return None if chat is None else chat.authorize(peer, invite, wanted=True)

    def wanted(self, peer_id: str) -> bool:
        return self.is_contact(decode_peer_id(peer_id))

    def is_contact(self, peer: bytes) -> bool:
        """For the mesh, which asks about the records it admits and evicts. A store
        that cannot answer makes the peer a stranger (the safe side), not a crash."""
        chat = self._chat
        if chat is None:
            return False
        try:
            return chat.relation(peer) is Relation.CONTACT
        except Exception:
            if self._store_log.allow("relation", time.monotonic()) is not None:
                log.exception("mesh: cannot tell whether %s is a contact", encode_peer_id(peer))
            return False
