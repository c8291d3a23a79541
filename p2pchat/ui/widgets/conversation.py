"""The conversation pane: one conversation's messages, lazily paged in from the store
(through the command layer's history reads, :class:`Pages`).

A conversation may hold 100,000 messages, so the pane never reads it whole and never
makes a widget per message. It holds the messages loaded so far (the newest page at
first, older pages as the reader scrolls up) and draws them with Textual's Line API:
each message is wrapped once per width into cached strips, and drawing a line is a
binary search over the block start lines plus a list lookup. Nothing on the drawing
path touches SQLite.

Message text and nicknames come from the network: they are drawn as plain text
(never Rich markup), with control characters replaced so they cannot drive the
terminal.

One module although long: paging, layout and drawing all keep the same line index
(the block start lines) true, and are only correct together.
"""

from __future__ import annotations

import re
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from itertools import accumulate
from typing import ClassVar, NamedTuple, Protocol

from rich.cells import cell_len, chop_cells, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from p2pchat.commands import FileTransfer, Notice, RoomMessage, StoredMessage
from p2pchat.ui.file_lines import FileAction
from p2pchat.ui.mentions import mentions
from p2pchat.ui.transfers import Transfers
from p2pchat.ui.widgets.file_entry import Button, draw_file

PAGE = 200
"""Messages read from the store at a time (the first screenful and each older page)."""

HINT_NO_PEER = "Choose a contact on the left, or type /msg NICK"
HINT_EMPTY = "No messages yet. Say hello below."

MARKS: dict[str, str] = {"queued": "⏱", "sent": "✓", "delivered": "✓✓", "read": "✓✓ read"}
"""Delivery marks of outgoing messages; words and tick counts, so colour is optional."""

UNENCRYPTED = "unencrypted"
"""The state of a message that went in clear (an XMPP link-local chat, docs/protocol.md
§18): it carries :data:`UNENCRYPTED_MARK` whichever way it went."""
UNENCRYPTED_MARK = "not encrypted"

# An older page is read when the top of the view comes this close to the first loaded
# line, so that it is usually there before the reader reaches the top.
_NEAR_TOP = 3
_TIME_WIDTH = 6  # "HH:MM "
_GAP = 2  # between the name column and the text
_MIN_NAME = 3
_MAX_NAME = 16
_NARROW_NAME = 8  # the name column a narrow pane still gives (if the names need it)
_MIN_TEXT = 10
# Every line keeps a column for the widest mark, even incoming ones: the text wraps
# the same whatever the state, so a receipt never changes a message's height (and
# set_state never has to re-lay out), and the marks line up.
_MARK_COLUMN = 1 + max(cell_len(mark) for mark in MARKS.values())
_UNENCRYPTED_COLUMN = 1 + cell_len(UNENCRYPTED_MARK)
# How far back reveal() pages to find a message (a search result): 10,000 messages.
_REVEAL_PAGES = 50

# Fixed names, not strftime: the UI speaks English whatever the process locale says.
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

# Readable on dark and light themes; own messages use the theme's accent instead.
_PALETTE = (
    "#e5a50a",
    "#3584e4",
    "#c061cb",
    "#26a269",
    "#e66100",
    "#2ec27e",
    "#f66151",
    "#1c9fb0",
)

# C0/C1 controls (an ESC would let a peer restyle or rewrite the terminal) and the bidi
# embeddings, overrides and isolates (they can make text display in a misleading order).
# Newlines are kept: they are split on before this is applied.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_TOKEN = re.compile(r"\S+\s*|\s+")


