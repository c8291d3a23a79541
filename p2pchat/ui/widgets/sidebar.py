"""The sidebar: the system conversation, contacts, rooms, requests and nearby peers,
with presence and unread counts."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from p2pchat.ui.people import Entry, Section

XMPP_BADGE = "XMPP · not encrypted"
"""After every XMPP link-local peer's name (docs/protocol.md §18)."""


class Sidebar(OptionList):
    """One list with section headings; selecting an entry opens its conversation."""

    @dataclass
    class Chosen(Message):
        entry: Entry

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: list[Entry] = []
        self._by_key: dict[str, Entry] = {}
        self.current: str | None = None  # the open conversation's peer id

    def show(
        self,
        entries: list[Entry],
        width: int = 24,
        *,
        unconfirmed: int = 0,
        system: Entry | None = None,
    ) -> None:
        """Redraw with ``entries``, keeping the highlight on the same peer if it is there.

        ``unconfirmed``: online peers only gossip vouches for, counted under NEARBY
        rather than listed (anyone can gossip made-up identities). ``system``: the
        system conversation's entry, drawn first, without a heading."""
        highlighted = self.highlighted_option.id if self.highlighted_option is not None else None
        # One line per entry: the option list would wrap a long one onto a second.
        width = self.scrollable_content_region.width or width
        if system is not None:
            entries = [system, *entries]
        self.entries = entries
        self._by_key = {entry.key: entry for entry in entries}
        options: list[Option] = []
        for section in Section:
            members = [e for e in entries if e.section is section]
            extra = unconfirmed if section is Section.NEARBY else 0
            if section is Section.SYSTEM:
                options += [Option(self._label(entry, width), id=entry.key) for entry in members]
                continue
            if section in (Section.NEARBY, Section.ROOMS) and not members and not extra:
                continue
            title = section.value
            if section is Section.REQUESTS:
                if not members:
                    continue
                title = f"{title} ({len(members)})"
            options.append(Option(Text(title, style="bold dim"), disabled=True))
            if not members and section is Section.CONTACTS:
                options.append(Option(Text("  none yet", style="dim italic"), disabled=True))
            options += [Option(self._label(entry, width), id=entry.key) for entry in members]
            if extra:
                line = Text(f"  + {extra:,} unconfirmed", style="dim italic")
                options.append(Option(line, disabled=True))
        self.clear_options()
        self.add_options(options)
        if highlighted is not None and highlighted in self._by_key:
            self.highlighted = self.get_option_index(highlighted)

    def _label(self, entry: Entry, width: int) -> Text:
        label = Text(no_wrap=True, overflow="ellipsis")
        style = {"avail": "green", "away": "yellow", "dnd": "red"}.get(entry.status, "dim")
        if entry.section in (Section.REQUESTS, Section.ROOMS, Section.SYSTEM):
            style = ""
        label.append(f"{entry.mark} ", style=style)
        name_style = "bold" if entry.peer_id == self.current else ""
        if entry.blocked:
            name_style = "dim strike"
        label.append(entry.name, style=name_style)
        badges = ""
        if entry.verified:
            badges += " ✔"
        if entry.clash:
            badges += " ⚠"
        if entry.network:  # met in a private network of ours
            badges += f" [{entry.network}]"
        elif entry.xmpp:
            pass  # its own badge, on a line of its own: a warning, not a note
        elif entry.section is Section.NEARBY:
            badges += " (new)"
        if entry.status == "invited":
            badges += " (invited)"
        if entry.rooms:  # a request from someone in a room with us
            badges += " (" + ", ".join(f"#{name}" for name in entry.rooms) + ")"
        label.append(badges, style="dim")
        if entry.unread:
            count = str(entry.unread) if entry.unread < 1000 else "999+"
            # A long name or badge is cut, never the count pushed out of sight.
            label.truncate(max(1, width - len(count) - 1), overflow="ellipsis")
            padding = max(1, width - len(label) - len(count))
            label.append(" " * padding)
            # The system conversation counts only errors: they are shown in red.
            alarm = "bold reverse red" if entry.section is Section.SYSTEM else "bold reverse"
            label.append(count, style=alarm)
        label.truncate(width, overflow="ellipsis")
        if entry.xmpp:  # never let a clear-text chat pass for a private one (§18)
            label.append(f"\n  {XMPP_BADGE}", style="yellow")
        return label

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        entry = self._by_key.get(event.option.id or "")
        if entry is not None:
            self.post_message(self.Chosen(entry))

    def neighbour(self, peer_id: str | None, step: int) -> Entry | None:
        """The entry ``step`` places after the one for ``peer_id`` (Alt+↑/↓)."""
        if not self.entries:
            return None
        ids = [e.peer_id for e in self.entries]
        index = ids.index(peer_id) if peer_id in ids else -1
        return self.entries[(index + step) % len(self.entries)]
