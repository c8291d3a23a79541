"""A driver that opens a Lab, starts a process in a host, says so on stdout and waits
to be killed: ``python -m tests.testbed.driver``. Used by the cleanup tests."""

from __future__ import annotations

import json
import signal
import subprocess

import trio

from bench.testbed.lab import Lab


async def main() -> None:
    async with Lab(2) as lab:
        host = lab.hosts[1]
        sleeper = subprocess.Popen([*lab.exec_prefix(host), "sleep", "600"])
        report = {"prefix": lab.prefix, "switch": lab.switch_pid, "sleeper": sleeper.pid}
        print(json.dumps(report), flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    # Ctrl+C must reach it even if the test runner started it with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    trio.run(main)
