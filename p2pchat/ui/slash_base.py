"""What every family of slash commands shares: running a command of the command layer
inside trio and saying how it went (:func:`in_node`), and finding the person a name
or id typed after a command means (:func:`resolve`).

:mod:`p2pchat.ui.slash`, :mod:`p2pchat.ui.slash_rooms` and
:mod:`p2pchat.ui.slash_network` import these. They sit below all three, so the imports
go one way: ``slash`` imports the other two's handlers for its table, and they import
nothing from ``slash``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from p2pchat.commands import CommandError, Commands
from p2pchat.ui.commands import resolve_peer
from p2pchat.ui.people import people_for_lookup

if TYPE_CHECKING:
    from p2pchat.ui.app import ChatApp

T = TypeVar("T")


def in_node(
    app: ChatApp,
    action: Callable[[Commands], T],
    done: str,
    then: Callable[[T], None] | None = None,
) -> None:
    """Run a command inside trio; say ``done`` (or the error) when it ran."""
    commands = app.commands

    def run() -> None:
        try:
            result = action(commands)
        except CommandError as error:  # e.g. an invitation that is refused
            app.notify(str(error), severity="warning")
            return
        if done:
            app.notify(done)
        if then is not None:
            app.call_later(then, result)
        app.call_later(app.refresh_sidebar)

    app.call_in_node(run)


def resolve(app: ChatApp, query: str) -> str:
    return resolve_peer(query, people_for_lookup(app.entries))
