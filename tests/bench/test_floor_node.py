"""bench/floor_node.py, the soak's floor baseline, does the work it stands for: each
message stored, sent, received, stored, acknowledged and marked delivered, driven
through the same bench code that drives the daemons."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import trio

# The bench scripts import each other as top-level modules (they run with bench/ on
# sys.path); so does this test.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from daemons import connect_all, daemons


async def test_three_floor_nodes_deliver_and_store_every_message(tmp_path: Path) -> None:
    async with daemons(tmp_path, 3, sys.executable, floor=True) as nodes:
        await connect_all(nodes)
        for node in nodes:
            for other in nodes:
                if other is not node:
                    for _ in range(5):
                        await node.send(other.peer_id, "hello")
        with trio.fail_after(30):
            # A node's counts change only as its output is read, which sets its event.
            for node in nodes:
                while not node.delivered == node.sent == node.received == 10:
                    await node.changed.wait()
    for index in range(3):
        db = sqlite3.connect(tmp_path / f"node{index}" / "floor.db")
        states = dict(db.execute("SELECT state, count(*) FROM messages GROUP BY state"))
        db.close()
        assert states == {"delivered": 10, "received": 10}
