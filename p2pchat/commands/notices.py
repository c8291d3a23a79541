"""Local notices: the lines a conversation shows about what happened in it (a room's
members, its name, a contact's new nick), kept in the store; and noticing a contact's
new nick. Work on the store alone; nothing is sent."""

from __future__ import annotations

from p2pchat.commands.base import CommandContext, readable_errors
from p2pchat.store import Notice
from p2pchat.wallclock import now_ms

NOTICES_KEPT = 200
"""Notices kept per conversation (the oldest go first)."""
NOTICES_KEPT_IN_ALL = 20_000
"""Notices kept in all (rooms left long ago keep theirs until then)."""


class NoticeCommands(CommandContext):
    def add_notice(self, conversation: bytes, text: str) -> Notice:
        """A line for ``conversation`` (a peer's key or a room id), after its newest
        message."""
        with readable_errors():
            return self._store.add_notice(conversation, text, now=now_ms(), keep=NOTICES_KEPT,
                                          keep_all=NOTICES_KEPT_IN_ALL)  # fmt: skip

    def notices(
        self, conversation: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[Notice]:
        """The notices of ``conversation`` placed from ``from_clock`` up to (not
        including) ``below_clock``, in order."""
        with readable_errors():
            return self._store.notices(conversation, from_clock=from_clock,
                                       below_clock=below_clock)  # fmt: skip

    def remember_nick(self, peer: bytes, nick: str) -> str | None:
        """A contact announces ``nick``: remember it; the nick it had before if that was
        another (the contact took a new nick), else None."""
        if not nick:
            return None
        with readable_errors():
            contact = self._store.contact(peer)
            if contact is None or not contact.is_contact or contact.nick == nick:
                return None
            self._store.set_nick(peer, nick)
        return contact.nick or None
