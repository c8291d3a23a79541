"""`/network` in the chat window: make a private network, show its code, list, join by
code, leave (docs/protocol.md §17), the running node told at each step."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Static

from p2pchat.networks.keys import Network, network_code
from p2pchat.ui.app import ChatApp
from p2pchat.ui.screens.network_code import NetworkCodeScreen
from p2pchat.ui.screens.verify import qr_lines
from p2pchat.ui.widgets.system_pane import SystemPane
from tests.ui.test_app import (  # noqa: F401  (people is a fixture)
    Person,
    people,
    type_line,
    until,
    with_app,
)


def pane_text(app: ChatApp) -> str:
    return "\n".join(app.query_one(SystemPane).lines)


def test_a_network_is_made_shown_joined_and_left(people: Callable[[str], Person]) -> None:  # noqa: F811
    other = Network("Ship", bytes([6]) * 32)

    async def scenario(app: ChatApp, pilot: Pilot[None]) -> None:
        node = app.node
        assert node is not None
        await type_line(pilot, "/network create Crew")
        await until(pilot, lambda: [n.name for n in node.networks.all()] == ["Crew"], "Crew")
        await type_line(pilot, "/network invite Crew")
        await until(pilot, lambda: isinstance(app.screen, NetworkCodeScreen), "the QR code")
        shown = app.screen
        assert isinstance(shown, NetworkCodeScreen)
        qr = str(shown.query_one("#qr", Static).render())
        assert qr.splitlines() == qr_lines(shown.code)  # the QR code of exactly that code
        assert app.commands.network_code("Crew") == shown.code
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, NetworkCodeScreen), "closed")
        await pilot.press("f2")
        await until(pilot, lambda: "p2pchat-network:" in pane_text(app), "the code")
        await type_line(pilot, f"/network join {network_code(other)}")
        await until(pilot, lambda: len(node.networks.all()) == 2, "Ship joined")
        await type_line(pilot, "/network")
        await until(pilot, lambda: "Private networks (2)" in pane_text(app), "the list")
        await type_line(pilot, "/network leave Crew")
        await until(pilot, lambda: [n.name for n in node.networks.all()] == ["Ship"], "left")
        await type_line(pilot, "/network join p2pchat-network:damaged")
        await until(pilot, lambda: "damaged" in pane_text(app) or _toasted(app, "damaged"),
                    "the refusal")  # fmt: skip

    with_app(people("ann"), scenario)


def _toasted(app: ChatApp, word: str) -> bool:
    return any(word in str(n.message) for n in app._notifications)
