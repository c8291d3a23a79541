"""The simulator's room broadcast phase: Plumtree against plain flooding."""

from __future__ import annotations

import json

import pytest

from p2pchat.mesh.room_overlay import ring_count
from p2pchat.sim.__main__ import main

ROOM_KEYS = {
    "room_members",
    "room_online",
    "room_degree_mean",
    "room_delivery_100_s",
    "room_delivery_max_s",
    "room_incomplete",
    "room_redundancy",
    "room_control_msgs_per_member",
    "flood_delivery_100_s",
    "flood_delivery_max_s",
    "flood_incomplete",
    "flood_redundancy",
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result, dict)
    return result


def test_room_phase_reports_plumtree_against_flooding(capsys: pytest.CaptureFixture[str]) -> None:
    # A warm start: the room phase is under test, not a cold start of the mesh (which
    # takes minutes to simulate on a busy machine).
    base = ["--nodes", "50", "--seed", "3", "--seconds", "5", "--warm-start"]
    result = run(capsys, *base, "--room-members", "30", "--room-warmup", "10")
    assert result.keys() >= ROOM_KEYS
    assert result["room_members"] == result["room_online"] == 30
    assert result["room_incomplete"] == result["flood_incomplete"] == 0
    # The product's overlay (mesh/room_overlay.py): two rings, at most 4 neighbours.
    degree = result["room_degree_mean"]
    assert isinstance(degree, float) and 3.0 <= degree <= 2 * ring_count(30)
    redundancy, flooding = result["room_redundancy"], result["flood_redundancy"]
    assert isinstance(redundancy, float) and isinstance(flooding, float)
    assert redundancy < 0.5 < flooding
    delivery = result["room_delivery_100_s"]
    assert isinstance(delivery, float) and delivery <= 1.5
    # Without --room-members the output is what it always was.
    plain = run(capsys, *base)
    assert not ROOM_KEYS & plain.keys()
    assert {k: v for k, v in plain.items() if k != "wall_s"} == {
        k: v for k, v in result.items() if k not in ROOM_KEYS and k != "wall_s"
    }


def test_room_phase_survives_loss(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(
        capsys,
        *["--nodes", "40", "--seed", "4", "--seconds", "5", "--loss", "0.1", "--warm-start"],
        *["--room-members", "20", "--room-warmup", "10", "--room-messages", "10"],
    )
    assert result["room_incomplete"] == 0
    assert isinstance(result["room_delivery_max_s"], float)
    assert result["room_delivery_max_s"] <= 1.5


def test_room_options_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--nodes", "10", "--seed", "1", "--room-members", "11"]) == 2
    none = ["--room-members", "5", "--room-messages", "0"]
    assert main(["--nodes", "10", "--seed", "1", *none]) == 2
