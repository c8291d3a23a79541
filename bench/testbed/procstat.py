"""Memory and CPU of an agent process, from /proc (the parsers are pure)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    rss_kib: int  # VmRSS now
    cpu_s: float  # utime + stime since the process started


def rss_kib(status_text: str) -> int:
    """VmRSS from the text of /proc/PID/status, in KiB."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line (a zombie process?)")


def cpu_seconds(stat_text: str) -> float:
    """utime + stime from the text of /proc/PID/stat. The command name (field 2) may hold
    spaces and parentheses, so fields are counted from its last ')'."""
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def usage(pid: int) -> Usage | None:
    """None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status, open(f"/proc/{pid}/stat") as stat:
            return Usage(rss_kib(status.read()), cpu_seconds(stat.read()))
    except (OSError, ValueError):
        return None


def cpu_seconds_of(pids: Sequence[int], hosts: Iterable[int]) -> float:
    """CPU seconds the agents of ``hosts`` (indices into ``pids``) have used so far, all
    together (an agent already gone counts nothing)."""
    return sum(use.cpu_s for i in hosts if (use := usage(pids[i])) is not None)
