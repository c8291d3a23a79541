"""UI start-up: from launching `p2pchat` to an interactive screen, in a real terminal.

Each run starts the real program in a pseudo-terminal (TERM=xterm-256color, 120x36),
reads what it draws until the screen is complete, then presses Ctrl+Q and waits for
it to exit (a run that overstays is killed). Figures, beside baselines measured in
the same run:

1. later start: an existing profile, ``python -m p2pchat --home DIR --nick bench
   --no-mdns --listen 127.0.0.1:0``, until the main screen (status bar
   "p2pchat ─ bench" and the footer's "Quit") has been drawn;
2. first start: a fresh profile directory and no ``--nick`` (the identity key is
   made), until the first-run screen ("Choose a nickname") has been drawn;
3. baselines: a hello-world Textual app (a Static and a Footer) until it has drawn,
   and ``python -c pass`` until it exits;
4. in-process (in a fresh interpreter): importing ``p2pchat.ui.app``, and from
   entering ``ChatApp(...).run_test()`` to the first frame on the screen.

Target (issue 6): at most 1 s from launch to an interactive screen on this machine.
Run:  python bench/ui_startup.py [--runs N] [--write] [--importtime]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path

from perfdoc import run_report, write_section

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 1.0
COLUMNS, ROWS = 120, 36
RUN_LIMIT_S = 30.0  # a run that has not drawn (or exited) by then is killed
EXIT_LIMIT_S = 10.0
# CSI, OSC (ended by BEL or ST) and two-character escapes: what is left is the text.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-_]")

HELLO_APP = """
from textual.app import App, ComposeResult
from textual.widgets import Footer, Static

class Hello(App[None]):
    def compose(self) -> ComposeResult:
        yield Static("hello bench")
        yield Footer()

Hello().run()
"""

IN_PROCESS = """
import asyncio, json, sys, tempfile, time
from pathlib import Path
start = time.perf_counter()
from p2pchat.ui.app import ChatApp
imported = time.perf_counter()
from p2pchat.node.node import NodeSettings
from p2pchat.profile import open_profile
from p2pchat.store import open_store

async def main() -> dict[str, float]:
    home = Path(sys.argv[1])
    profile = open_profile(home)
    profile.set_nick("bench")
    store = open_store(home / "messages.db")
    settings = NodeSettings(nick="bench", host="127.0.0.1", port=0, mdns=False, store=store)
    app = ChatApp(profile, settings)
    painted: list[float] = []
    entered = time.perf_counter()
    app.call_after_refresh(lambda: painted.append(time.perf_counter()))
    async with app.run_test(size=(120, 36)) as pilot:
        ready = time.perf_counter()
        while not painted:
            await pilot.pause(0.01)
        await pilot.press("ctrl+q")
    store.close()
    return {"ready": ready - entered, "painted": painted[0] - entered}

figures = asyncio.run(main())
print(json.dumps({"import": imported - start, **figures}))
"""


@dataclass(slots=True)
class Run:
    drawn_s: float  # launch -> the awaited text was on the screen
    exit_s: float  # Ctrl+Q -> the process had exited


def _screen_text(raw: bytes) -> str:
    return _ESCAPES.sub("", raw.decode("utf-8", "replace"))


def run_in_pty(command: list[str], wait_for: list[str], home: Path | None = None) -> Run:
    """Launch ``command`` on a fresh pty; time until every string of ``wait_for`` has
    been drawn (or, when it is empty, until the process exits), then Ctrl+Q."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
    for name in ("TEXTUAL", "TEXTUAL_DRIVER", "NO_COLOR", "P2PCHAT_HOME"):
        env.pop(name, None)
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own session: the pty becomes its terminal
    )
    os.close(slave)
    raw = bytearray()
    drawn = exit_at = 0.0
    try:
        deadline = start + RUN_LIMIT_S
        while True:
            now = time.perf_counter()
            if drawn and process.poll() is not None:
                exit_at = now
                break
            if not drawn and not wait_for and process.poll() is not None:
                drawn = exit_at = now
                break
            if now > deadline:
                raise TimeoutError(
                    f"{command[-1] if wait_for else command}: no {wait_for} after "
                    f"{RUN_LIMIT_S:.0f} s; screen text: {_screen_text(bytes(raw))[-400:]!r}"
                )
            ready, _, _ = select.select([master], [], [], 0.005)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every holder of the slave side has gone
                    chunk = b""
                if chunk:
                    raw += chunk
                elif process.poll() is None:
                    time.sleep(0.001)
            if not drawn and wait_for:
                text = _screen_text(bytes(raw))
                if all(word in text for word in wait_for):
                    drawn = time.perf_counter()
                    deadline = drawn + EXIT_LIMIT_S
                    os.write(master, b"\x11")  # Ctrl+Q
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        os.close(master)
    if process.returncode != 0:
        raise RuntimeError(
            f"{command} exited with {process.returncode}: {_screen_text(bytes(raw))[-400:]!r}"
        )
    return Run(drawn - start, exit_at - drawn)


# ---------------------------------------------------------------------- the runs

P2PCHAT = [sys.executable, "-m", "p2pchat"]
MAIN_SCREEN = ["p2pchat ─ bench", "Quit"]
FIRST_RUN_SCREEN = ["Choose a nickname", "Start chatting"]


def later_start(home: Path) -> Run:
    args = ["--home", str(home), "--nick", "bench", "--no-mdns", "--listen", "127.0.0.1:0"]
    return run_in_pty([*P2PCHAT, *args], MAIN_SCREEN)


