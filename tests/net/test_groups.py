"""A nursery's group becomes the caller's own error, also when a deadline fired with it
(a daemon once died of a dial's ConnectionClosed wrapped beside its tasks' Cancelled)."""

from __future__ import annotations

import pytest
import trio

from p2pchat.errors import ConnectionClosed
from p2pchat.net.groups import raise_sole, sole_error


async def a_cancellation() -> trio.Cancelled:
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as cancelled:
            return cancelled
    raise AssertionError("the checkpoint was not cancelled")


async def test_the_error_beside_cancellations_is_the_sole_error() -> None:
    closed = ConnectionClosed("the peer closed the session", code="duplicate", by_peer=True)
    group = BaseExceptionGroup("nursery", [await a_cancellation(), closed, await a_cancellation()])
    assert sole_error(group) is closed
    with pytest.raises(ConnectionClosed) as raised:
        raise_sole(group)
    assert raised.value is closed


async def test_a_lone_cancellation_is_passed_on() -> None:
    cancelled = await a_cancellation()
    assert sole_error(BaseExceptionGroup("nursery", [cancelled])) is cancelled


def test_two_errors_stay_a_group() -> None:
    group = ExceptionGroup("nursery", [KeyError("a"), ValueError("b")])
    assert sole_error(group) is None
    with pytest.raises(ExceptionGroup):
        raise_sole(group)
