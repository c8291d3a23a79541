"""Through Tor, a handshake the responder closed before it was done is tried again
(its onion service's handshakes share one address's slots, which a flood churns);
on the LAN the same close is a node that hides from us, and is final."""

from __future__ import annotations

from typing import Any

import pytest

from p2pchat.discovery import dial
from p2pchat.discovery.known import Target
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity

ONION = "a" * 56 + ".onion"


def closing(times: int, then: str | None = "the peer's id") -> tuple[Any, list[Target]]:
    """A probe that closes ``times`` times as a busy responder does, then answers."""
    tried: list[Target] = []

    async def probe(target: Target, *args: Any, **kwargs: Any) -> tuple[str | None, str]:
        tried.append(target)
        if len(tried) <= times:
            raise ConnectionClosed("closed during the handshake", by_peer=True, code="eof")
        return then, "handshake proved the id"

    return probe, tried


async def test_a_handshake_closed_early_through_tor_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    probe, tried = closing(dial.ONION_TRIES - 1)
    monkeypatch.setattr(dial, "probe", probe)
    target = Target(ONION, 7676, source="invite")
    found = await dial._probe_again_through_tor(target, Identity.generate(), None, None)
    assert found == "the peer's id" and len(tried) == dial.ONION_TRIES


async def test_tries_through_tor_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    probe, tried = closing(dial.ONION_TRIES)
    monkeypatch.setattr(dial, "probe", probe)
    with pytest.raises(ConnectionClosed, match="during the handshake"):
        await dial._probe_again_through_tor(Target(ONION, 7676), Identity.generate(), None, None)
    assert len(tried) == dial.ONION_TRIES


async def test_on_the_lan_the_close_is_final(monkeypatch: pytest.MonkeyPatch) -> None:
    probe, tried = closing(1)
    monkeypatch.setattr(dial, "probe", probe)
    with pytest.raises(ConnectionClosed):
        await dial._probe_again_through_tor(
            Target("198.18.0.9", 7483), Identity.generate(), None, None
        )
    assert len(tried) == 1
