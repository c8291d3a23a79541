"""XMPP link-local peers in the chat window (docs/protocol.md §18): Pidgin, finch and
Adium users nearby, in the sidebar and in a conversation of their own.

Nothing about them is private, and the window never lets that be forgotten: their
sidebar entries say "XMPP · not encrypted", the open chat's title says that anyone on
the network can read it, and every message carries a "not encrypted" mark. They have
no key, so nothing is verified, offered as a file or invited to a room.

Who we stand with and the messages come from the store (so contacts and their chats
show before the node is up); presence comes from the node's events; changes (send,
accept, block) go through the bridge inside trio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text

from p2pchat.chat.rules import text_problem
from p2pchat.commands import (
    CommandError,
    Commands,
    FileTransfer,
    LinkLocalRow,
    Notice,
    RoomMessage,
    StoredMessage,
)
from p2pchat.node.events import LinkLocalMessage, LinkLocalPresence, NodeEvent
from p2pchat.node.xmpp.bridge import XmppBridge, XmppError, presence_of
from p2pchat.node.xmpp.chats import LinkLocalChats
from p2pchat.ui.notices import Notices
from p2pchat.ui.people import PRESENCE_MARKS, PRESENCE_WORDS, XmppLine
from p2pchat.ui.widgets.conversation import UNENCRYPTED, ConversationView

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

KEY_PREFIX = b"xmpp:"
"""Before a ``user@machine`` in the key the conversation pane knows the chat by."""
NOT_PRIVATE = "XMPP · NOT ENCRYPTED: anyone on the network can read it"
NO_KEY = "{jid} uses XMPP: it has no key, so there is nothing to verify and no encryption"


def jid_key(jid: str) -> bytes:
    return KEY_PREFIX + jid.encode()


def row_as_stored(row: LinkLocalRow, me: bytes) -> StoredMessage:
    """A stored XMPP message in the shape the pane draws: ordered by its row, with no
    delivery mark but the unencrypted one (XEP-0174 has no receipts)."""
    key = jid_key(row.jid)
    return StoredMessage(row.row_id, row.row_id.to_bytes(8, "big"), key,
                         me if row.outgoing else key, row.outgoing, row.row_id, row.at,
                         row.at, row.text, UNENCRYPTED)  # fmt: skip


class XmppPages:
    """One XMPP chat's pages for the conversation pane (its ``Pages``): messages only,
    no notices, files or rooms."""

    def __init__(self, commands: Commands, jid: str, me: bytes) -> None:
        self._commands = commands
        self._jid = jid
        self._me = me

    def history(
        self, peer: bytes, *, limit: int = 50, before: bytes | None = None
    ) -> list[StoredMessage]:
        row = None if before is None else int.from_bytes(before, "big")
        rows = self._commands.link_local_history(self._jid, limit=limit, before=row)
        return [row_as_stored(found, self._me) for found in rows]

    def room_history(
        self, room_id: bytes, *, limit: int = 50, before: bytes | None = None
    ) -> list[RoomMessage]:
        return []

    def notices(
        self, conversation: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[Notice]:
        return []

    def placed_transfers(
        self, peer: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        return []

    def room_transfers(
        self, room_id: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        return []


class XmppDesk:
    def __init__(self, app: ChatApp, notices: Notices) -> None:
        self._app = app
        self._notices = notices
        self._seen: dict[str, LinkLocalPresence] = {}  # online peers, by user@machine
        self._unread: dict[str, int] = {}  # since the window opened (XEP-0174: no reads)
        self.current: str | None = None  # the open chat's user@machine

    # ---------------------------------------------------------------- what is shown

    def lines(self) -> list[XmppLine]:
        """Every XMPP peer the sidebar lists: those online and those we stand with."""
        try:
            standings = self._app.commands.link_local_people()
        except CommandError:
            standings = {}
        lines = []
        for jid in sorted(set(standings) | set(self._seen)):
            seen = self._seen.get(jid)
            lines.append(XmppLine(
                jid, seen.status.value if seen else "offline", seen.message if seen else "",
                standings.get(jid, ""), self._unread.get(jid, 0)))  # fmt: skip
        return lines

    def title(self, jid: str) -> Text:
        """The open chat's title: who, that it is not private (before anything a
        narrow window would cut), their status, and whether they wait for an answer."""
        seen = self._seen.get(jid)
        status = seen.status.value if seen else "offline"
        parts = [f"{PRESENCE_MARKS.get(status, '○')} {PRESENCE_WORDS.get(status, status)}"]
        if seen is not None and seen.message:
            parts.append(f'"{seen.message}"')
        standing = self._standing(jid)
        if standing == "request":
            parts.append("wants to talk: writing accepts, or /block")
        elif standing == "blocked":
            parts.append("blocked: /unblock to hear from them")
        # Plain text: a peer's jid and note are never markup.
        return Text.assemble(jid, " · ", (NOT_PRIVATE, "bold yellow"), " · ", " · ".join(parts))

    def name_of(self, key: bytes) -> str:
        """A name for the pane's name column: ours, or their ``user@machine``."""
        if key.startswith(KEY_PREFIX):
            return key[len(KEY_PREFIX) :].decode(errors="replace")
        return self._app.name_of(key)

    # ---------------------------------------------------------------- events

    def node_event(self, event: NodeEvent) -> None:
        if isinstance(event, LinkLocalPresence):
            if event.gone:
                self._seen.pop(event.jid, None)
            else:
                self._seen[event.jid] = event
            self._app.schedule_refresh()
            if event.jid == self.current:
                self._app.update_title()
        elif isinstance(event, LinkLocalMessage):
            self._message(event)

    def _message(self, event: LinkLocalMessage) -> None:
        app = self._app
        if event.jid == self.current and event.row_id:
            row = LinkLocalRow(event.row_id, event.jid, False, event.text, event.time, "")
            app.query_one(ConversationView).add(row_as_stored(row, app.me))
            if event.request:
                app.update_title()
        else:
            self._unread[event.jid] = self._unread.get(event.jid, 0) + 1
            title = f"{event.jid} · XMPP, not encrypted"
            if event.request:
                title += " · wants to talk"
            self._notices.room_message(jid_key(event.jid), title, event.text)
            self._notices.bell()
        app.schedule_refresh()

    def resync(self) -> None:
        """Who is online, from the bridge itself (events about them were dropped)."""
        node = self._app.node
        bridge = node.xmpp if node is not None else None
        shown = bridge.shown if bridge is not None else {}
        self._seen = {jid: presence_of(peer) for jid, peer in shown.items()}

    # ---------------------------------------------------------------- actions

    def open(self, jid: str) -> None:
        """Show the chat with ``jid`` in the conversation pane."""
        app = self._app
        self.current = jid
        self._unread.pop(jid, None)
        pages = XmppPages(app.commands, jid, app.me)
        app.query_one(ConversationView).show(pages, app.me, jid_key(jid), self.name_of,
                                             unencrypted=True)  # fmt: skip

    def send(self, text: str) -> bool:
        """Send ``text`` to the open chat; False, after saying why, if it cannot go."""
        app = self._app
        jid = self.current
        assert jid is not None
        problem = text_problem(text)
        if problem:
            app.notify(f"Not sent: {problem}.", severity="warning")
            return False
        bridge = self.require_bridge()
        app.spawn_in_node(self._send, bridge, jid, text)
        return True

    async def _send(self, bridge: XmppBridge, jid: str, text: str) -> None:
        app = self._app
        try:
            row = await bridge.send(jid, text)
        except XmppError as error:
            app.notify(f"{error}. ↑ in the empty composer brings the text back.",
                       title="Not sent", severity="error")  # fmt: skip
            return
        if row is not None:
            app.call_later(self._sent, row)

    def _sent(self, row: LinkLocalRow) -> None:
        app = self._app
        if row.jid == self.current:
            app.query_one(ConversationView).add(row_as_stored(row, app.me))
        app.update_title()  # replying accepted a request
        app.schedule_refresh()

    def accept(self, jid: str) -> None:
        self._change(jid, LinkLocalChats.accept, f"{jid} is now a contact (XMPP, not encrypted)")

    def set_blocked(self, jid: str, blocked: bool) -> None:
        if blocked:
            self._change(jid, LinkLocalChats.block,
                         f"{jid} is blocked: nothing from them is shown or kept")  # fmt: skip
        else:
            # Unblocked: a contact again, as before it was blocked.
            self._change(jid, LinkLocalChats.accept, f"{jid} is no longer blocked")

    def _change(self, jid: str, change: Callable[[LinkLocalChats, str], None], done: str) -> None:
        chats = self.require_bridge().chats
        if chats is None:
            raise CommandError("this node keeps no messages: XMPP peers cannot be changed")
        app = self._app

        def run() -> None:
            change(chats, jid)
            app.call_later(self._changed, jid, done)

        app.call_in_node(run)

    def _changed(self, jid: str, done: str) -> None:
        app = self._app
        app.notify(done)
        if jid == self.current:
            self.open(jid)  # blocking forgets what a stranger sent
            app.update_title()
        app.schedule_refresh()

    def require_bridge(self) -> XmppBridge:
        app = self._app
        app.require_node()
        node = app.node
        bridge = node.xmpp if node is not None else None
        if bridge is None:
            raise CommandError("XMPP link-local is off: start p2pchat with --xmpp-link-local")
        return bridge

    def _standing(self, jid: str) -> str:
        try:
            return self._app.commands.link_local_people().get(jid, "")
        except CommandError:
            return ""