def _plain(text: str) -> str:
    """``text`` made safe to put on the terminal as it is (newlines kept)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return "\n".join(_UNSAFE.sub("\ufffd", line) for line in text.split("\n"))


def _wrap(text: str, width: int) -> list[str]:
    """Word-wrap ``text`` to ``width`` cells: newlines kept, overlong words folded."""
    width = max(1, width)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        used = 0
        for token in _TOKEN.findall(paragraph):
            word = token.rstrip()
            size = cell_len(word)
            if used + size <= width:
                # Trailing spaces may run past the width; they are trimmed when the
                # line ends, so they never push a word onto a line of its own.
                line += token
                used += cell_len(token)
                continue
            if line:
                lines.append(line.rstrip())
                line, used = "", 0
            if size > width:
                # A word longer than the line (a URL, a key): fold it.
                *full, word = chop_cells(word, width)
                lines.extend(full)
                size = cell_len(word)
            line = word + token[len(token.rstrip()) :]
            used = size + (cell_len(token) - cell_len(token.rstrip()))
        lines.append(line.rstrip())
    return lines


def _fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


class Pages(Protocol):
    """Where the pane reads its pages (the command layer's history reads): the last
    ``limit`` messages, or the ``limit`` before the message ``before``, oldest first;
    and the conversation's notices placed among the messages of a page."""

    def history(
        self, peer: bytes, *, limit: int = ..., before: bytes | None = ...
    ) -> list[StoredMessage]: ...

    def room_history(
        self, room_id: bytes, *, limit: int = ..., before: bytes | None = ...
    ) -> list[RoomMessage]: ...

    def notices(
        self, conversation: bytes, *, from_clock: int | None = ..., below_clock: int | None = ...
    ) -> list[Notice]: ...

    def placed_transfers(
        self, peer: bytes, *, from_clock: int | None = ..., below_clock: int | None = ...
    ) -> list[FileTransfer]: ...

    def room_transfers(
        self, room_id: bytes, *, from_clock: int | None = ..., below_clock: int | None = ...
    ) -> list[FileTransfer]: ...


def _local_time(message: StoredMessage) -> datetime:
    # sent_at comes from the sender's clock; a garbage value must not break the pane,
    # so it falls back to our own arrival time.
    for ms in (message.sent_at, message.received_at):
        try:
            return datetime.fromtimestamp(ms / 1000)
        except (OverflowError, OSError, ValueError):
            continue
    return datetime.fromtimestamp(0)


def _day_label(day: date, today: date) -> str:
    label = f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]}"
    return label if day.year == today.year else f"{label} {day.year}"


def room_message_as_stored(row: RoomMessage, me: bytes) -> StoredMessage:
    """A room message in the shape the pane draws: the room is the "peer", the author
    the sender; room messages have no delivery marks (state "")."""
    return StoredMessage(row.seq, row.msg_id, row.room_id, row.author, row.author == me,
                         row.clock, row.sent_at, row.received_at, row.text, "",
                         row.action, row.topic)  # fmt: skip


NOTICE = "notice"
"""The state of a notice shown among the messages (it has no sender)."""
_NOTICE_ID = b"\xff\xff"  # after the messages of the same clock (their ids are random)


def notice_as_stored(notice: Notice) -> StoredMessage:
    """A notice in the shape the pane draws: no sender, state :data:`NOTICE`, placed
    after the messages up to its clock."""
    notice_id = _NOTICE_ID + notice.seq.to_bytes(8, "big")
    return StoredMessage(0, notice_id, notice.conversation, b"", False, notice.clock,
                         notice.at, notice.at, notice.text, NOTICE)  # fmt: skip


FILE = "file"
"""The state of a file offer shown among the messages (drawn from its FileLine)."""
# Before notices of the same clock, after its messages; files of the same clock in the
# order they were offered.
_FILE_ID = b"\xfe"
_FILE_ID_LENGTH = len(_FILE_ID) + 8


def _file_msg_id(row: FileTransfer) -> bytes:
    return _FILE_ID + min(max(0, row.offered_at), 2**64 - 1).to_bytes(8, "big") + row.offer_id


def _offer_of(msg_id: bytes) -> bytes:
    return msg_id[_FILE_ID_LENGTH:]


def file_as_stored(row: FileTransfer, me: bytes) -> StoredMessage:
    """A file offer in the shape the pane draws: its sender, state :data:`FILE`; in a
    room's pane (a file shared there) or its person's."""
    sender = me if row.outgoing else row.peer
    return StoredMessage(0, _file_msg_id(row), row.room_id or row.peer, sender, row.outgoing,
                         row.clock, row.offered_at, row.offered_at, row.name, FILE)  # fmt: skip


def _is_message(message: StoredMessage) -> bool:
    return message.state not in (NOTICE, FILE)


def _order(message: StoredMessage) -> tuple[int, bytes]:
    return (message.clock, message.msg_id)


