"""The command palette (Ctrl+K / Ctrl+P): conversations and actions, found by typing."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.markup import escape

from p2pchat.ui.people import PRESENCE_MARKS, Section

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

Item = tuple[str, Callable[[], object], str]  # what is shown, what it does, a help line


def palette_items(app: ChatApp) -> list[Item]:
    """Everything the palette offers, conversations first (the quick switcher)."""
    items: list[Item] = []
    for entry in app.entries:
        if entry.section is Section.ROOMS:
            action = partial(app.run_line, f"/join {entry.peer_id}")
            items.append((f"{entry.mark} {entry.name}", action, "open or join the room"))
            continue
        mark = (
            PRESENCE_MARKS.get(entry.status, "○") if entry.section is not Section.REQUESTS else "?"
        )
        items.append(
            (f"{mark} {entry.name}", partial(app.open_conversation, entry.peer_id),
             f"open the conversation ({entry.section.value.lower()})")
        )  # fmt: skip
    for entry in app.entries:
        if entry.section is Section.ROOMS:
            continue
        if entry.section is Section.REQUESTS:
            items.append((f"Accept {entry.name}", partial(app.run_line, f"/accept {entry.peer_id}"),
                          "make this stranger a contact"))  # fmt: skip
        if not entry.blocked:
            items.append((f"Block {entry.name}", partial(app.run_line, f"/block {entry.peer_id}"),
                          "refuse this identity"))  # fmt: skip
        else:
            items.append((f"Unblock {entry.name}",
                          partial(app.run_line, f"/unblock {entry.peer_id}"),
                          "accept this identity again"))  # fmt: skip
        items.append((f"Verify {entry.name}", partial(app.run_line, f"/verify {entry.peer_id}"),
                      "compare safety numbers"))  # fmt: skip
    for word, status in (("available", "avail"), ("away", "away"), ("busy", "dnd")):
        items.append((f"Status: {word}", partial(app.run_line, f"/status {status}"),
                      "what others see next to your name"))  # fmt: skip
    items += [
        ("New conversation", partial(app.prefill, "/msg "), "type a nick or a peer id"),
        ("Change nickname", partial(app.prefill, "/nick "), "what others see"),
        ("Connect with a code", partial(app.prefill, "/connect "), "paste an invite code"),
        ("Invite code", partial(app.run_line, "/invite"), "a code for people mDNS cannot reach"),
        ("Peers", partial(app.run_line, "/peers"), "who is around"),
        (
            "System",
            app.action_open_system,
            "command output, network notes, errors (F2); /find TEXT searches",
        ),
        ("Help", app.action_help, "commands and keys"),
        # No "Quit": a switcher whose best match for an unknown name could end the app
        # is a trap (Ctrl+K, q, Enter did). Ctrl+Q and /quit quit.
    ]
    return items


class ChatCommands(Provider):
    def _items(self) -> list[Item]:
        from p2pchat.ui.app import ChatApp

        return palette_items(self.app) if isinstance(self.app, ChatApp) else []

    async def discover(self) -> Hits:
        for shown, action, help_text in self._items():
            yield DiscoveryHit(Content(shown), action, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for shown, action, help_text in self._items():
            score = matcher.match(shown)
            if score > 0:
                # Names come from the network: escape them before highlighting.
                yield Hit(score, matcher.highlight(escape(shown)), action, help=help_text)
