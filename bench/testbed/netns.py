"""The testbed's namespaces on this machine: naming, making, finding leftovers, removing.

Every name the testbed makes starts with ``tb-<pid>-`` where pid is the driver process
(the one that opened the :class:`~bench.testbed.lab.Lab`): namespaces ``tb-<pid>-h<i>``,
TAP devices ``tb-<pid>-t<i>`` (they vanish with the switch process, which is started
with ``--owner <pid>``). Anything named so whose driver is no longer running is a
leftover of a killed run; :func:`clean` removes it, with the processes still inside.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PREFIX = "tb-"
_OWNED = re.compile(r"tb-(\d+)-")
SWITCH_MODULE = "bench.testbed.switch"


class LabUnavailable(Exception):
    """Namespaces or TAP devices cannot be made here (not root, no iproute2, no /dev/net/tun)."""


def run_ip(*args: str, batch: list[str] | None = None, check: bool = True) -> str:
    """``ip ARGS`` (with ``-batch -`` and these lines on stdin if ``batch`` is given)."""
    command = ["ip", *args] + (["-batch", "-"] if batch is not None else [])
    result = subprocess.run(
        command,
        input="".join(line + "\n" for line in batch) if batch is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise LabUnavailable(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


def owner(name: str) -> int | None:
    match = _OWNED.match(name)
    return int(match.group(1)) if match else None


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def lab_namespaces() -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if name.startswith(PREFIX))


def lab_links() -> list[str]:
    """``tb-`` network devices in this (the root) namespace."""
    listing = run_ip("-o", "link", "show", check=False)
    names = [line.split(":", 2)[1].strip().split("@")[0] for line in listing.splitlines()]
    return [name for name in names if name.startswith(PREFIX)]


def switch_processes() -> dict[int, int]:
    """Running switch processes: pid -> the driver pid they were started for."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SWITCH_MODULE.encode() in argv and b"--owner" in argv:
            index = argv.index(b"--owner") + 1
            if index < len(argv) and argv[index].isdigit() and running(int(entry.name)):
                found[int(entry.name)] = int(argv[index])
    return found


def pids_in(namespaces: list[str]) -> list[int]:
    """Processes whose network namespace is one of ``namespaces`` (like ``ip netns pids``)."""
    inodes = set()
    for name in namespaces:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(NETNS_DIR / name).st_ino)
    if not inodes:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino in inodes:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def delete_namespaces(namespaces: list[str]) -> None:
    """Kill what runs inside, then delete them (all of them, even if one fails)."""
    if not namespaces:
        return
    kill_all(pids_in(namespaces))
    run_ip("-force", batch=[f"netns del {name}" for name in namespaces], check=False)


@dataclass
class Leftovers:
    """What killed runs left on this machine (their driver is not running)."""

    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    switches: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.links or self.switches)

    def describe(self) -> str:
        parts = []
        if self.namespaces:
            shown = ", ".join(self.namespaces[:3]) + (", ..." if len(self.namespaces) > 3 else "")
            parts.append(f"{len(self.namespaces)} network namespaces ({shown})")
        if self.links:
            parts.append(f"{len(self.links)} TAP devices ({', '.join(self.links[:3])})")
        if self.switches:
            parts.append(f"{len(self.switches)} switch processes (pids {self.switches[:3]})")
        return " and ".join(parts)


def find_leftovers(*, everything: bool = False) -> Leftovers:
    """Testbed objects whose driver is gone (with ``everything``: all of them)."""

    def orphaned(name: str) -> bool:
        pid = owner(name)
        return everything or pid is None or not running(pid)

    return Leftovers(
        namespaces=[name for name in lab_namespaces() if orphaned(name)],
        links=[name for name in lab_links() if orphaned(name)],
        switches=[
            pid for pid, driver in switch_processes().items() if everything or not running(driver)
        ],
    )


def clean(*, everything: bool = False) -> Leftovers:
    """Remove leftovers (with ``everything``: also those of runs still going). Returns them."""
    found = find_leftovers(everything=everything)
    kill_all(found.switches)
    delete_namespaces(found.namespaces)
    if found.links:
        run_ip("-force", batch=[f"link del dev {name}" for name in found.links], check=False)
    return found