def first_start(tmp: Path, index: int) -> Run:
    home = tmp / f"first-{index}"  # does not exist yet: the program makes it
    try:
        args = ["--home", str(home), "--no-mdns", "--listen", "127.0.0.1:0"]
        return run_in_pty([*P2PCHAT, *args], FIRST_RUN_SCREEN)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def hello_textual() -> Run:
    return run_in_pty([sys.executable, "-c", HELLO_APP], ["hello bench", "palette"])


def python_pass() -> Run:
    return run_in_pty([sys.executable, "-c", "pass"], [])


def in_process(home: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def import_costs(top: int = 12) -> list[tuple[float, str]]:
    """The costliest imports (cumulative, ms) of ``p2pchat`` with the UI module loaded."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import p2pchat.cli, p2pchat.ui.app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    costs: list[tuple[float, str]] = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) <= 3:  # top-level and first-level imports
            costs.append((int(match.group(1)) / 1000, match.group(3)))
    return sorted(costs, reverse=True)[:top]


# ---------------------------------------------------------------------- report


def _ms(values: list[float]) -> tuple[float, float]:
    return statistics.median(values) * 1000, max(values) * 1000


def report(
    runs: int,
    later: list[Run],
    first: list[Run],
    hello: list[Run],
    bare: list[Run],
    inside: list[dict[str, float]],
) -> tuple[list[str], list[str]]:
    l50, lmax = _ms([r.drawn_s for r in later])
    f50, fmax = _ms([r.drawn_s for r in first])
    h50, hmax = _ms([r.drawn_s for r in hello])
    p50, pmax = _ms([r.drawn_s for r in bare])
    q50, qmax = _ms([r.exit_s for r in later])
    hq50, hqmax = _ms([r.exit_s for r in hello])
    i50 = statistics.median(x["import"] for x in inside) * 1000
    r50 = statistics.median(x["ready"] for x in inside) * 1000
    d50 = statistics.median(x["painted"] for x in inside) * 1000
    lines = [
        f"later start (profile exists) -> main screen drawn, {runs} runs: median {l50:.0f} ms, "
        f"max {lmax:.0f} ms; Ctrl+Q -> exited median {q50:.0f} ms, max {qmax:.0f} ms "
        f"(hello-world Textual app {hq50:.0f} ms, max {hqmax:.0f} ms)",
        f"first start (no profile) -> first-run screen drawn: median {f50:.0f} ms, "
        f"max {fmax:.0f} ms",
        f"  baselines: hello-world Textual app -> drawn median {h50:.0f} ms, max {hmax:.0f} ms "
        f"(ratio {l50 / h50:.2f}x); python -c pass -> exited median {p50:.0f} ms, "
        f"max {pmax:.0f} ms (ratio {l50 / p50:.1f}x)",
        f"in-process, median of {len(inside)}: import p2pchat.ui.app {i50:.0f} ms; "
        f"ChatApp.run_test() entry -> ready {r50:.0f} ms, -> first frame {d50:.0f} ms",
    ]

    def verdict(ms: float) -> str:
        return "met" if ms <= TARGET_S * 1000 else "**missed**"

    table = [
        "| figure | target | median / max | baseline in the same run | verdict |",
        "|---|---|---|---|---|",
        f"| launch → main screen drawn (existing profile) | ≤ 1 s | {l50:.0f} / {lmax:.0f} ms "
        f"| hello-world Textual app {h50:.0f} / {hmax:.0f} ms ({l50 / h50:.2f}x); "
        f"`python -c pass` {p50:.0f} / {pmax:.0f} ms | {verdict(lmax)} |",
        f"| launch → first-run screen drawn (no profile yet) | ≤ 1 s | {f50:.0f} / {fmax:.0f} ms "
        f"| hello-world Textual app {h50:.0f} ms ({f50 / h50:.2f}x) | {verdict(fmax)} |",
        f"| Ctrl+Q → process exited | — | {q50:.0f} / {qmax:.0f} ms "
        f"| hello-world Textual app {hq50:.0f} / {hqmax:.0f} ms | — |",
    ]
    return lines, table


def write_doc(lines: list[str], table: list[str], command: str) -> None:
    write_section(
        "ui-startup", "UI startup (`bench/ui_startup.py`)", run_report(command, lines, table)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="runs of each kind (default 7)")
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    parser.add_argument("--importtime", action="store_true", help="also list the costliest imports")
    args = parser.parse_args()
    print(
        f"p2pchat UI start-up benchmark, {args.runs} runs each, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores",
        flush=True,
    )
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="p2pchat-bench-ui-"))
    try:
        home = tmp / "profile"
        later_start(home)  # makes the profile (and warms the OS file cache)
        hello_textual()
        later: list[Run] = []
        first: list[Run] = []
        hello: list[Run] = []
        bare: list[Run] = []
        inside: list[dict[str, float]] = []
        for index in range(args.runs):  # interleaved: a slow minute hits every kind
            later.append(later_start(home))
            first.append(first_start(tmp, index))
            hello.append(hello_textual())
            bare.append(python_pass())
            inside.append(in_process(tmp / f"inside-{index}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines, table = report(args.runs, later, first, hello, bare, inside)
    print("\n".join(lines))
    print("\n".join(table))
    missed = max(r.drawn_s for r in later + first) > TARGET_S
    if missed or args.importtime:
        print("costliest imports (cumulative ms, python -X importtime):")
        for ms, name in import_costs():
            print(f"  {ms:8.1f}  {name}")
    print(f"(bench took {time.perf_counter() - started:.0f} s)")
    if args.write:
        write_doc(lines, table, ".venv/bin/python bench/ui_startup.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
