"""`p2pchat network`: create, invite, join, list and leave, as a person types them."""

from __future__ import annotations

import json
import re
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


def test_the_code_comes_as_a_qr_code_too(tmp_path: Path) -> None:
    import segno

    home = tmp_path / "ann"
    code = p2pchat(home, "network", "create", "Crew").stdout.splitlines()[-1]
    shown = p2pchat(home, "network", "invite", "Crew", "--qr")
    assert shown.returncode == 0 and shown.stdout.splitlines()[-1] == code
    # Read the modules back: light ones in reverse video (ESC[7m), dark ones on the
    # terminal's background (ESC[49m), two columns each. They are the code's QR matrix.
    expected = segno.make(code, error="m", micro=False)
    rows = [list(row) for row in expected.matrix_iter(border=4)]
    assert [_modules(line) for line in shown.stdout.splitlines()[:-1]] == [
        [bool(module) for module in row] for row in rows
    ]


def _modules(line: str) -> list[bool]:
    dark, modules = False, []
    for part in re.split(r"(\x1b\[[0-9]+m)", line):
        if part in ("\x1b[7m", "\x1b[49m"):
            dark = part == "\x1b[49m"
        elif part and not part.startswith("\x1b"):
            modules += [dark] * (len(part) // 2)
    return modules
