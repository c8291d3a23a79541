"""64 TCP connections that never send a byte, each from a loopback address of its own,
re-opened as soon as the victim drops them, hold the inbound handshake slots.

Bound (the issue's target): at least 9 of 10 real handshakes succeed within 2 s each
(a success: the session answers a Ping).
"""

from __future__ import annotations

from collections.abc import Callable

from tests.adversary.bounds import (
    HANDSHAKE_WITHIN,
    HANDSHAKES_NEEDED,
    REAL_HANDSHAKES,
    SILENT_SOCKETS,
)
from tests.adversary.daemon import Daemon
from tests.adversary.scenarios import silent_sockets_hold_handshakes


async def test_silent_sockets_do_not_block_real_handshakes(
    daemons: Callable[..., Daemon],
) -> None:
    victim = daemons("victim")
    result = await silent_sockets_hold_handshakes(
        victim, sockets=SILENT_SOCKETS, handshakes=REAL_HANDSHAKES, within=HANDSHAKE_WITHIN
    )
    assert result.silent.opened >= SILENT_SOCKETS, f"the attack did not take hold: {result}"
    assert victim.alive()
    assert result.succeeded >= HANDSHAKES_NEEDED, result
