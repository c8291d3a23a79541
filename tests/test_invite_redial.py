"""After an invite code joined two people, both sides know where the other listens:
the side that accepted the code dials the other at its next start (real processes on
127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli import daemon


def run(home: Path, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "p2pchat", "--home", str(home), *args, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def wait_for(process: subprocess.Popen[str], event: str, **fields: object) -> dict[str, Any]:
    """The daemon's next JSON event named ``event`` with these fields (pytest-timeout
    ends the wait if it never comes)."""
    assert process.stdout is not None
    for line in process.stdout:
        found: dict[str, Any] = json.loads(line)
        if found.get("event") == event and all(found.get(k) == v for k, v in fields.items()):
            return found
    raise AssertionError(f"the daemon ended before a {event!r} event")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("visibility", ["--public-discovery", "--private-discovery"])
def test_the_accepting_side_redials_after_a_restart(tmp_path: Path, visibility: str) -> None:
    """Also in private discovery (§10.2), where each hides from whoever cannot knock:
    the code's key knocks until the session has given each the other's announce key,
    and the redial after the restart knocks with that."""
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    ann_id, bob_id = run(ann, "id")["id"], run(bob, "id")["id"]
    with daemon(bob, "--json", "--nick", "bob", visibility) as (bob_process, _):
        with daemon(ann, "--json", "--nick", "ann", visibility) as (ann_process, _):
            code = run(ann, "invite")["invite"]
            assert run(bob, "connect", code)["state"] == "verified"
            wait_for(ann_process, "connected", id=bob_id)
            wait_for(bob_process, "connected", id=ann_id)
            # bob's record (its listening address) reaches ann over the session.
            wait_for(ann_process, "presence", id=bob_id)
        # ann comes back on another port, where bob's remembered address no longer
        # reaches her: only ann can bring the link back, and at once.
        with daemon(ann, "--json", visibility) as (ann_process, _):
            connected = wait_for(ann_process, "connected", id=bob_id)
            wait_for(bob_process, "connected", id=ann_id)
    assert connected["address"].startswith("127.0.0.1:")
    known = json.loads((ann / "peers.json").read_text())
    assert bob_id in known
