"""Files in the chat window: ``/send PATH`` and dropped files, the file events shown
in their conversation and as toasts, the actions of a file line (accept, save as,
decline, cancel, open, send again) and the transfers panel.

Commands that talk to the node run inside trio (through the app); what they answer is
shown when it comes, as the other commands do.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from p2pchat.commands import CommandError, Commands, FileTransfer
from p2pchat.files.names import safe_name
from p2pchat.identity import decode_peer_id
from p2pchat.images import Pixels
from p2pchat.node.events import FileEvent
from p2pchat.node.files.uploads import NOT_SUPPORTED
from p2pchat.sizes import format_size
from p2pchat.ui.file_lines import FileAction, FileLine
from p2pchat.ui.paths import expand_home
from p2pchat.ui.screens.picture import PictureScreen
from p2pchat.ui.screens.save_as import SaveAsScreen
from p2pchat.ui.screens.transfers import TransfersScreen
from p2pchat.ui.transfers import Transfers
from p2pchat.ui.widgets.conversation import ConversationView

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

PANEL_SHOWS = 500  # transfers the panel lists, newest first
HASHING_SAID = 64 << 20  # a file this large is read for a while before it is offered


class FileDesk:
    def __init__(self, app: ChatApp) -> None:
        self._app = app
        commands = app.commands
        self.transfers = Transfers(
            commands.stored_transfer, commands.transferred, self._decode, self._changed
        )
        self._panel: TransfersScreen | None = None

    # ---------------------------------------------------------------- sending

    def send(self, typed: str) -> bool:
        """``/send PATH``: offer the file to the open conversation's person."""
        app = self._app
        room = app.current_room
        peer_id = app.current_peer
        if app.xmpp.current is not None:
            raise CommandError("files cannot go to XMPP peers from here: their chats are "
                               "not encrypted")  # fmt: skip
        if peer_id is None and room is None:
            raise CommandError("open a conversation or a room first: /send offers the file there")
        path = expand_home(_unquoted(typed))
        if not path.is_file():
            raise CommandError(f"{path}: no such file" if not path.exists() else
                               f"{path} is not a file")  # fmt: skip
        app.require_node()
        size = path.stat().st_size
        if size >= HASHING_SAID:  # reading it through takes a few seconds: say so
            app.notify(f"Reading {path.name} ({format_size(size)}) to offer it…", system=False)
        if room is not None:
            app.spawn_in_node(self._share, bytes.fromhex(room), path)
        else:
            assert peer_id is not None
            app.spawn_in_node(self._offer, decode_peer_id(peer_id), path)
        return True

    async def _share(self, room_id: bytes, path: Path) -> None:
        app = self._app
        try:
            transfer = await app.commands.share_file(room_id, path)
        except CommandError as error:
            app.notify(str(error), title="Not shared", severity="warning")
            return
        app.call_later(self._offered, transfer)

    async def _offer(self, peer: bytes, path: Path) -> None:
        app = self._app
        try:
            transfer = await app.commands.send_file(peer, path)
        except CommandError as error:
            app.notify(str(error), title="Not sent", severity="warning")
            return
        app.call_later(self._offered, transfer)

    def _offered(self, transfer: FileTransfer) -> None:
        self.transfers.add(transfer)
        self._changed(transfer.offer_id)

    # ---------------------------------------------------------------- events

    def node_event(self, event: FileEvent) -> None:
        app = self._app
        line = self.transfers.event(event, time.monotonic())
        if line is None:
            return
        if event.room:
            here = app.current_room == event.room.hex()
        else:
            here = app.current_peer is not None and decode_peer_id(app.current_peer) == event.peer
        who = app.name_of(event.peer)
        if event.kind == "offer" and event.room and not here:
            room = app.commands.stored_room(event.room)
            where = f"#{room.name}" if room is not None else "a room"
            app.notify(f"{who} shares {line.title()} in {where}", title="A file")
        elif event.kind == "offer" and not here:
            app.notify(f"{who} offers you {line.title()}: open the conversation, or /files",
                       title="A file")  # fmt: skip
        elif event.kind == "done" and not event.outgoing:
            app.notify(f"{line.name} from {who} is here: {event.path}", title="File received")
        elif event.kind == "done" and not here:
            app.notify(f"{who} has {line.name}, every block verified", title="File sent")
        elif event.kind == "failed" and event.reason == NOT_SUPPORTED:
            app.notify(f"{line.name} not sent: {who}'s p2pchat cannot receive files yet",
                       title="File", severity="warning")  # fmt: skip
        elif event.kind == "failed":
            app.notify(f"{line.name}: {event.reason}", title="File failed", severity="error")
        elif event.kind == "answer" and event.state == "declined" and event.outgoing:
            app.notify(f"{who} declined {line.name}", title="File")

    def tick(self) -> None:
        """Every second: running transfers that stopped moving show it (their rate
        falls, then "waiting")."""
        now = time.monotonic()
        for line in list(self.transfers.lines.values()):
            if line.tick(now):
                self._changed(line.offer_id)

    def _changed(self, offer_id: bytes) -> None:
        app = self._app
        row = app.commands.stored_transfer(offer_id)
        if row is None:
            return
        view = app.query_one(ConversationView)
        if view.peer == (row.room_id or row.peer) and (
            (app.current_room is None) == (not row.room_id)
        ):
            view.file_changed(row)
        if self._panel is not None and self._panel.is_attached:
            self._panel.refresh_rows()

    def _decode(
        self, work: Callable[[], Pixels | None], then: Callable[[Pixels | None], None]
    ) -> None:
        future = asyncio.get_running_loop().run_in_executor(None, work)
        future.add_done_callback(lambda done: then(None if done.exception() else done.result()))

    # ---------------------------------------------------------------- actions

    def act(self, offer_id: bytes, action: FileAction) -> None:
        line = self.transfers.line(offer_id)
        if line is None:
            return
        try:
            self._act(line, action)
        except CommandError as error:
            self._app.notify(str(error), severity="warning")

    def _act(self, line: FileLine, action: FileAction) -> None:
        app = self._app
        offer_id = line.offer_id
        if action is FileAction.ACCEPT:
            self._in_node(lambda c: c.accept_file(offer_id))
        elif action is FileAction.SAVE_AS:
            suggested = str(self._downloads() / safe_name(line.name))

            def chosen(path: str | None) -> None:
                if path:
                    self._in_node(lambda c: c.accept_file(offer_id, Path(path)))

            app.push_screen(SaveAsScreen(line.name, suggested), chosen)
        elif action is FileAction.DECLINE:
            self._in_node(lambda c: c.decline_file(offer_id))
        elif action in (FileAction.CANCEL, FileAction.STOP):
            self._in_node(lambda c: c.cancel_file(offer_id))
        elif action is FileAction.VIEW:
            app.push_screen(PictureScreen(Path(line.path), line.title(), partial(_open, app)))
        elif action is FileAction.OPEN:
            _open(app, Path(line.path))
        elif action is FileAction.FOLDER:
            _open(app, Path(line.path).parent)
        elif action is FileAction.RESEND:
            app.require_node()
            app.spawn_in_node(self._offer, line.peer, Path(line.path))

    def _in_node(self, action: Callable[[Commands], FileTransfer]) -> None:
        app = self._app
        commands = app.commands

        def run() -> None:
            try:
                row = action(commands)
            except CommandError as error:
                app.notify(str(error), severity="warning")
                return
            app.call_later(self._moved, row)

        app.call_in_node(run)

    def _moved(self, row: FileTransfer) -> None:
        line = self.transfers.line(row.offer_id)
        if line is not None:
            line.moved(row.state, line.done_bytes, time.monotonic(), reason=row.reason)
        self._changed(row.offer_id)

    def _downloads(self) -> Path:
        files = self._app.settings.files
        return files.downloads if files.downloads is not None else Path.home()

    # ---------------------------------------------------------------- the panel

    def show_panel(self) -> None:
        self._panel = TransfersScreen(self._panel_lines, self._who, self.act)
        self._app.push_screen(self._panel)

    def _who(self, line: FileLine) -> str:
        """A person's name; a room file: ``#room`` (and its author, if not us)."""
        app = self._app
        if not line.room:
            return app.name_of(line.peer)
        room = app.commands.stored_room(line.room)
        where = f"#{room.name}" if room is not None else "a room"
        return where if line.outgoing else f"{where} · {app.name_of(line.peer)}"

    def _panel_lines(self) -> list[FileLine]:
        rows = self._app.commands.transfers()[:PANEL_SHOWS]
        return [self.transfers.add(row) for row in rows]


def _unquoted(typed: str) -> str:
    typed = typed.strip()
    if len(typed) >= 2 and typed[0] == typed[-1] and typed[0] in "'\"":
        return typed[1:-1]
    return typed


def _open(app: ChatApp, path: Path) -> None:
    """Open ``path`` with the system's viewer (xdg-open, or open on macOS)."""
    opener = shutil.which("xdg-open") or shutil.which("open")
    if opener is None or not path.exists():
        app.notify(f"{path}" if path.exists() else f"{path} is no longer there",
                   title="Cannot open it here" if path.exists() else "Gone")  # fmt: skip
        return
    subprocess.Popen(
        [opener, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    app.notify(f"Opening {path.name}", system=False)
