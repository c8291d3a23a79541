"""Commands written all at once on the control socket (docs/api.md §2.1): each gets its
own answer, in order; a run of sends is stored together, and a send the rules refuse
costs that one command only."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from p2pchat.identity import encode_peer_id
from tests.test_cli import daemon


def test_pipelined_sends_are_answered_in_order_and_stored(tmp_path: Path) -> None:
    home = tmp_path / "ann"
    home.mkdir()
    bob = encode_peer_id(os.urandom(32))  # away: the sends wait for him in the outbox
    texts = [f"m{n}" for n in range(40)]
    commands = [{"cmd": "send", "to": bob, "text": text, "tag": n} for n, text in enumerate(texts)]
    commands[10]["text"] = ""  # refused by the chat rules
    commands[20]["to"] = "nobody"  # not a peer id
    commands.append({"cmd": "history", "with": bob, "limit": 100, "tag": "h"})
    with daemon(home), socket.socket(socket.AF_UNIX) as control:
        control.connect(str(home / "control.sock"))
        control.sendall(b"".join(json.dumps(c).encode() + b"\n" for c in commands))
        answers: list[dict[str, Any]] = []
        with control.makefile("rb") as lines:
            while len(answers) < len(commands):
                answers.append(json.loads(lines.readline()))
    assert [a["tag"] for a in answers] == [c["tag"] for c in commands]
    assert [a["event"] for a in answers[:40]] == [
        "error" if n in (10, 20) else "send" for n in range(40)
    ]
    sent = [a for a in answers[:40] if a["event"] == "send"]
    assert len({a["msg_id"] for a in sent}) == 38
    assert [a["clock"] for a in sent] == sorted(a["clock"] for a in sent)
    history = answers[-1]["messages"]
    assert [m["text"] for m in history] == [t for n, t in enumerate(texts) if n not in (10, 20)]
    assert [m["msg_id"] for m in history] == [a["msg_id"] for a in sent]
