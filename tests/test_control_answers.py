"""Control-socket answers of any size reach the client: 10,000 history messages (several
MiB on one line) through a real daemon, by `p2pchat history` and by the API client.

Before, the client read answers with the 64 KiB limit of a command line: it skipped a
longer answer and waited for the next one forever (`history --limit 200` hung).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio

from p2pchat.api.control import call_control
from p2pchat.identity import encode_peer_id
from p2pchat.store import DATABASE_FILE, open_store
from tests.test_cli import daemon

MESSAGES = 10_000


def test_ten_thousand_messages_through_a_running_daemon(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    home.mkdir()
    bob = os.urandom(32)
    with open_store(home / DATABASE_FILE) as store:
        store.add_contact(bob, petname="bob", now=1)
        for clock in range(1, MESSAGES + 1):
            store.add_incoming(msg_id=os.urandom(16), peer=bob, clock=clock, sent_at=clock,
                               received_at=clock, text=f"{clock} " + "ü" * 60)  # fmt: skip
    with daemon(home):
        command = {"cmd": "history", "with": encode_peer_id(bob), "limit": MESSAGES}
        answer = trio.run(partial(call_control, home, command))
        assert answer is not None, "the daemon's control socket did not answer"
        assert answer["event"] == "history", answer
        assert [m["text"].split()[0] for m in answer["messages"]] == [
            str(n) for n in range(1, MESSAGES + 1)
        ]
        result = subprocess.run(
            [sys.executable, "-m", "p2pchat", "--home", str(home), "history", "bob", "--json",
             "--limit", str(MESSAGES)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert len(result.stdout) > 1024 * 1024  # an answer far over 64 KiB
        assert len(json.loads(result.stdout)) == MESSAGES
