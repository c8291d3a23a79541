"""Strangers holding session slots, in a process of their own.

``python -m tests.adversary.holders PORT COUNT`` runs :func:`attacks.hold_session` from
COUNT loopback addresses against the victim at 127.0.0.1:PORT and prints the counts
(``Held`` as a JSON line) every 0.2 s until it is killed. A process apart, so that
the CPU its hundreds of handshakes take does not slow the honest contact and caller
the test measures with: what is measured is the victim under attack, not the attacker.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import trio

from tests.adversary import attacks
from tests.adversary.client import loopback_addresses

REPORT_EVERY = 0.2


async def main(port: int, count: int) -> None:
    held = attacks.Held()
    async with trio.open_nursery() as nursery:
        for address in loopback_addresses(count):
            nursery.start_soon(attacks.hold_session, port, address, held)
        while True:
            print(json.dumps(dataclasses.asdict(held)), flush=True)
            await trio.sleep(REPORT_EVERY)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]), int(sys.argv[2]))
