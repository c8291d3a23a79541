"""A daemon loads what it runs, no more: nothing of the chat window (Textual, Rich), and
without mDNS no zeroconf (nor the asyncio and ifaddr it brings). Every module costs
resident memory for as long as the daemon runs (docs/performance.md, "Chat rates").

The daemon runs for real in a fresh interpreter (a subprocess: this test process has
imported everything already): it starts, listens, reads ``quit`` on stdin and stops;
then the interpreter lists what it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

UI = ("textual", "rich")
MDNS = ("zeroconf", "asyncio", "ifaddr")

RUN_DAEMON = """
import json, sys
from p2pchat.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def daemon_modules(home: Path, *options: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_DAEMON, "--home", str(home), "daemon", "--json",
         "--listen", "127.0.0.1:0", *options],
        input=b'{"cmd": "quit"}\n',
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert b'"event":"stopped"' in done.stdout, done.stderr.decode()[-2000:]
    report = json.loads(done.stderr.decode().strip().splitlines()[-1])
    assert report["code"] == 0
    return {name.split(".")[0] for name in report["modules"]}


def test_a_daemon_without_mdns_imports_neither_the_ui_nor_zeroconf(tmp_path: Path) -> None:
    loaded = daemon_modules(tmp_path, "--no-mdns")
    assert "trio" in loaded and "p2pchat" in loaded  # it did run
    assert sorted(loaded.intersection(UI + MDNS)) == []
