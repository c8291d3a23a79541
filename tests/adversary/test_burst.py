"""A contact writes 300 messages in the same socket write as handshake message 3.

The victim then finds, in one read, the end of the handshake and more messages than its
receive queue holds (256). Bound: all 300 are stored and acknowledged, the session is not
dropped (it answers a Ping afterwards) and no Close is sent.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.adversary.bounds import BURST
from tests.adversary.daemon import Daemon
from tests.adversary.scenarios import burst_with_message_3


async def test_a_burst_with_handshake_message_3_is_all_stored(
    daemons: Callable[..., Daemon],
) -> None:
    victim = daemons("victim")
    result = await burst_with_message_3(victim, BURST, together=True)
    assert (result.stored, result.acked) == (BURST, BURST), result
    assert not result.closed and result.close_code is None, result
    assert result.answered_ping, result
    assert victim.alive()
