"""A ping whose session is replaced while it waits (crossed dials, a move from Tor to
the LAN) goes again on the session that replaced it; any other close, or a second
replacement, is the caller's to hear."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from p2pchat.errors import ConnectionClosed
from p2pchat.node.node import Node

PEER = bytes(32)


class Session:
    def __init__(self, outcome: float | ConnectionClosed) -> None:
        self.outcome = outcome
        self.pings = 0

    async def ping(self, data: bytes) -> float:
        self.pings += 1
        if isinstance(self.outcome, ConnectionClosed):
            raise self.outcome
        return self.outcome


def node_with(*sessions: Session) -> Any:
    """A stand-in for the node: its link manager hands out ``sessions`` in turn."""
    given = iter(sessions)

    async def session(peer: bytes, within: float) -> Session:
        return next(given)

    return SimpleNamespace(links=SimpleNamespace(session=session))


def replaced() -> ConnectionClosed:
    return ConnectionClosed("replaced by a newer session", by_peer=False, code="duplicate")


async def test_a_ping_goes_again_on_the_session_that_replaced_its_own() -> None:
    old, new = Session(replaced()), Session(0.012)
    assert await Node.ping(cast(Node, node_with(old, new)), PEER) == 0.012
    assert (old.pings, new.pings) == (1, 1)


async def test_a_second_replacement_or_another_close_is_not_hidden() -> None:
    with pytest.raises(ConnectionClosed, match="replaced"):
        await Node.ping(cast(Node, node_with(Session(replaced()), Session(replaced()))), PEER)
    gone = ConnectionClosed("idle", by_peer=True, code="idle-timeout")
    spare = Session(0.5)
    with pytest.raises(ConnectionClosed, match="idle"):
        await Node.ping(cast(Node, node_with(Session(gone), spare)), PEER)
    assert spare.pings == 0


async def test_no_session_is_said_plainly() -> None:
    async def none(peer: bytes, within: float) -> None:
        return None

    stand_in = SimpleNamespace(links=SimpleNamespace(session=none))
    with pytest.raises(ConnectionClosed, match="no session"):
        await Node.ping(cast(Node, stand_in), PEER)
