"""Hostile file traffic against a real daemon (docs/protocol.md §16.3, threats.md):
a contact that sends a poisoned block stream, and a stranger that floods offers.

Bounds asserted: a block that does not verify fails the download at once (nothing is
written under any name, the partial file is gone) and the session still serves chat;
a stranger's offers are kept up to its share (OfferLimits.per_stranger), the rest are
declined, and the daemon's memory and its answers to Pings are unaffected."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from p2pchat.files.blocks import BLOCK_SIZE, HashTree, file_root, leaf_hash
from p2pchat.node.files import OfferLimits
from p2pchat.wire.messages import FILES_FEATURE
from tests.adversary import wire
from tests.adversary.client import Peer, identity, open_session
from tests.adversary.daemon import Daemon
from tests.adversary.memory import MIB, memory

FILE_OFFER, FILE_ANSWER, FILE_REQUEST, FILE_BLOCK = 50, 51, 52, 53  # §6
OFFERS = 10_000


async def next_of(peer: Peer, type_id: int) -> dict[str, object]:
    with trio.fail_after(30):
        while True:
            for got, body in await peer.read():
                if got == type_id:
                    return body
            assert not peer.closed, "the victim closed the session"


@dataclass
class Offered:
    """A victim that holds mallory as a contact, mallory's session (listing files/1),
    and a file of ``size`` random bytes with its blocks and tree."""

    victim: Daemon
    attacker: Peer
    downloads: Path
    blocks: list[bytes]
    tree: HashTree
    root: bytes
    size: int


async def contact_with_a_file(
    daemons: Callable[..., Daemon], short_tmp: Path, size: int
) -> Offered:
    downloads = short_tmp / "in"
    victim = daemons("victim", "--downloads", str(downloads))
    mallory = identity()
    victim.add_contact(mallory.peer_id)
    attacker = await open_session(victim.port, mallory, features=(FILES_FEATURE,))
    assert await attacker.round_trip()
    content = os.urandom(size)
    blocks = [content[i : i + BLOCK_SIZE] for i in range(0, size, BLOCK_SIZE)]
    tree = HashTree(leaf_hash(b) for b in blocks)
    return Offered(victim, attacker, downloads, blocks, tree, file_root(size, tree.root), size)


@pytest.mark.slow
async def test_a_poisoned_block_fails_the_download_and_nothing_is_kept(
    daemons: Callable[..., Daemon], short_tmp: Path
) -> None:
    offered = await contact_with_a_file(daemons, short_tmp, 3 * BLOCK_SIZE)
    victim, attacker, downloads = offered.victim, offered.attacker, offered.downloads
    blocks, tree, root, size = offered.blocks, offered.tree, offered.root, offered.size
    offer_id = os.urandom(16)
    await attacker.send(wire.encode(FILE_OFFER, {
        "offer_id": offer_id, "root": root, "size": size,
        "name": "../../.ssh/authorized_keys",
    }))  # fmt: skip
    assert (await next_of(attacker, FILE_ANSWER))["state"] == "received"
    seen = victim.wait_for("file_offer", offer=offer_id.hex())
    assert seen["name"] == "../../.ssh/authorized_keys"
    victim.ok({"cmd": "file_accept", "offer": offer_id.hex()})
    asked = await next_of(attacker, FILE_REQUEST)
    assert asked["root"] == root and 0 in asked["blocks"]  # type: ignore[operator]
    # Block 0 with its true proof but other bytes; and a block nobody asked for.
    await attacker.send(
        wire.encode(FILE_BLOCK, {"root": os.urandom(32), "index": 0, "data": blocks[0]}),
        wire.encode(FILE_BLOCK, {"root": root, "index": 0, "data": os.urandom(BLOCK_SIZE),
                                 "proof": tree.proof(0)}),
    )  # fmt: skip
    failed = victim.wait_for("file_failed", offer=offer_id.hex())
    assert "did not match" in failed["reason"]
    answer = await next_of(attacker, FILE_ANSWER)
    assert answer["state"] == "cancel" and answer["offer_id"] == offer_id
    # Nothing under any name, the partial file gone, and the session still serves chat.
    assert [p for p in downloads.rglob("*") if p.is_file()] == []
    assert await attacker.round_trip()
    # Blocks after the failure are ignored: still nothing on the disk.
    await attacker.send(wire.encode(FILE_BLOCK, {"root": root, "index": 1, "data": blocks[1],
                                                 "proof": tree.proof(1)}))  # fmt: skip
    assert await attacker.round_trip()
    assert [p for p in downloads.rglob("*") if p.is_file()] == []
    assert victim.alive()
    await attacker.aclose()


@pytest.mark.slow
async def test_a_strangers_offer_flood_is_kept_to_its_share(
    daemons: Callable[..., Daemon],
) -> None:
    victim = daemons("victim")
    stranger = identity()
    attacker = await open_session(victim.port, stranger, features=(FILES_FEATURE,))
    assert await attacker.round_trip()
    before = memory(victim.process.pid)
    offers = [
        wire.encode(
            FILE_OFFER,
            {
                "offer_id": n.to_bytes(16, "big"),
                "root": os.urandom(32),
                "size": 1 << 30,
                "name": "x" * 255,
            },
        )
        for n in range(OFFERS)
    ]
    reader = trio.CancelScope()

    async def drain() -> None:  # the victim's answers: read, so its writes never stall
        with reader:
            while not attacker.closed:
                await attacker.read()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        for at in range(0, OFFERS, 1000):
            await attacker.send(*offers[at : at + 1000])
        with trio.fail_after(60):
            while len(victim.ok({"cmd": "files", "limit": 10_000})["files"]) < 4:
                await trio.sleep(0.05)
        reader.cancel()
    assert await attacker.round_trip()
    kept = victim.ok({"cmd": "files", "limit": 10_000})["files"]
    assert len(kept) == OfferLimits().per_stranger
    assert memory(victim.process.pid).grown_since(before) <= 16 * MIB
    assert victim.alive()
    await attacker.aclose()


@pytest.mark.slow
async def test_a_hostile_name_is_saved_inside_the_downloads_folder(
    daemons: Callable[..., Daemon], short_tmp: Path
) -> None:
    offered = await contact_with_a_file(daemons, short_tmp, BLOCK_SIZE + 10)
    victim, attacker, downloads = offered.victim, offered.attacker, offered.downloads
    blocks, tree, root, size = offered.blocks, offered.tree, offered.root, offered.size
    offer_id = os.urandom(16)
    name = "../../.ssh/authorized_keys\u202e\n"
    await attacker.send(wire.encode(FILE_OFFER, {"offer_id": offer_id, "root": root,
                                                 "size": size, "name": name}))  # fmt: skip
    victim.wait_for("file_offer", offer=offer_id.hex())
    victim.ok({"cmd": "file_accept", "offer": offer_id.hex()})
    served: set[int] = set()
    with trio.fail_after(30):
        while served != {0, 1}:
            asked = await next_of(attacker, FILE_REQUEST)
            for index in asked["blocks"]:  # type: ignore[attr-defined]
                served.add(index)
                await attacker.send(wire.encode(FILE_BLOCK, {
                    "root": root, "index": index, "data": blocks[index],
                    "proof": tree.proof(index),
                }))  # fmt: skip
    done = victim.wait_for("file_done", offer=offer_id.hex())
    saved = Path(done["path"])
    assert saved.parent == downloads and saved.name == "__.._.ssh_authorized_keys__"
    assert saved.read_bytes() == b"".join(blocks)
    assert not (short_tmp / ".ssh").exists()
    await attacker.aclose()
