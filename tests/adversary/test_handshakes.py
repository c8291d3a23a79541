"""64 TCP connections that never send a byte, re-opened as soon as the victim drops
them, hold the inbound handshake slots.

Bound (the issue's target): at least 9 of 10 real handshakes (from 127.0.0.1) succeed
within 2 s each; a success is a session that answers a Ping. Twice: the silent sockets
all from one address (what a per-address limit stops), and each from an address of its
own (what only dropping the oldest pending handshake, not the newest, gets past: every
drop makes a silent socket come back at once).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.adversary.bounds import (
    HANDSHAKE_WITHIN,
    HANDSHAKES_NEEDED,
    REAL_HANDSHAKES,
    SILENT_SOCKETS,
)
from tests.adversary.daemon import Daemon
from tests.adversary.scenarios import silent_sockets_hold_handshakes


@pytest.mark.parametrize("addresses", [1, SILENT_SOCKETS], ids=["one-address", "many-addresses"])
async def test_silent_sockets_do_not_block_real_handshakes(
    daemons: Callable[..., Daemon], addresses: int
) -> None:
    victim = daemons("victim")
    result = await silent_sockets_hold_handshakes(
        victim,
        sockets=SILENT_SOCKETS,
        addresses=addresses,
        handshakes=REAL_HANDSHAKES,
        within=HANDSHAKE_WITHIN,
    )
    assert result.silent.opened >= SILENT_SOCKETS, f"the attack did not take hold: {result}"
    assert victim.alive()
    assert result.succeeded >= HANDSHAKES_NEEDED, result
