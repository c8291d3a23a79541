"""``/search``: the command and its results dialog, one line per message found, newest
first; Enter opens its conversation at that message (marked), Esc closes."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from p2pchat.commands import Found
from p2pchat.identity import encode_peer_id
from p2pchat.ui.people import counted
from p2pchat.ui.widgets.conversation import ConversationView

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp


def result_line(found: Found) -> Text:
    """``2026-03-12 10:02  #lab  bob: …the soup is ready…``, the matched words bold.
    Names and text come from the network: plain text, one line."""
    when = datetime.fromtimestamp(found.time / 1000).strftime("%Y-%m-%d %H:%M")
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{when}  ", style="dim")
    line.append(_one_line(found.conversation), style="bold")
    line.append(f"  {_one_line(found.author_name)}: ")
    snippet = Text(_one_line(found.snippet))
    for start, end in found.marks:
        snippet.stylize("bold reverse", start, end)
    line.append_text(snippet)
    return line


def _one_line(text: str) -> str:
    # Message text holds no control characters but newlines and tabs (the chat rules).
    return text.replace("\n", " ").replace("\t", " ")


class SearchScreen(ModalScreen[Found | None]):
    """Lists ``results`` of a search for ``query``; dismissed with the one chosen."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    DEFAULT_CSS = """
    SearchScreen {
        align: center middle;
    }
    SearchScreen #dialog {
        width: 100;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    SearchScreen #results {
        height: auto;
        max-height: 1fr;
    }
    SearchScreen #hint {
        color: $text-muted;
    }
    """

    def __init__(self, query: str, results: list[Found]) -> None:
        super().__init__()
        self.search_text = query
        self.results = list(results)

    def compose(self) -> ComposeResult:
        dialog = Vertical(id="dialog")
        # A Text, not a str: a str title is read as markup, and the query is what was typed.
        title = f"{counted(len(self.results), 'message')} with {_one_line(self.search_text)!r}"
        dialog.border_title = Text(title)
        with dialog:
            yield OptionList(
                *(Option(result_line(found), id=str(i)) for i, found in enumerate(self.results)),
                id="results",
            )
            yield Static("Enter opens the conversation at that message; Esc closes.", id="hint")

    def on_mount(self) -> None:
        results = self.query_one("#results", OptionList)
        results.highlighted = 0
        results.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(self.results[int(event.option.id or 0)])

    def action_close(self) -> None:
        self.dismiss(None)


def cmd_search(app: ChatApp, args: str) -> None:
    found = app.commands.search(args)  # a read: the store answers at once
    if not found:
        app.notify(f"No message has {args!r}.")
        return
    app.push_screen(SearchScreen(args, found), lambda chosen: open_found(app, chosen))


def open_found(app: ChatApp, found: Found | None) -> None:
    """Open the conversation of a search result, at that message, marked."""
    if found is None:
        return
    if found.room:
        room = app.commands.stored_room(found.where)
        if room is None or not room.joined:
            app.notify(f"You are no longer in {found.conversation}.", severity="warning")
            return
        app.open_room(found.where.hex())
    else:
        app.open_conversation(encode_peer_id(found.where))
    if not app.query_one(ConversationView).reveal(found.msg_id):
        app.notify("That message is too far back to show here; p2pchat history shows it all.")
