"""300 fresh identities hold sessions, each from a loopback address of its own (so a
per-address cap alone cannot help), refreshed by an empty ChatReceipt every 3 s.

Bounds (the issue's target): a contact's message is delivered within 5 s, and the victim
can still dial a contact: its user writes to one that has no session, and the message
arrives within 5 s.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from tests.adversary.bounds import CONTACT_WITHIN, STRANGERS
from tests.adversary.client import ContactListener, identity
from tests.adversary.daemon import Daemon
from tests.adversary.scenarios import know_contact, strangers_hold_slots


async def test_strangers_holding_every_slot_do_not_cut_off_contacts(
    daemons: Callable[..., Daemon],
) -> None:
    carol = ContactListener(identity())
    async with trio.open_nursery() as nursery:
        await nursery.start(carol.serve)
        # Started from a thread: carol must answer the victim's first dial meanwhile.
        victim = await trio.to_thread.run_sync(daemons, "victim", "--peer", carol.address)
        victim.add_contact(carol.identity.peer_id)
        await know_contact(victim, carol)

        result = await strangers_hold_slots(
            victim, carol, strangers=STRANGERS, within=2 * CONTACT_WITHIN
        )
        nursery.cancel_scope.cancel()

    assert result.held.opened >= 200, f"the attack did not take hold: {result}"
    assert result.alive
    assert result.contact_in_s is not None and result.contact_in_s <= CONTACT_WITHIN, result
    assert result.contact_out_s is not None and result.contact_out_s <= CONTACT_WITHIN, result
