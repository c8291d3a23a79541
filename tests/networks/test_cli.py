"""`p2pchat network`: create, invite, join, list and leave, as a person types them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def p2pchat(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "p2pchat", "--home", str(home), *args],
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_a_network_is_made_given_joined_and_left(tmp_path: Path) -> None:
    ann, bob = tmp_path / "ann", tmp_path / "bob"
    made = p2pchat(ann, "network", "create", "Flat 3")
    assert made.returncode == 0, made.stderr
    code = made.stdout.splitlines()[-1]
    assert (
        code.startswith("p2pchat-network:")
        and p2pchat(ann, "network", "invite", "Flat 3").stdout.strip() == code
    )
    assert p2pchat(ann, "network", "create", "Flat 3").returncode == 1  # the name is taken
    damaged = p2pchat(bob, "network", "join", code[:-30])
    assert damaged.returncode == 2 and "damaged" in damaged.stderr
    assert p2pchat(bob, "network", "join", code, "--name", "Home").returncode == 0
    again = p2pchat(bob, "network", "join", code)
    assert again.returncode == 0 and "already a member" in again.stdout
    ours = json.loads(p2pchat(ann, "network", "list", "--json").stdout)
    theirs = json.loads(p2pchat(bob, "network", "--json").stdout)
    assert [n["id"] for n in ours] == [n["id"] for n in theirs]  # one key, two names
    assert [n["name"] for n in theirs] == ["Home"]
    assert p2pchat(bob, "network", "leave", "Home").returncode == 0
    assert "no private networks" in p2pchat(bob, "network").stdout
    assert p2pchat(bob, "network", "leave", "Home").returncode == 1