@dataclass(slots=True)
class _Entry:
    """A loaded message and its drawing at the current width."""

    message: StoredMessage
    time: datetime
    separator: bool = False  # a day separator line comes first
    strips: list[Strip] | None = None
    generation: int = -1  # the view generation the strips were drawn for
    buttons: list[Button] | None = None  # a file's: where its actions are drawn

    @property
    def key(self) -> tuple[int, bytes]:
        return _order(self.message)


class _Styles(NamedTuple):
    base: Style
    time: Style
    name: Style
    own: Style
    separator: Style
    mark: Style
    read: Style
    hint: Style
    found: Style
    mention: Style
    unencrypted: Style


class ConversationView(ScrollView, can_focus=True):
    """The messages of one conversation, newest at the bottom, older pages on demand."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "conversation--time",
        "conversation--name",
        "conversation--own",
        "conversation--separator",
        "conversation--mark",
        "conversation--read",
        "conversation--hint",
        "conversation--found",
        "conversation--mention",
        "conversation--button",
        "conversation--title",
        "conversation--unencrypted",
    }

    class FileClicked(Message):
        """An action of a file line was clicked."""

        def __init__(self, offer_id: bytes, action: FileAction) -> None:
            super().__init__()
            self.offer_id = offer_id
            self.action = action

    DEFAULT_CSS = """
    ConversationView {
        overflow-x: hidden;
        overflow-y: auto;
        /* The wrap width must not depend on whether the scrollbar shows (it shows
           because of the wrapping): keep its column always. */
        scrollbar-gutter: stable;
    }
    ConversationView > .conversation--time { color: $text-muted; }
    ConversationView > .conversation--name { text-style: bold; }
    ConversationView > .conversation--own { color: $accent; text-style: bold; }
    ConversationView > .conversation--separator { color: $text-muted; }
    ConversationView > .conversation--mark { color: $text-muted; }
    ConversationView > .conversation--read { color: $accent; text-style: bold; }
    ConversationView > .conversation--hint { color: $text-muted; text-style: italic; }
    ConversationView > .conversation--found { background: $accent 30%; }
    ConversationView > .conversation--mention { color: $warning; text-style: bold; }
    ConversationView > .conversation--button { background: $primary 60%; text-style: bold; }
    ConversationView > .conversation--title { text-style: bold; }
    ConversationView > .conversation--unencrypted { color: $warning; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("pageup", "page_up", "Scroll up", show=False),
        Binding("pagedown", "page_down", "Scroll down", show=False),
        Binding("home", "scroll_home", "Older messages", show=False),
        Binding("end,ctrl+end", "scroll_end", "Newest message", show=False),
    ]

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._pages: Pages | None = None
        self._room = False
        self._mark_column = _MARK_COLUMN
        self._me = b""
        self._peer: bytes | None = None
        self._name_of: Callable[[bytes], str] = lambda key: key.hex()[:8]
        self._names: dict[bytes, str] = {}
        self._name_width = _MIN_NAME
        self._entries: list[_Entry] = []
        self._by_id: dict[bytes, _Entry] = {}
        # _starts[i] is the first line of entry i's block; the last item is the total.
        self._starts: list[int] = [0]
        self._wrap_width = 0  # the width the layout was made for; 0: not laid out yet
        self._view_height = 0  # the viewport height at that time
        self._generation = 0  # bumped when every cached strip goes stale
        self._separators: dict[date, Strip] = {}
        self._style_cache: _Styles | None = None
        self._has_more = False  # the store may hold messages older than the first loaded
        self._loading = False
        self._end_pending = False  # show() ran before the view had a size
        self._found: bytes | None = None  # the message reveal() marked (a search result)
        self.files: Transfers | None = None  # the window's transfers (file lines drawn)

    # --- the interface the app uses -------------------------------------------------

    @property
    def peer(self) -> bytes | None:
        return self._peer

    @property
    def loaded_count(self) -> int:
        return len(self._entries)

    def show(
        self,
        pages: Pages,
        me: bytes,
        peer: bytes | None,
        name_of: Callable[[bytes], str],
        *,
        room: bool = False,
        people: Iterable[bytes] = (),
        unencrypted: bool = False,
    ) -> None:
        """Show the conversation with ``peer`` (its newest page), scrolled to the end.
        ``room``: ``peer`` is a room id, and the page comes from the room's messages;
        ``people``: the room's members, whose names the name column fits;
        ``unencrypted``: a chat in clear, whose every message says so (its state is
        :data:`UNENCRYPTED`)."""
        self._pages, self._me, self._peer, self._name_of = pages, me, peer, name_of
        self._room = room
        self._mark_column = _UNENCRYPTED_COLUMN if unencrypted else _MARK_COLUMN
        self._found = None
        self._names = {}
        page = [] if peer is None else self._page(None)
        self._has_more = len(page) == PAGE
        if peer is not None:
            page = sorted(self._without_shared(page) + self._notices(page, None), key=_order)
        self._entries = [_Entry(message, _local_time(message)) for message in page]
        self._by_id = {entry.message.msg_id: entry for entry in self._entries}
        self._mark_separators(0, len(self._entries))
        # The name column fits both parties, or in a room every member and every author
        # loaded (up to _MAX_NAME: longer names are cut).
        if room:
            parties = [me, *people, *(entry.message.sender for entry in self._entries)]
        else:
            parties = [me] if peer is None else [me, peer]
        widest = max(cell_len(self._display_name(party)) for party in parties)
        self._name_width = min(max(widest, _MIN_NAME), _MAX_NAME)
        self._generation += 1
        self._separators.clear()
        if self._laid_out_width():
            self._layout()
            self._jump(self.max_scroll_y)
        else:
            # Hidden (the system conversation is open) or not yet laid out: forget the
            # old layout, which was of other messages, so that nothing reads it; the
            # next resize (being shown again) lays these out.
            self._wrap_width = 0
            self._starts = [0]
            self._end_pending = True
        self.refresh()

    def _page(self, before: StoredMessage | None) -> list[StoredMessage]:
        """The newest page, or the page just older than ``before`` (a loaded message)."""
        assert self._pages is not None and self._peer is not None
        anchor = None if before is None else before.msg_id
        if self._room:
            rows = self._pages.room_history(self._peer, limit=PAGE, before=anchor)
            return [room_message_as_stored(row, self._me) for row in rows]
        return self._pages.history(self._peer, limit=PAGE, before=anchor)

    def _notices(self, page: list[StoredMessage], below: int | None) -> list[StoredMessage]:
        """The notices placed among the messages of ``page`` (the page just older than
        the clock ``below``, or the newest)."""
        assert self._pages is not None and self._peer is not None
        start = page[0].clock if page and self._has_more else None
        found = self._pages.notices(self._peer, from_clock=start, below_clock=below)
        shown = [notice_as_stored(notice) for notice in found]
        if self._room:
            rows = self._pages.room_transfers(self._peer, from_clock=start, below_clock=below)
        else:
            rows = self._pages.placed_transfers(self._peer, from_clock=start, below_clock=below)
        shown += [file_as_stored(row, self._me) for row in rows]
        return shown

    def _without_shared(self, page: list[StoredMessage]) -> list[StoredMessage]:
        """A room page without the messages that share files: each is shown as its file
        line (from _notices) instead."""
        if not self._room or not page or self._pages is None or self._peer is None:
            return page
        shared = {row.offer_id for row in self._pages.room_transfers(
            self._peer, from_clock=page[0].clock, below_clock=page[-1].clock + 1)}  # fmt: skip
        return [message for message in page if message.msg_id not in shared]

    def file_changed(self, row: FileTransfer) -> None:
        """A file offer of this conversation is new or moved: shown, or redrawn."""
        entry = self._by_id.get(_file_msg_id(row))
        if entry is None:
            self.add(file_as_stored(row, self._me))
            return
        entry.strips = None
        if not self._wrap_width:
            return
        at_end = self.is_vertical_scroll_end
        before = self._starts[-1]
        self._reindex()  # a file line changes height (buttons go, a picture comes)
        if at_end:
            self._jump(self.max_scroll_y)
        elif self._starts[self._index_of(entry)] < self.scroll_offset.y:
            self._jump(self.scroll_offset.y + self._starts[-1] - before)
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        line_no = event.y + self.scroll_offset.y
        if not self._entries or not 0 <= line_no < self._starts[-1]:
            return
        index = bisect_right(self._starts, line_no) - 1
        entry = self._entries[index]
        row = line_no - self._starts[index] - int(entry.separator)
        for button in entry.buttons or ():
            if button.row == row and button.start <= event.x < button.end:
                event.stop()
                offer_id = _offer_of(entry.message.msg_id)
                self.post_message(self.FileClicked(offer_id, button.action))
                return

    def add(self, message: StoredMessage) -> None:
        """A new message: shown in its place if it belongs to this conversation."""
        if self._peer is None or message.peer != self._peer:
            return
        known = self._by_id.get(message.msg_id)
        if known is not None:
            if known.message.state != message.state:
                self.set_state(message.msg_id, message.state)
            return
        index = bisect_right(self._entries, _order(message), key=lambda entry: entry.key)
        if index == 0 and self._has_more:
            # Older than everything loaded while older pages remain: it is in the store,
            # and the page load that reaches its place will bring it.
            return
        at_end = self.is_vertical_scroll_end
        renamed = self._room and self._renamed(message.sender)
        widened = self._widen_names_for(message.sender)
        if widened or renamed:
            # Someone new writes in a room (joined after it was opened): every line is
            # redrawn with the wider name column, rather than cutting their name. Or a
            # member we knew only by id said its nick (docs/protocol.md §15.2).
            self._generation += 1
        entry = _Entry(message, _local_time(message))
        self._entries.insert(index, entry)
        self._by_id[message.msg_id] = entry
        self._mark_separators(index, index + 2)
        if not self._wrap_width:
            return
        top = self.scroll_offset.y
        inserted_above = self._starts[index] < top  # _starts still has the old layout
        before = self._starts[-1]
        if index == len(self._entries) - 1 and not widened:
            # The usual case: appended; extend the line index instead of rebuilding it.
            self._starts.append(self._starts[-1] + self._block_height(entry))
            self.virtual_size = Size(self._wrap_width, self._starts[-1])
        else:
            self._reindex()
        if at_end:
            self._jump(self.max_scroll_y)
        elif inserted_above:
            # A late message landed above the view: keep the visible lines where they are.
            self._jump(top + self._starts[-1] - before)
        self.refresh()

    def _name_column(self, width: int) -> int:
        """The name column at ``width``: the widest name, but at most a quarter of a
        narrow pane (weechat's prefix_align_max), so that the text keeps its room."""
        return min(self._name_width, max(_NARROW_NAME, width // 4))

    def _renamed(self, sender: bytes) -> bool:
        """Whether ``sender``'s name changed since its lines were drawn (kept if so)."""
        old = self._names.get(sender)
        if old is None or not sender:
            return False
        new = self._fresh_name(sender)
        if new == old:
            return False
        self._names[sender] = new
        return True

    def _widen_names_for(self, sender: bytes) -> bool:
        """Widen the name column of a room to fit ``sender`` (up to _MAX_NAME); True if
        it changed."""
        if not self._room or not sender:  # a notice has no sender
            return False
        wanted = min(cell_len(self._display_name(sender)), _MAX_NAME)
        if wanted <= self._name_width:
            return False
        self._name_width = wanted
        return True

    def reveal(self, msg_id: bytes) -> bool:
        """Bring the message ``msg_id`` into view and mark it (a search result), loading
        older pages as far as needed (up to 10,000 messages back). False if it is not in
        this conversation, or further back than that."""
        for _ in range(_REVEAL_PAGES):
            if msg_id in self._by_id or not self._has_more:
                break
            self._load_older(anywhere=True)
        entry = self._by_id.get(msg_id)
        if entry is None:
            return False
        self._found = msg_id
        entry.strips = None
        if self._wrap_width:
            # A third of the way down: the lines before it give its context.
            top = self._starts[self._index_of(entry)] - self.scrollable_content_region.height // 3
            self._end_pending = False
            self._jump(max(0, top))
        self.refresh()
        return True

    def set_state(self, msg_id: bytes, state: str) -> None:
        """Change the delivery mark of a loaded message (others are ignored)."""
        entry = self._by_id.get(msg_id)
        if entry is None or entry.message.state == state:
            return
        entry.message = replace(entry.message, state=state)
        # Same height by construction (the mark column is always reserved): only this
        # message's strips are redrawn.
        entry.strips = None
        self.refresh()

    # --- keys ------------------------------------------------------------------------

    def action_page_up(self) -> None:
        # Not animated: an animation still running when an older page is prepended
        # would carry on towards a position that no longer means the same lines.
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def action_scroll_home(self) -> None:
        """Go to the top of what is loaded, which loads the previous page (place kept)."""
        self._jump(0)

    def action_scroll_end(self) -> None:
        self._jump(self.max_scroll_y)

    # --- Textual hooks ----------------------------------------------------------------

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= _NEAR_TOP and self._has_more and not self._loading:
            self._loading = True
            # Not from inside the watcher: loading moves scroll_y again.
            self.call_later(self._load_older)

    def on_resize(self, event: events.Resize) -> None:
        width = self._laid_out_width()
        if not width:
            return
        at_end = self._end_pending or self._was_at_end()
        anchor = None if at_end else self._top_anchor()
        self._end_pending = False
        if width != self._wrap_width:
            if at_end and len(self._entries) > PAGE:
                # Re-wrapping costs a little per loaded message; a reader at the end only
                # needs the newest page (older ones load again, cheaply, on the way up).
                for entry in self._entries[:-PAGE]:
                    del self._by_id[entry.message.msg_id]
                del self._entries[:-PAGE]
                self._has_more = True
                self._mark_separators(0, 1)
            # Re-wrap everything loaded: the total height must be right for the scrollbar.
            self._generation += 1
            self._separators.clear()
            self._layout()
        else:
            self._view_height = self.scrollable_content_region.height
        if at_end or anchor is None:
            self._jump(self.max_scroll_y)
        else:
            # Keep the line that was at the top at the top (or its message, if it now
            # wraps to fewer lines).
            entry, offset = anchor
            index = self._index_of(entry)
            block = self._block_height(entry)
            self._jump(self._starts[index] + min(offset, block - 1))
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # Theme or CSS changed: redraw with the new colours (heights do not change).
        self._style_cache = None
        self._generation += 1
        self._separators.clear()

    def render_line(self, y: int) -> Strip:
        styles = self._styles()
        width = self.scrollable_content_region.width
        if not self._entries:
            if y == self.size.height // 2:
                hint = HINT_NO_PEER if self._peer is None else HINT_EMPTY
                line = Strip([Segment(_fit(hint, min(width, cell_len(hint))), styles.hint)])
                return line.text_align(width, "center").apply_style(styles.base)
            return Strip.blank(width, styles.base)
        line_no = y + self.scroll_offset.y
        if width != self._wrap_width or not 0 <= line_no < self._starts[-1]:
            return Strip.blank(width, styles.base)
        index = bisect_right(self._starts, line_no) - 1
        entry = self._entries[index]
        offset = line_no - self._starts[index]
        if entry.separator:
            if offset == 0:
                return self._separator(entry.time.date())
            offset -= 1
        return self._strips(entry)[offset]

    # --- paging ------------------------------------------------------------------------

    def _load_older(self, *, anywhere: bool = False) -> None:
        """Prepend the page before the first loaded message, keeping the view on the same
        lines; ``anywhere``: wherever the view is (else only near the top)."""
        try:
            if not (self._has_more and self._entries and self._pages and self._peer):
                return
            if self.scroll_offset.y > _NEAR_TOP and not anywhere:
                return  # the reader moved away (or the conversation changed) meanwhile
            anchor = next(e.message for e in self._entries if _is_message(e.message))
            page = self._page(anchor)
            self._has_more = len(page) == PAGE
            page = sorted(self._without_shared(page) + self._notices(page, anchor.clock),
                          key=_order)  # fmt: skip
            fresh = [
                _Entry(message, _local_time(message))
                for message in page
                if message.msg_id not in self._by_id
            ]
            if not fresh:
                return
            # Stop any scroll animation where it is headed, so the shift below applies to
            # where the view really is.
            self.app.animator.force_stop_animation(self, "scroll_y")
            old_first = self._entries[0]
            old_first_height = self._starts[1] - self._starts[0]
            self._entries[:0] = fresh
            self._by_id.update((entry.message.msg_id, entry) for entry in fresh)
            self._mark_separators(0, len(fresh) + 1)
            if not self._wrap_width:
                return  # laid out in full once the view has a size
            # Only the new page is wrapped; the lines already loaded all move down by the
            # same amount (less a day separator that went away when the new page ends on
            # the same day), so the line index is shifted rather than rebuilt: a page
            # costs the same with 200 or 100,000 messages loaded.
            head = [0, *accumulate(self._block_height(entry) for entry in fresh)]
            shift = head[-1] + self._block_height(old_first) - old_first_height
            self._starts = head + [start + shift for start in self._starts[1:]]
            self.virtual_size = Size(self._wrap_width, self._starts[-1])
            # Follow the lines that were on screen.
            self._jump(self.scroll_offset.y + shift)
            self.refresh()
        finally:
            self._loading = False

    # --- layout ------------------------------------------------------------------------

    def _jump(self, y: int) -> None:
        # force: whether the view may scroll (has a scrollbar) is only worked out at the
        # next layout, and the content has usually just grown.
        self.scroll_to(y=y, animate=False, force=True)

    def _laid_out_width(self) -> int:
        return self.scrollable_content_region.width if self.is_mounted else 0

    def _layout(self) -> None:
        """Lay out every loaded message at the current width."""
        self._wrap_width = self.scrollable_content_region.width
        self._view_height = self.scrollable_content_region.height
        self._reindex()

    def _reindex(self) -> None:
        heights = (self._block_height(entry) for entry in self._entries)
        self._starts = [0, *accumulate(heights)]
        self.virtual_size = Size(self._wrap_width, self._starts[-1])

    def _was_at_end(self) -> bool:
        # Judged against the layout before the resize: max_scroll_y already uses the
        # new viewport.
        return self.scroll_offset.y >= self._starts[-1] - self._view_height

    def _top_anchor(self) -> tuple[_Entry, int] | None:
        line_no = self.scroll_offset.y
        if not self._entries or not 0 <= line_no < self._starts[-1]:
            return None
        index = bisect_right(self._starts, line_no) - 1
        return self._entries[index], line_no - self._starts[index]

    def _index_of(self, entry: _Entry) -> int:
        return bisect_right(self._entries, entry.key, key=lambda e: e.key) - 1

    def _mark_separators(self, start: int, stop: int) -> None:
        entries = self._entries
        for index in range(max(start, 0), min(stop, len(entries))):
            entry = entries[index]
            separator = index == 0 or entry.time.date() != entries[index - 1].time.date()
            if separator != entry.separator:
                entry.separator = separator

    def _block_height(self, entry: _Entry) -> int:
        return int(entry.separator) + len(self._strips(entry))

    # --- drawing -----------------------------------------------------------------------

    def _styles(self) -> _Styles:
        if self._style_cache is None:
            get = self.get_component_rich_style
            self._style_cache = _Styles(
                base=self.rich_style,
                time=get("conversation--time"),
                name=get("conversation--name"),
                own=get("conversation--own"),
                separator=get("conversation--separator"),
                mark=get("conversation--mark"),
                read=get("conversation--read"),
                hint=get("conversation--hint"),
                found=get("conversation--found"),
                mention=get("conversation--mention"),
                unencrypted=get("conversation--unencrypted"),
            )
        return self._style_cache

    def _display_name(self, key: bytes) -> str:
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self._fresh_name(key)
        return name

    def _fresh_name(self, key: bytes) -> str:
        return _plain(self._name_of(key)).replace("\n", " ")

    def _separator(self, day: date) -> Strip:
        strip = self._separators.get(day)
        if strip is None:
            styles = self._styles()
            label = f" {_day_label(day, date.today())} "
            rule = max(0, self._wrap_width - cell_len(label))
            text = "─" * (rule // 2) + label + "─" * (rule - rule // 2)
            strip = Strip([Segment(text, styles.separator)]).adjust_cell_length(
                self._wrap_width, styles.base
            )
            self._separators[day] = strip
        return strip

    def _strips(self, entry: _Entry) -> list[Strip]:
        if entry.strips is None or entry.generation != self._generation:
            entry.strips = self._draw(entry)
            entry.generation = self._generation
        return entry.strips

    def _draw(self, entry: _Entry) -> list[Strip]:
        """The lines of one message at the current width (without its day separator)."""
        message = entry.message
        styles = self._styles()
        width = self._wrap_width
        name_width = self._name_column(width)
        indent = _TIME_WIDTH + name_width + _GAP
        if message.state == NOTICE:
            return self._draw_notice(entry, name_width)
        if message.state == FILE:
            return self._draw_file(entry, name_width)
        # Room messages carry no delivery marks, so rooms keep no column for them.
        text_width = max(_MIN_TEXT, width - indent - (0 if self._room else self._mark_column))
        name = self._display_name(message.sender)
        # An action (/me) reads as in IRC: "*" in the name column, "alice waves" beside it.
        text = f"{name} {message.text}" if message.action else message.text
        if message.topic:
            text = f"{name} set the topic: {message.text}"
        lines = _wrap(_plain(text), text_width)
        shown_name = "*" if message.action or message.topic else name
        own = message.outgoing or message.sender == self._me
        if own:
            name_style = styles.own
        else:
            colour = _PALETTE[zlib.crc32(message.sender) % len(_PALETTE)]
            name_style = styles.name + Style(color=colour)
        base = styles.base
        text_style = base
        if not own and mentions(message.text, self._display_name(self._me)):
            # Names you: the name in reverse and the text bold (weechat's highlight).
            name_style += Style(reverse=True)
            text_style = base + styles.mention
        first: list[Segment] = [
            Segment(entry.time.strftime("%H:%M") + " ", styles.time),
            Segment(_fit(shown_name, name_width), name_style),
            Segment(" " * _GAP, base),
            Segment(set_cell_size(lines[0], text_width), text_style),
        ]
        if message.state == UNENCRYPTED:
            first += [Segment(" ", base), Segment(UNENCRYPTED_MARK, styles.unencrypted)]
        elif message.outgoing:
            mark = MARKS.get(message.state, "")
            style = styles.read if message.state == "read" else styles.mark
            first += [Segment(" ", base), Segment(mark, style)]
        strips = [Strip(first).adjust_cell_length(width, base)]
        pad = Segment(" " * indent, base)
        strips += (
            Strip([pad, Segment(line, text_style)]).adjust_cell_length(width, base)
            for line in lines[1:]
        )
        if message.msg_id == self._found:
            # Over every segment's own background (the base style has one), colours kept.
            marked = Style(bgcolor=styles.found.bgcolor)
            strips = [
                Strip(Segment.apply_style(strip, post_style=marked), strip.cell_length)
                for strip in strips
            ]
        return strips

    def _draw_file(self, entry: _Entry, name_width: int) -> list[Strip]:
        """A file: who offered it, its name and size, where it stands, its actions
        (clickable) and, for a picture, a preview."""
        message = entry.message
        line = None if self.files is None else self.files.line(_offer_of(message.msg_id))
        if line is None:
            entry.buttons = []
            return self._draw_notice(entry, name_width)
        styles = self._styles()
        own = message.outgoing
        name_style = (
            styles.own
            if own
            else styles.name + Style(color=_PALETTE[zlib.crc32(message.sender) % len(_PALETTE)])
        )
        head = [
            Segment(entry.time.strftime("%H:%M") + " ", styles.time),
            Segment(_fit(self._display_name(message.sender), name_width), name_style),
            Segment(" " * _GAP, styles.base),
        ]
        indent = _TIME_WIDTH + name_width + _GAP
        text_width = max(_MIN_TEXT, self._wrap_width - indent)
        picture = None
        if self.files is not None and line.is_image:
            picture = self.files.picture(line, min(text_width, 48), 28)
        strips, entry.buttons = draw_file(
            line, head, indent, self._wrap_width, picture,
            base=styles.base, title=styles.base + self.get_component_rich_style(
                "conversation--title"), hint=styles.hint,
            button=self.get_component_rich_style("conversation--button"),
        )  # fmt: skip
        return strips

    def _draw_notice(self, entry: _Entry, name_width: int) -> list[Strip]:
        """A notice: its time, "--" in the name column, the text in the muted style."""
        indent = _TIME_WIDTH + name_width + _GAP
        styles = self._styles()
        width, base = self._wrap_width, styles.base
        lines = _wrap(_plain(entry.message.text), max(_MIN_TEXT, width - indent))
        first = [
            Segment(entry.time.strftime("%H:%M") + " ", styles.time),
            Segment("--".rjust(name_width), styles.separator),
            Segment(" " * _GAP, base),
            Segment(lines[0], styles.hint),
        ]
        pad = Segment(" " * indent, base)
        strips = [Strip(first).adjust_cell_length(width, base)]
        strips += (
            Strip([pad, Segment(line, styles.hint)]).adjust_cell_length(width, base)
            for line in lines[1:]
        )
        return strips
