"""A stranger with a real session pushes signed fake identities at a real node.

Two nodes on 127.0.0.1 and an attacker that completes a handshake, asks to be the
victim's neighbour (the worst case: its news would be pushed on), answers probes, and
sends `MeshGossip` batches of freshly generated, genuinely signed records. Signing is
slow (~0.3-0.6 ms each here), so it sends 2,000 rather than the issue's 100,000, over
about two seconds; the bound asserted is the same: what the configured rates allow in
the measured time (docs/protocol.md §12.6), at the victim and at its neighbour.
tests/mesh/test_bounds.py pushes 100,000 through the pure core.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
import trio

from p2pchat.chat.gate import Relation
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.mesh.config import MeshConfig
from p2pchat.mesh.presence import make_record
from p2pchat.net.server import open_secure_connection
from p2pchat.node.node import Node, NodeSettings, crashable_node
from p2pchat.store import DATABASE_FILE, open_store
from p2pchat.wire.messages import MeshAck, MeshGossip, MeshNeighbor, MeshPing
from tests.net.test_node import run_crashable, sees, wait_until

FAKES = 2_000


def fakes(node: Node) -> set[bytes]:
    mesh = node.mesh
    assert mesh is not None
    return {m.peer for m in mesh.members if m.record.nick.startswith("fake")}


async def test_a_stranger_pushing_signed_fakes_gets_only_its_budget_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "p2pchat.node")
    records = [make_record(Identity(os.urandom(32)), version=1, nick=f"fake{i}")
               for i in range(FAKES)]  # fmt: skip
    config = MeshConfig()
    async with trio.open_nursery() as nursery:
        victim, _ = await nursery.start(run_crashable, 1)
        neighbour, _ = await nursery.start(run_crashable, 2)
        neighbour.introduce(victim.peer_id, victim.addresses[0])
        await wait_until(
            lambda: neighbour.peer_id in victim.neighbours(), 15, "the two to be neighbours"
        )
        attacker = Identity.generate()
        attacker_id = encode_peer_id(attacker.public_key)
        port = int(victim.addresses[0].rsplit(":", 1)[1])
        async with open_secure_connection("127.0.0.1", port, attacker) as connection:

            async def play_a_live_neighbour() -> None:
                async for message in connection:
                    if isinstance(message, MeshPing):
                        await connection.send(MeshAck(message.seq))

            nursery.start_soon(play_a_live_neighbour)
            await connection.send(MeshNeighbor(urgent=True))
            await wait_until(
                lambda: attacker_id in victim.neighbours(),
                10,
                "the attacker to be a neighbour",
            )
            start = trio.current_time()
            for offset in range(0, FAKES, 256):
                await connection.send(MeshGossip(records=tuple(records[offset : offset + 256])))
                await trio.sleep(0.25)
            # Everything admitted is pushed on at once; wait until the neighbour has it.
            await wait_until(
                lambda: fakes(neighbour) == fakes(victim), 10, "the neighbour to catch up"
            )
            elapsed = trio.current_time() - start
            at_victim, at_neighbour = fakes(victim), fakes(neighbour)
            allowed = config.new_member_burst + config.new_member_rate * elapsed
            assert config.new_member_burst <= len(at_victim) <= allowed < FAKES
            assert at_neighbour <= at_victim, "nothing dropped is passed on"
            mesh = victim.mesh
            assert mesh is not None
            assert mesh.admission.dropped_members >= FAKES - allowed
            # Hearsay is marked as such; the peer we have a session with is proven.
            fake = victim.presence_of(encode_peer_id(next(iter(at_victim))))
            assert fake is not None and not fake.proven
            honest = victim.presence_of(neighbour.peer_id)
            assert honest is not None and honest.proven and sees(victim, neighbour, "avail")
        nursery.cancel_scope.cancel()
    # One line for the attacker, not one per record. (The neighbour may log one about
    # the victim: while a repair used up its budget, some pushes had to wait.)
    lines = [r.getMessage() for r in caplog.records if "over the rate limits" in r.getMessage()]
    about = [sum(peer in line for line in lines) for peer in (attacker_id, victim.peer_id)]
    assert about[0] == 1 and about[1] <= 1 and len(lines) == sum(about)


async def test_a_store_that_cannot_say_who_is_a_contact_makes_strangers_not_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(tmp_path / DATABASE_FILE) as store:
        settings = NodeSettings(host="127.0.0.1", mdns=False, seed=1, store=store)
        async with crashable_node(Identity.generate(), settings) as (node, _):
            chat = node.require_chat()

            def broken(peer: bytes) -> Relation:
                raise sqlite3.OperationalError("disk I/O error")

            monkeypatch.setattr(chat, "relation", broken)
            mesh = node.mesh
            assert mesh is not None
            fakes = [make_record(Identity(bytes([i]) * 32), version=1, nick="fake")
                     for i in range(1, 4)]  # fmt: skip
            for fake in fakes:  # each new member is asked about
                mesh.receive(b"\x06" * 32, MeshGossip(records=(fake,)), trio.current_time())
            assert all(mesh.members.get(f.owner) for f in fakes), "admitted as hearsay"
    lines = [r for r in caplog.records if "cannot tell whether" in r.getMessage()]
    assert len(lines) == 1, "one line per minute, not one per record"
