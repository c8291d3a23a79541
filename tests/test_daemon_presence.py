"""The daemon joins the mesh and prints presence events as JSON lines."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.discovery.nodes import Node


@pytest.mark.slow
def test_daemons_show_each_others_presence_crashes_and_leaves(
    tmp_path: Path, nodes: list[Node]
) -> None:
    common = ("--no-mdns", "--listen", "127.0.0.1:0")
    ann = Node(tmp_path / "ann", "--nick", "ann", *common)
    nodes.append(ann)
    bob = Node(tmp_path / "bob", "--nick", "bob", "--status", "away", "--status-text",
               "at lunch", "--peer", ann.address, *common)  # fmt: skip
    nodes.append(bob)
    carol = Node(tmp_path / "carol", "--nick", "carol", "--status", "dnd", "--peer",
                 bob.address, *common)  # fmt: skip
    nodes.append(carol)

    # Generous guards: on a busy machine the daemons are slow to start and to talk.
    # How fast a crash is noticed is the simulator's test and bench/mesh.py's figure;
    # here the state says how it was noticed ("dead": detected, "left": announced).
    seen = ann.wait_for("presence", id=bob.id, status="away", timeout=60)
    assert seen["nick"] == "bob" and seen["status_text"] == "at lunch"
    assert seen["proven"] is True, "bob dialled ann: a session proves it"
    assert ann.wait_for("presence", id=carol.id, status="dnd", timeout=60)["nick"] == "carol"
    assert carol.wait_for("presence", id=ann.id, status="avail", timeout=60)["nick"] == "ann"

    carol.process.send_signal(signal.SIGKILL)  # a crash: no leave announced
    carol.process.wait()
    assert ann.wait_for("presence", id=carol.id, status="offline", timeout=60)["state"] == "dead"
    assert bob.wait_for("presence", id=carol.id, status="offline", timeout=60)["state"] == "dead"

    assert bob.stop() == 0  # a graceful leave
    assert ann.wait_for("presence", id=bob.id, status="offline", timeout=60)["state"] == "left"


def test_an_overlong_status_text_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "p2pchat",
            "--home",
            str(tmp_path / "p"),
            "daemon",
            "--no-mdns",
            "--status-text",
            "x" * 141,
        ],
        capture_output=True,
        text=True,
        timeout=120,  # a backstop for a hang, not a speed bound (start-up under load)
    )
    assert result.returncode == 2
    assert "at most 140" in result.stderr and "Traceback" not in result.stderr
