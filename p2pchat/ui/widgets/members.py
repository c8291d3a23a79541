"""The member list: a right-hand panel with the open room's members and their presence
(F3 or ``/members`` toggles it; IRC clients' nick list).

It shows only while a room is open. Until the user toggles it, it shows on terminals
at least :data:`WIDE` columns wide and hides on narrower ones, where the conversation
needs the room; a toggle then holds until the next one, at any width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from p2pchat.commands import CommandError
from p2pchat.identity import encode_peer_id
from p2pchat.ui.people import PRESENCE_MARKS, counted

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

WIDE = 120  # columns from which the panel shows by itself: the conversation keeps 68
_STYLES = {"avail": "green", "away": "yellow", "dnd": "red"}


@dataclass(frozen=True, slots=True)
class MemberLine:
    """One member as the panel shows it: ``status`` is avail, away, dnd or offline."""

    name: str
    status: str
    me: bool = False


def member_lines(
    members: Iterable[tuple[bytes, bool]],
    me: bytes,
    name_of: Callable[[bytes], str],
    status_of: Callable[[bytes], str | None],
) -> list[MemberLine]:
    """The panel's lines for (key, online) pairs: those online first, then by name.
    ``status_of``: a member's presence status if the mesh knows it."""
    lines = []
    for key, online in members:
        status = status_of(key) if online else None
        lines.append(MemberLine(name_of(key), status or ("avail" if online else "offline"),
                                key == me))  # fmt: skip
    lines.sort(key=lambda line: (line.status == "offline", line.name.casefold(), line.name))
    return lines


class MemberPanel(OptionList):
    """The open room's members; :meth:`place` decides whether it shows."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.wanted: bool | None = None  # None: by the terminal's width
        self.shown_lines: list[MemberLine] = []

    def toggle(self, width: int) -> None:
        """Show it if it is hidden, hide it if it shows (from now on, at any width)."""
        self.wanted = not self._wanted(width)

    def place(self, room_open: bool, width: int) -> None:
        self.display = room_open and self._wanted(width)

    def _wanted(self, width: int) -> bool:
        return self.wanted if self.wanted is not None else width >= WIDE

    def show_members(self, lines: list[MemberLine]) -> None:
        if lines == self.shown_lines and self.option_count:
            return
        self.shown_lines = lines
        online = sum(1 for line in lines if line.status != "offline")
        heading = f"{counted(len(lines), 'member').upper()} · {online} ONLINE"
        options = [Option(Text(heading, style="bold dim"), disabled=True)]
        for line in lines:
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(f"{PRESENCE_MARKS.get(line.status, '○')} ",
                         style=_STYLES.get(line.status, "dim"))  # fmt: skip
            label.append(line.name, style="bold" if line.me else "")
            options.append(Option(label, disabled=True))
        self.clear_options()
        self.add_options(options)


def refresh_member_panel(app: ChatApp) -> None:
    """Show or hide the panel for the app's open room and width, and fill it."""
    panel = app.query_one(MemberPanel)
    room = app.current_room
    panel.place(room is not None, app.size.width)
    if room is None or not panel.display:
        return
    try:
        members = [(m.peer, m.online) for m in app.commands.room_members(bytes.fromhex(room))]
    except CommandError:  # no node yet, or the room was just left
        members = []

    def status_of(key: bytes) -> str | None:
        if key == app.me:
            own = app.commands.own_presence()
            return own.status if own else app.settings.status
        seen = app.seen.get(encode_peer_id(key))
        return seen.status if seen else None

    panel.show_members(member_lines(members, app.me, app.name_of, status_of))
