"""A process's memory as the kernel counts it (/proc/PID/status)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Memory:
    rss: int  # VmRSS: resident now, bytes
    hwm: int  # VmHWM: the highest resident size so far, bytes

    def grown_since(self, before: Memory) -> int:
        """How far the peak since ``before`` rose above what was resident then (bytes).

        The peak (VmHWM), not the current size: memory a flood took and gave back to the
        OS still counts. A high-water mark set before ``before`` is no growth."""
        return max(self.rss, self.hwm if self.hwm > before.hwm else 0) - before.rss


def memory(pid: int) -> Memory:
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024  # reported in kB
    return Memory(rss=values["VmRSS"], hwm=values["VmHWM"])


def mib(size: int) -> float:
    return size / MIB
