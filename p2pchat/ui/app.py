"""The Textual app: sidebar, conversation, composer and status bar around one node.

The node runs in trio as a guest on Textual's loop (:mod:`p2pchat.ui.host`). Node
events arrive through a bounded :class:`EventBridge` (a window that falls behind loses
the oldest, says so and redraws from the store); commands go into trio with ``host.call`` /
``host.spawn``. Every action and every read of the store or the node's membership goes
through the command layer (:mod:`p2pchat.commands`); reads are done directly (it is the
same thread), actions inside trio (:meth:`ChatApp.call_in_node`).

Longer than most modules because a Textual App is one class: its layout, its lifecycle
and what each node event changes on screen. What stands alone lives beside it: the bars
(``bars.py``), the slash commands (``slash.py``), the toasts (``notices.py``), the
sidebar's people (``people.py``) and the trio host (``host.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any, ClassVar

import trio
from textual import events
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import Provider
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer, TimerCallback
from textual.widgets import Footer, Static

from p2pchat.api.service import NodeService
from p2pchat.chat.names import shown_name
from p2pchat.commands import CommandError, Commands, RoomRow, StoredMessage
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import ProfileError
from p2pchat.identity import decode_peer_id, encode_peer_id
from p2pchat.node.events import (
    ContactRequest,
    DiscoveryNote,
    DiskRecovered,
    DiskTrouble,
    EventsDropped,
    FileEvent,
    Listening,
    MessageIn,
    NodeEvent,
    PeerConnected,
    PeerDisconnected,
    Presence,
    Receipt,
    RoomChanged,
    RoomGone,
    RoomInvited,
    RoomMessageIn,
    TorState,
)
from p2pchat.node.node import Node, NodeSettings, open_node
from p2pchat.profile import Profile
from p2pchat.ui import bars, slash
from p2pchat.ui.conversation_notices import ConversationNotices
from p2pchat.ui.crash import Crashes
from p2pchat.ui.file_desk import FileDesk
from p2pchat.ui.host import EventBridge, NodeHost
from p2pchat.ui.keys import read_alt_digits_as_alt
from p2pchat.ui.mentions import mentions
from p2pchat.ui.messages import NodeEventArrived, NodeEventsWaiting, NodeFailed, NodeUp, Sent
from p2pchat.ui.notices import Notices, desktop_available
from p2pchat.ui.palette import ChatCommands
from p2pchat.ui.paths import pasted_file
from p2pchat.ui.people import (
    SYSTEM_ID,
    Entry,
    RoomLine,
    Section,
    Seen,
    build_entries,
    hearsay_count,
    is_xmpp_id,
    jump_targets,
    room_network,
    system_entry,
)
from p2pchat.ui.screens.first_run import FirstRun, FirstRunScreen
from p2pchat.ui.screens.help import HelpScreen
from p2pchat.ui.system import SystemConsole
from p2pchat.ui.widgets.composer import Composer
from p2pchat.ui.widgets.conversation import ConversationView
from p2pchat.ui.widgets.members import MemberPanel, refresh_member_panel
from p2pchat.ui.widgets.sidebar import Sidebar
from p2pchat.ui.widgets.system_pane import SystemPane
from p2pchat.ui.xmpp_desk import NO_KEY, XmppDesk

log = logging.getLogger("p2pchat.ui")

NODE_GOODBYE_WAIT = 30.0  # seconds the closing window waits for the node's goodbye


class ChatApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "p2pchat"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = App.COMMANDS | {
        ChatCommands
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        # priority: the composer (a TextArea) has its own ctrl+k; ours wins (ux.md keys)
        Binding("ctrl+k", "command_palette", "Switch", priority=True),
        Binding("ctrl+n", "new_conversation", "New", priority=True),
        Binding("ctrl+v", "verify", "Verify", priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("f3", "members", "Members", show=False, priority=True),
        Binding("f2", "open_system", "System", priority=True),
        Binding("f6", "files", "Files", priority=True),
        Binding("alt+up", "step(-1)", "Previous", show=False),
        Binding("alt+down", "step(1)", "Next", show=False),
        *(Binding(f"alt+{n}", f"jump({n})", show=False, priority=True) for n in range(1, 10)),
        # The composer keeps the focus; the conversation still scrolls.
        Binding("pageup", "scroll_conversation('page_up')", show=False, priority=True),
        Binding("pagedown", "scroll_conversation('page_down')", show=False, priority=True),
        Binding("ctrl+end", "scroll_conversation('scroll_end')", show=False, priority=True),
    ]
    KEYS_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Enter", "send the message"),
        ("Ctrl+J", "new line in the message"),
        ("↑ (empty composer)", "earlier input"),
        ("Tab", "complete a command, a name or a path"),
        ("F6", "files: every transfer, accept, open, cancel"),
        ("Ctrl+K / Ctrl+P", "quick switcher and command palette"),
        ("Alt+↑ / Alt+↓", "previous / next conversation"),
        ("Alt+1 … Alt+9", "open the 1st … 9th conversation or room in the sidebar"),
        ("PageUp / PageDown", "scroll the conversation"),
        ("Ctrl+End", "jump to the newest message"),
        ("Ctrl+N", "new conversation"),
        ("Ctrl+V", "verify the open contact"),
        ("F2", "the system conversation: command output, network notes, errors"),
        ("F3", "show / hide the open room's member list"),
        ("F1", "this help"),
        ("Ctrl+Q", "quit"),
    ]

    def __init__(
        self,
        profile: Profile,
        settings: NodeSettings,
        *,
        host: NodeHost | None = None,
        ask_nick: bool = False,
        desktop_notifications: bool | None = None,
    ) -> None:
        super().__init__()
        read_alt_digits_as_alt()  # Alt+1…9 from Linux terminals and tmux
        assert settings.store is not None, "the UI needs a message store"
        self.profile = profile
        self.settings = settings
        self.commands = Commands(profile.identity, settings.store)
        self.me = profile.identity.public_key
        self._host = host
        self._owns_host = host is None
        self._ask_nick = ask_nick
        # Set to end the node's life: its body returns, so the node leaves the mesh with
        # its tasks still running (a cancelled scope around it would cancel the sending
        # of its own goodbye).
        self._node_stop = trio.Event()
        self._node_started = False  # _run_node began (so it will set _node_stopped)
        self._node_stopped = asyncio.Event()  # _run_node has ended (the goodbye is said)
        self.crashes = Crashes(self)
        self._peer: str | None = None  # the open conversation
        self._room: str | None = None  # or the open room (hex id)
        self._seen: dict[str, Seen] = {}
        self._entries: list[Entry] = []
        # Names of the rooms we have seen, kept after leaving one: its goodbye names it.
        self._room_names: dict[bytes, str] = {}
        self.top_bar = bars.TopBarState()
        self._refresh_pending = False
        self._events = EventBridge[NodeEvent](
            lambda: self.post_message(NodeEventsWaiting()), count=_stands_for
        )
        self._resync_pending = False
        if desktop_notifications is None:
            desktop_notifications = desktop_available()
        self._notices = Notices(self, desktop=desktop_notifications)
        self.system = SystemConsole(self)
        self.xmpp = XmppDesk(self, self._notices)
        self.conversation_notices = ConversationNotices(self)
        self.files = FileDesk(self)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
        system: bool = True,
    ) -> None:
        """Toasts carry names and text from the network: never read them as markup (an
        unbalanced "[/]" would crash the app; "[@click=…]" would add actions).
        ``system``: the toast is a line in the system conversation too."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)
        if system:
            self.system.toasted(message, title, severity)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static(id="topbar")
        with Horizontal(id="columns"):
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                yield Static(id="chat-title")
                yield ConversationView(id="conversation")
                yield SystemPane(id="system")
                yield Composer(complete=self._complete, dropped=_dropped_file, id="composer")
            yield MemberPanel(id="members")
        yield Footer()

    def on_mount(self) -> None:
        view = self.query_one(ConversationView)
        view.files = self.files.transfers
        view.show(self.commands, self.me, None, self.name_of)
        self.refresh_sidebar()
        self.update_title()
        self.update_topbar()
        self.set_interval(1.0, self.update_topbar)
        if self.settings.tor is not None:  # a session moves between Tor and the LAN
            self.set_interval(1.0, self.update_title)
        self.set_interval(1.0, self.files.tick)
        self.query_one(Composer).focus()
        if self._ask_nick:
            screen = FirstRunScreen(
                suggested=self.profile.nick, fingerprint=self.profile.identity.fingerprint
            )
            self.push_screen(screen, self._nick_chosen)
        else:
            self.run_worker(self._start_node(), exclusive=True, group="node")

    def _nick_chosen(self, chosen: FirstRun | None) -> None:
        if chosen:
            try:
                self.profile.set_nick(chosen.nick)
                self.profile.update_config(private_discovery=not chosen.visible)
            except ProfileError as error:  # a full disk: this run uses it, unsaved
                self.notify(f"{error}.", title="Nick not saved", severity="error")
            self.settings.nick = self.profile.nick
            self.settings.private_discovery = not chosen.visible
        self.update_topbar()
        self.run_worker(self._start_node(), exclusive=True, group="node")

    async def _start_node(self) -> None:
        if self._host is None:
            self._host = NodeHost()
        if not self._host.running:
            await self._host.start()
        self._host.spawn(self._run_node)

    async def _run_node(self) -> None:
        """Inside trio: the node's whole life, its events forwarded to the UI."""
        stop = self._node_stop
        self._node_started = True
        try:
            if stop.is_set():
                return  # the window closed before the node started
            async with (
                open_node(self.profile.identity, self.settings) as node,
                trio.open_nursery() as nursery,
            ):
                # Like the daemon: other commands of this profile reach this node.
                service = NodeService(
                    self.profile,
                    node,
                    on_quit=self._quit_from_api,
                    on_change=self._changed_elsewhere,
                )
                await nursery.start(service.serve)
                self.post_message(NodeUp(node))
                nursery.start_soon(partial(self._events.pump, node.events, also=service.observe))
                await stop.wait()
                nursery.cancel_scope.cancel()  # the service and the pump; then the goodbye
        except OSError as error:
            self.post_message(NodeFailed(f"cannot listen: {error.strerror or error}"))
        except Exception as error:  # shown, not only logged: the window must not lie
            log.exception("the node stopped")
            self.post_message(NodeFailed(f"the node stopped: {error}"))
        finally:
            self._node_stopped.set()

    def _quit_from_api(self) -> None:
        """The API's ``quit`` (``{"cmd": "quit"}`` on the control socket) closes the window."""
        self.call_later(self.exit)

    def _changed_elsewhere(self) -> None:
        """Inside trio: a command of another program (``p2pchat send`` ...) went through
        our node. The window redraws from the store, as after dropped events."""
        if not self._resync_pending:
            self._resync_pending = True
            self.call_later(self._resync)

    async def on_unmount(self) -> None:
        host = self._host
        if host is None:
            return
        if host.running:
            host.call(self._node_stop.set)  # also if the node has yet to start
        if self._node_started and host.running:
            # The node leaves the mesh (goodbye) before the store is closed behind us.
            try:
                await asyncio.wait_for(self._node_stopped.wait(), NODE_GOODBYE_WAIT)
            except TimeoutError:
                log.error("the node did not stop within %s s", NODE_GOODBYE_WAIT)
        if self._owns_host:
            await host.stop()

    # ------------------------------------------------------------------ errors

    async def _dispatch_message(self, message: Message) -> None:
        # Textual stops the app's message loop at a handler's exception, and the app with
        # it (and the node): a failed handler of ours is logged and said instead.
        try:
            await super()._dispatch_message(message)
        except Exception as error:
            if isinstance(message, events.Compose | events.Mount):
                raise  # no window to go on with
            self.crashes.handler_failed(error)

    def _handle_exception(self, error: Exception) -> None:
        self.crashes.uncaught(error)  # not Textual's full-screen traceback

    def set_timer(
        self,
        delay: float,
        callback: TimerCallback | None = None,
        *,
        name: str | None = None,
        pause: bool = False,
    ) -> Timer:
        guarded = None if callback is None else self.crashes.timer_callback(callback)
        return super().set_timer(delay, guarded, name=name, pause=pause)

    def set_interval(
        self,
        interval: float,
        callback: TimerCallback | None = None,
        *,
        name: str | None = None,
        repeat: int = 0,
        pause: bool = False,
    ) -> Timer:
        guarded = None if callback is None else self.crashes.timer_callback(callback)
        return super().set_interval(interval, guarded, name=name, repeat=repeat, pause=pause)

    # ------------------------------------------------------------------ node events

    @property
    def node(self) -> Node | None:
        """The running node (None before it starts, or once it failed)."""
        return self.commands.node

    def on_node_up(self, message: NodeUp) -> None:
        self.commands.attach(message.node)
        self.conversation_notices.node_up()
        self.update_topbar()

    def on_node_failed(self, message: NodeFailed) -> None:
        self.top_bar.failure = message.text
        self.commands.attach(None)
        self.notify(message.text, title="The node could not start", severity="error")
        self.update_topbar()

    def on_node_event_arrived(self, message: NodeEventArrived) -> None:
        # NoMatches: the app is closing (its widgets are gone) while the node says goodbye.
        with contextlib.suppress(NoMatches):
            self._node_event(message.event)

    def on_node_events_waiting(self, message: NodeEventsWaiting) -> None:
        dropped, events = self._events.take()
        with contextlib.suppress(NoMatches):
            if dropped:
                self._events_dropped(dropped)
            for event in events:
                self._node_event(event)

    def _events_dropped(self, count: int) -> None:
        """The window fell behind and ``count`` node events were dropped: say so (one
        notice every few seconds at most, with the total) and redraw from the store and
        the node's membership what those events would have changed."""
        self._notices.dropped(count)
        if not self._resync_pending:
            self._resync_pending = True
            self.set_timer(0.2, self._resync)

    def _resync(self) -> None:
        self._resync_pending = False
        if self.node is not None:
            members = (_seen(peer.presence) for peer in self.commands.peers())
            self._seen = {seen.peer_id: seen for seen in members}
            self.xmpp.resync()
        with contextlib.suppress(NoMatches):
            view = self.query_one(ConversationView)
            if self._room is not None:
                self._show_room(view, bytes.fromhex(self._room))
            elif self.xmpp.current is not None:
                self.xmpp.open(self.xmpp.current)
            elif self._peer is not None:
                view.show(self.commands, self.me, decode_peer_id(self._peer), self.name_of)
            self.refresh_sidebar()
            self.update_title()
            self.update_topbar()

    def _node_event(self, event: NodeEvent) -> None:
        self.system.node_event(event)
        self.conversation_notices.node_event(event)
        self.xmpp.node_event(event)
        if isinstance(event, EventsDropped):
            self._events_dropped(event.count)
        elif isinstance(event, MessageIn):
            self._message_in(event)
        elif isinstance(event, DiscoveryNote):
            self._discovery_note(event)
        elif isinstance(event, Receipt):
            if encode_peer_id(event.peer) == self._peer:
                self.query_one(ConversationView).set_state(event.msg_id, event.state)
        elif isinstance(event, RoomMessageIn):
            self._room_message(event)
        elif isinstance(event, FileEvent):
            self.files.node_event(event)
        elif isinstance(event, RoomInvited):
            inviter = self.name_of(event.inviter)
            self.notify(f"{inviter} invites you to #{event.name}: /join {event.name}",
                        title="Room invitation")  # fmt: skip
            self.schedule_refresh()
        elif isinstance(event, RoomChanged | RoomGone):
            if isinstance(event, RoomChanged):
                self._room_names[event.room] = event.name
            else:
                how = "were removed from" if event.reason == "removed" else "left"
                self.notify(f"You {how} #{self._room_label(event.room)}")
                if event.room.hex() == self._room:
                    self._room = None
                    self.query_one(ConversationView).show(self.commands, self.me, None,
                                                          self.name_of)  # fmt: skip
            self.schedule_refresh()
            self.update_title()
        elif isinstance(event, ContactRequest):
            self._notices.request(event)
            self.schedule_refresh()
        elif isinstance(event, Presence) and not event.is_self:
            seen = _seen(event)
            if event.state == "forgotten":
                self._seen.pop(seen.peer_id, None)  # the node's list was full: unknown
            else:
                self._seen[seen.peer_id] = seen
            self.schedule_refresh()
        elif isinstance(event, Listening):
            self.update_topbar()
        elif isinstance(event, TorState):
            self.top_bar.tor = event
            if event.state == "failed":
                self.notify(f"Tor is off: {event.reason}. The LAN works as before.",
                            title="Tor", severity="warning", timeout=15)  # fmt: skip
            self.update_topbar()
        elif isinstance(event, DiskTrouble):
            self.top_bar.disk[event.file] = event
            self.notify(event.text, title="Disk problem", severity="error", timeout=30)
            self.update_topbar()
        elif isinstance(event, DiskRecovered):
            if self.top_bar.disk.pop(event.file, None) is not None:
                self.notify(f"{event.file} can be written again", title="Disk problem solved")
            self.update_topbar()
        if isinstance(event, Presence | PeerConnected | PeerDisconnected):
            self.update_topbar()

    def _room_message(self, event: RoomMessageIn) -> None:
        room_id = event.room
        if event.file:  # shown as its file line, told by its FileEvent
            self.schedule_refresh()
            return
        if room_id.hex() == self._room:
            shown = StoredMessage(0, event.msg_id, room_id, event.author, event.own, event.clock,
                                  event.time, event.time, event.text, "", event.action,
                                  event.topic)  # fmt: skip
            self.query_one(ConversationView).add(shown)
            self._quietly(self.commands.mark_room_read, room_id)
            if not event.own and mentions(event.text, self.profile.nick):
                self._notices.bell()
        elif not event.own:
            who, room = self.name_of(event.author), self._room_name(room_id)
            if mentions(event.text, self.profile.nick):
                self._notices.mention(room_id, who, room, event.text)
            else:
                self._notices.room_message(room_id, f"#{room} · {who}", event.text)
        if event.topic:
            self.update_title()
        self.schedule_refresh()

    def _remember_names(self, rows: list[RoomRow]) -> list[RoomRow]:
        self._room_names.update((row.room_id, row.name) for row in rows)
        return rows

    def _room_label(self, room_id: bytes) -> str:
        """A room's name, also once it is left and gone from the store."""
        return self._room_names.get(room_id) or self._room_name(room_id)

    def _room_name(self, room_id: bytes) -> str:
        row = self.commands.stored_room(room_id)
        return row.name if row is not None else room_id.hex()[:8]

    def _message_in(self, event: MessageIn) -> None:
        stored = self.commands.message(event.msg_id)
        peer_id = encode_peer_id(event.peer)
        if peer_id == self._peer and stored is not None:
            self.query_one(ConversationView).add(stored)
            self._mark_read(peer_id)
        else:
            self._notices.message(event)
        self.schedule_refresh()

    def on_conversation_view_file_clicked(self, message: ConversationView.FileClicked) -> None:
        self.files.act(message.offer_id, message.action)

    def on_sent(self, message: Sent) -> None:
        stored = self.commands.message(message.msg_id)
        if stored is not None and message.peer_id == self._peer:
            self.query_one(ConversationView).add(stored)
            # Replying accepts a request: what they wrote is read now, as it is shown.
            self._mark_read(message.peer_id)
        self.schedule_refresh()

    # ------------------------------------------------------------------ sidebar

    def schedule_refresh(self) -> None:
        """Redraw the sidebar soon (many changes in a row are one redraw)."""
        if not self._refresh_pending:
            self._refresh_pending = True
            self.set_timer(0.1, self.refresh_sidebar)

    def refresh_sidebar(self) -> None:
        self._refresh_pending = False
        if not self.query(Sidebar):
            return  # closing
        commands = self.commands
        unread = {encode_peer_id(c.peer): c.unread for c in commands.conversations() if c.unread}
        rooms = [
            RoomLine(
                row.room_id.hex(),
                row.name,
                0 if not row.joined else commands.room_unread(row.room_id),
                invited=not row.joined,
                network=self._room_network(row.room_id) if row.joined else "",
            )
            for row in self._remember_names(commands.stored_rooms())
        ]
        requests = commands.requests()
        shared = {encode_peer_id(r.peer): commands.shared_rooms(r.peer) for r in requests}
        self._entries = build_entries(commands.contacts(), requests, self._seen.values(), unread,
                                      rooms, shared, self.xmpp.lines())  # fmt: skip
        sidebar = self.query_one(Sidebar)
        sidebar.current = self._open_id()
        sidebar.show(self._entries, unconfirmed=hearsay_count(self._entries, self._seen.values()),
                     system=system_entry(self.system.log.unread_errors))  # fmt: skip
        refresh_member_panel(self)

    def _room_network(self, room_id: bytes) -> str:
        try:
            members = self.commands.room(room_id).members
        except CommandError:
            return ""
        return room_network(members, self.me, self._seen)

    def on_resize(self) -> None:
        self.schedule_refresh()  # the sidebar's lines are cut to its width
        if self.query(MemberPanel):
            refresh_member_panel(self)

    def action_members(self) -> None:
        """F3: show or hide the open room's member list."""
        if self._room is None:
            self.notify("Open a room first: the member list is the open room's")
            return
        self.query_one(MemberPanel).toggle(self.size.width)
        refresh_member_panel(self)

    def on_sidebar_chosen(self, message: Sidebar.Chosen) -> None:
        entry = message.entry
        if _is_invitation(entry):
            self.notify(f"You are invited to #{entry.name}: /join {entry.name}")
        else:
            self.open_entry(entry)

    def open_entry(self, entry: Entry) -> None:
        """Open what a sidebar entry stands for: a room, or a conversation with a person."""
        if entry.section is Section.SYSTEM:
            self.action_open_system()
        elif entry.section is Section.ROOMS:
            self.open_room(entry.peer_id)
        else:
            self.open_conversation(entry.peer_id)

    def _open_id(self) -> str | None:
        """The sidebar id of what is open: the system conversation, a room, a person or
        an XMPP peer."""
        if self.system.is_open:
            return SYSTEM_ID
        return self._room or self._peer or self.xmpp.current

    def open_room(self, room_hex: str) -> None:
        self._peer, self._room, self.xmpp.current = None, room_hex, None
        self.system.hide()
        room_id = bytes.fromhex(room_hex)
        self._show_room(self.query_one(ConversationView), room_id)
        self._quietly(self.commands.mark_room_read, room_id)
        self.update_title()
        self.refresh_sidebar()
        self.query_one(Composer).focus()

    def _show_room(self, view: ConversationView, room_id: bytes) -> None:
        try:  # the name column fits every member's name, not only ours
            members: frozenset[bytes] = self.commands.room(room_id).members
        except CommandError:  # not joined (any more), or no node yet: the authors do
            members = frozenset()
        view.show(self.commands, self.me, room_id, self.name_of, room=True, people=members)

    def open_conversation(self, peer_id: str) -> None:
        if is_xmpp_id(peer_id):
            self.open_xmpp(peer_id)
            return
        self._room = self.xmpp.current = None
        self._peer = peer_id
        self.system.hide()
        peer = decode_peer_id(peer_id)
        self.query_one(ConversationView).show(self.commands, self.me, peer, self.name_of)
        self._mark_read(peer_id)
        self.update_title()
        self.refresh_sidebar()
        self.query_one(Composer).focus()

    def open_xmpp(self, jid: str) -> None:
        """Open the chat with an XMPP link-local peer (``user@machine``)."""
        self._peer = self._room = None
        self.system.hide()
        self.xmpp.open(jid)
        self.update_title()
        self.refresh_sidebar()
        self.query_one(Composer).focus()

    def _quietly(self, write: Callable[..., Any], *args: Any) -> None:
        """A bookkeeping write (read marks) from a UI handler: a full disk must not end
        the app; the status bar already says the disk is full."""
        try:
            write(*args)
        except CommandError as error:
            if disk_fault(error) is None:
                raise

    def _mark_read(self, peer_id: str) -> None:
        # A stranger learns nothing (not even "read") before being accepted. The store
        # says, not the sidebar: that may not show a request that has just come in.
        if self.commands.request(decode_peer_id(peer_id)) is not None:
            return
        if len(self.screen_stack) > 1:
            return  # a dialog covers the conversation: not read yet
        if self.node is not None and self._host is not None:
            self._host.call(self.commands.mark_read, decode_peer_id(peer_id))
            self.schedule_refresh()

    def action_step(self, step: int) -> None:
        """The next (or previous) entry that can be opened: invitations are passed over,
        they open nothing until joined."""
        sidebar = self.query_one(Sidebar)
        current = self._open_id()
        for _ in range(len(self._entries)):
            entry = sidebar.neighbour(current, step)
            if entry is None:
                return
            if not _is_invitation(entry):
                self.open_entry(entry)
                return
            current = entry.peer_id

    def action_jump(self, position: int) -> None:
        """Alt+1…9: open the ``position``-th conversation of the sidebar (weechat's
        buffer numbers). Nothing happens past the end or under a dialog."""
        targets = jump_targets(self._entries)
        if len(self.screen_stack) == 1 and 0 < position <= len(targets):
            self.open_entry(targets[position - 1])

    # ------------------------------------------------------------------ naming

    def name_of(self, key: bytes) -> str:
        if key == self.me:
            return self.profile.nick
        if len(key) != 32:  # a room id (the conversation pane asks for its "peer")
            return ""
        peer_id = encode_peer_id(key)
        for entry in self._entries:
            if entry.peer_id == peer_id:
                return entry.name
        seen = self._seen.get(peer_id)
        return shown_name(
            peer_id, seen.nick if seen and seen.nick else self.commands.room_nick(key)
        )

    # ------------------------------------------------------------------ for slash and bars

    @property
    def entries(self) -> list[Entry]:
        """The sidebar's entries, section by section (ui/people.py)."""
        return self._entries

    def entry(self, peer_id: str) -> Entry | None:
        return next((e for e in self._entries if e.peer_id == peer_id), None)

    @property
    def seen(self) -> Mapping[str, Seen]:
        """Every member of the mesh the node told us about, by peer id."""
        return self._seen

    @property
    def current_peer(self) -> str | None:
        """The peer id of the open conversation, if one is open."""
        return self._peer

    @property
    def current_room(self) -> str | None:
        """The hex id of the open room, if one is open."""
        return self._room

    def not_ready(self) -> str:
        """Why a command that needs the node cannot run now."""
        if self.top_bar.failure:
            return f"the node is not running ({self.top_bar.failure}); restart p2pchat"
        return "still starting: try again in a moment"

    def require_node(self) -> None:
        if self.node is None or self._host is None:
            raise CommandError(self.not_ready())

    def call_in_node(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` inside trio, where the node lives, soon."""
        self.require_node()
        assert self._host is not None
        self._host.call(self.crashes.guarded(function), *args)

    def spawn_in_node(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``function(*args)`` as a task inside trio, beside the node."""
        self.require_node()
        assert self._host is not None
        self._host.spawn(self.crashes.guarded_task(function), *args)

    def run_line(self, line: str) -> None:
        """Run a composer line (a command, from the palette) as if it had been typed."""
        self.on_composer_submitted(Composer.Submitted(line))

    def _complete(self, line: str) -> list[str]:
        return slash.complete_line(self, line)

    def on_composer_submitted(self, message: Composer.Submitted) -> None:
        if slash.composer_submitted(self, message):
            self.query_one(Composer).taken(message.text)

    def update_title(self) -> None:
        bars.update_title(self)

    def update_topbar(self) -> None:
        bars.update_topbar(self)

    # ------------------------------------------------------------------ bars

    def _discovery_note(self, note: DiscoveryNote) -> None:
        peer_id = note.fields.get("id")
        if not isinstance(peer_id, str):
            return
        if note.name == "refused" and note.fields.get("by_peer"):
            self.top_bar.refused_by.add(peer_id)
        elif note.name in ("verified", "gone"):
            self.top_bar.refused_by.discard(peer_id)
        else:
            return
        self.update_topbar()

    # ------------------------------------------------------------------ actions

    def action_scroll_conversation(self, how: str) -> None:
        view = self.query_one(SystemPane if self.system.is_open else ConversationView)
        getattr(view, f"action_{how}")()

    def action_open_system(self) -> None:
        """Show the system conversation in place of the open one."""
        self._peer = self._room = self.xmpp.current = None
        self.system.show()
        self.update_title()
        self.refresh_sidebar()
        self.query_one(Composer).focus()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Not "Quit": Ctrl+K is where people switch conversations, and a name with no
        # match left "Quit" the best match for Enter (Ctrl+K, q, Enter ended the app).
        # Ctrl+Q quits, and the footer says so.
        for command in super().get_system_commands(screen):
            if command.title != "Quit":
                yield command

    def action_files(self) -> None:
        self.files.show_panel()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(keys=self.KEYS_HELP))

    def action_verify(self) -> None:
        if self._room is not None:  # a room has no safety number: its members each do
            self.prefill("/verify ")
            self.notify("Verify a member of the room: type their nick (Tab completes)")
            return
        if self.xmpp.current is not None:
            self.notify(NO_KEY.format(jid=self.xmpp.current), severity="warning")
            return
        if self._peer is None:
            self.notify("Open a conversation first, or type /verify NICK")
            return
        slash.show_verify(self, self._peer)

    def action_new_conversation(self) -> None:
        self.prefill("/msg ")

    def prefill(self, text: str) -> None:
        """Put the start of a command in the composer for the user to finish."""
        composer = self.query_one(Composer)
        composer.load_text(text)
        composer.move_cursor(composer.document.end)
        composer.focus()


def _dropped_file(text: str) -> str | None:
    path = pasted_file(text)
    return None if path is None else f"/send {path}"


def _stands_for(event: NodeEvent) -> int:
    """How many node events an item is: a gap the node reported counts as its size."""
    return event.count if isinstance(event, EventsDropped) else 1


def _seen(presence: Presence) -> Seen:
    """A member as the sidebar keeps it: ids become text here, at the edge."""
    return Seen(encode_peer_id(presence.peer), presence.nick, presence.status,
                presence.status_text, presence.proven, presence.network)  # fmt: skip


def _is_invitation(entry: Entry) -> bool:
    return entry.section is Section.ROOMS and entry.status == "invited"
