"""The system conversation as the app uses it: what becomes a line (command output,
toasts, network notes, who came and went), and opening, searching and closing its pane.

The lines themselves live in :class:`~p2pchat.ui.system_log.SystemLog` (bounded, pure);
the pane that draws them is :class:`~p2pchat.ui.widgets.system_pane.SystemPane`. The
app keeps one :class:`SystemConsole` and calls it from small hooks: every toast
(:meth:`toasted`), every node event before the app applies it (:meth:`node_event`),
and opening another conversation (:meth:`hide`). Toasts stay for what needs attention;
a command's output is written here, with at most a short toast pointing here when the
pane is not open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.css.query import NoMatches
from textual.notifications import SeverityLevel

from p2pchat.chat.names import shown_name
from p2pchat.identity import decode_peer_id, encode_peer_id
from p2pchat.node.events import (
    DiscoveryNote,
    LinkLocalPresence,
    Listening,
    NodeEvent,
    PeerConnected,
    PeerDisconnected,
    Presence,
)
from p2pchat.ui.people import PRESENCE_WORDS, counted
from p2pchat.ui.system_log import Kind, SystemLine, SystemLog
from p2pchat.ui.widgets.conversation import ConversationView
from p2pchat.ui.widgets.system_pane import SystemPane

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

SYSTEM_KEY = "F2"
"""The key that opens the system conversation (shown in hints)."""

_KINDS: dict[str, Kind] = {"error": Kind.ERROR, "warning": Kind.WARNING}


class SystemConsole:
    def __init__(self, app: ChatApp) -> None:
        self._app = app
        self.log = SystemLog()
        self.is_open = False
        self.search = ""

    # ------------------------------------------------------------------ writing

    def say(self, kind: Kind, text: str) -> None:
        self._added(self.log.add(kind, text))

    def listing(self, title: str, rows: Iterable[str]) -> None:
        """A command's output: written here; a short toast points here if the pane is
        not open (the toast covers nothing for long)."""
        self._added(self.log.add_listing(title, rows))
        self.point_here(title)

    def code(self, title: str, code: str, hint: str, *, short: str) -> None:
        """Something to copy (an invite code): a title, the code alone on its own line
        (never wrapped), then how to take it; ``short`` names it in the toast."""
        self._added(self.log.add(Kind.NOTE, title))
        self._added(self.log.add(Kind.CODE, code))
        self._added(self.log.add(Kind.OUTPUT, hint))
        self.point_here(short)

    def point_here(self, title: str) -> None:
        if not self.is_open:
            self._app.notify(f"{title}: see system ({SYSTEM_KEY})", timeout=4, system=False)

    def toasted(self, message: str, title: str, severity: SeverityLevel) -> None:
        """A toast was shown: it is a line here too (a toast vanishes). Toasts are also
        raised from inside trio, outside Textual's context: the line is added from the
        app's message loop."""
        text = f"{title}: {message}" if title else message
        self._app.call_later(self.say, _KINDS.get(severity, Kind.NOTE), text)

    def _added(self, lines: list[SystemLine]) -> None:
        app = self._app
        with _closing_quietly():
            app.query_one(SystemPane).append(lines)
            if self.is_open:
                self.log.read()
                app.update_title()  # its count
        if any(line.is_error for line in lines) and not self.is_open:
            app.schedule_refresh()  # the sidebar's unread mark

    # ------------------------------------------------------------------ node events

    def node_event(self, event: NodeEvent) -> None:
        """The lines a node event makes, if any; called before the app applies it (the
        app's view of who was online is still the one before)."""
        app = self._app
        if isinstance(event, DiscoveryNote):
            self.say(Kind.NOTE, self._named(event))
        elif isinstance(event, PeerConnected):
            self.say(Kind.CAME, f"connected to {app.name_of(event.peer)} ({event.address})")
        elif isinstance(event, PeerDisconnected):
            self.say(Kind.WENT, f"disconnected from {app.name_of(event.peer)} ({event.reason})")
        elif isinstance(event, Listening):
            self.say(Kind.NOTE, "listening on " + ", ".join(event.addresses))
        elif isinstance(event, Presence) and not event.is_self and event.proven:
            self._presence(event)
        elif isinstance(event, LinkLocalPresence):
            self._link_local_presence(event)

    def _named(self, note: DiscoveryNote) -> str:
        """The note's text, with the name we know for its peer where its record gave
        none (a contact's private record carries no nick, §10.2)."""
        peer_id = note.fields.get("id")
        if "(no nick)" not in note.text or not isinstance(peer_id, str):
            return note.text
        try:
            name = self._app.name_of(decode_peer_id(peer_id))
        except ValueError:
            return note.text
        if name == shown_name(peer_id, ""):
            return note.text  # only its id: the line shows that already
        return note.text.replace("(no nick)", name, 1)

    def _link_local_presence(self, event: LinkLocalPresence) -> None:
        if event.gone:
            self.say(Kind.WENT, f"{event.jid} (XMPP) went offline")
            return
        text = f" — {event.message}" if event.message else ""
        word = PRESENCE_WORDS.get(event.status.value, event.status.value)
        self.say(Kind.CAME, f"{event.name} ({event.jid}, XMPP, not encrypted) is {word}{text}")

    def _presence(self, event: Presence) -> None:
        before = self._app.seen.get(encode_peer_id(event.peer))
        was_online = before is not None and before.status != "offline"
        online = event.status != "offline" and event.state != "forgotten"
        name = self._app.name_of(event.peer) if before is None else before.nick
        name = name or self._app.name_of(event.peer)
        if online and not was_online:
            self.say(Kind.CAME, f"{event.nick or name} is online")
        elif was_online and not online:
            self.say(Kind.WENT, f"{name} went offline")

    # ------------------------------------------------------------------ the pane

    def show(self) -> None:
        """Put the pane in place of the conversation (the app has closed that)."""
        app = self._app
        self.is_open = True
        self.log.read()
        view, pane = app.query_one(ConversationView), app.query_one(SystemPane)
        view.display, pane.display = False, True
        pane.show(self.log.find(self.search), self.search)
        # The toasts on screen are lines here now ("Invite code: see system (F2)" among
        # them); left up, they would cover the very lines they point to.
        app.clear_notifications()

    def hide(self) -> None:
        """Back to the conversation pane (another conversation is being opened)."""
        if not self.is_open:
            return
        self.is_open = False
        app = self._app
        with _closing_quietly():
            app.query_one(ConversationView).display = True
            app.query_one(SystemPane).display = False

    def find(self, text: str) -> int:
        """Show only the lines that contain ``text`` ("" shows all); how many match."""
        self.search = text
        if self.is_open:
            self._app.query_one(SystemPane).show(self.log.find(text), text)
        return len(self.log.find(text))

    def title(self) -> str:
        count = len(self.log)
        if self.search:
            found = len(self.log.find(self.search))
            return (
                f"system · {found} of {count} lines contain “{self.search}” · /find alone shows all"
            )
        return f"system · {counted(count, 'line')} · /find TEXT searches them"


def _closing_quietly() -> contextlib.suppress:
    """NoMatches: the app is closing (its widgets are gone); nothing to draw on."""
    return contextlib.suppress(NoMatches)
