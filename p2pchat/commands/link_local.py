"""Reads the chat window needs about XMPP link-local peers (docs/protocol.md §18): who
we stand with and the messages, from the store, so that contacts and their chats show
before the node (and its bridge) is up. Changes go through the bridge's
:class:`~p2pchat.node.xmpp.chats.LinkLocalChats`, inside the node."""

from __future__ import annotations

from p2pchat.commands.base import CommandContext, readable_errors
from p2pchat.store.link_local import LinkLocalRow


class LinkLocalCommands(CommandContext):
    def link_local_people(self) -> dict[str, str]:
        """Each ``user@machine`` we stand with: "contact", "request" or "blocked"."""
        with readable_errors():
            return self._store.link_local_standings()

    def link_local_history(
        self, jid: str, *, limit: int = 50, before: int | None = None
    ) -> list[LinkLocalRow]:
        """The newest ``limit`` messages with ``jid`` (before row ``before``), oldest
        first."""
        with readable_errors():
            return self._store.link_local_history(jid, limit=limit, before=before)
