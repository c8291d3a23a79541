"""``p2pchat daemon --json`` whose stdout nobody reads (its pipe shrunk to one page, so
a few events fill it).

Bound: the node keeps serving: once the pipe is full, its control socket answers within
5 s, and a contact's messages (300 ``message`` events that cannot be written, then ten
more) are all acknowledged and stored.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.adversary.bounds import BURST, CONTACT_WITHIN
from tests.adversary.daemon import Daemon
from tests.adversary.scenarios import contact_floods_unread_stdout

PIPE_BYTES = 4096


async def test_an_unread_stdout_does_not_freeze_the_node(daemons: Callable[..., Daemon]) -> None:
    victim = daemons("victim", read_stdout=False, pipe_bytes=PIPE_BYTES)
    result = await contact_floods_unread_stdout(victim, BURST, within=CONTACT_WITHIN)
    assert result.blocked and result.unread > 0, f"stdout never filled: {result}"
    assert result.control_s is not None and result.control_s <= CONTACT_WITHIN, result
    assert (result.acked, result.stored) == (result.sent, result.sent), result
    assert result.alive
