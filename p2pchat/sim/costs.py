"""What handling a message costs a node's CPU, per message type: the table measured
from the real code by ``bench/sim_costs.py`` and checked in as ``costs.json`` beside
this module (with the date, machine and load of the measurement).

A cost is ``base + per_byte * size`` seconds, ``size`` the message's encoded bytes.
Receiving a message costs its session's share (read, decrypt, decode and check, the
``session_receive`` line of its type) plus the handler (``handle``) plus one signature
check per record the handler verifies (``verify``); sending costs ``session_send``
(encode, pack, encrypt, write). Each frame also pays the I/O of one socket read or write
(``io_frame``). A timer run costs ``tick``. A session's set-up costs each side its
Noise XX steps (``handshake``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("costs.json")


@dataclass(frozen=True, slots=True)
class Linear:
    base: float = 0.0  # seconds
    per_byte: float = 0.0

    def __call__(self, size: int) -> float:
        return self.base + self.per_byte * size

    @classmethod
    def from_json(cls, data: dict[str, float]) -> Linear:
        return cls(data["base_us"] / 1e6, data["per_kb_us"] / 1e6 / 1024)


@dataclass(frozen=True, slots=True)
class CostTable:
    handle: dict[str, Linear] = field(default_factory=dict)
    session_receive: dict[str, Linear] = field(default_factory=dict)
    session_send: dict[str, Linear] = field(default_factory=dict)
    verify: float = 0.0
    tick: float = 0.0
    io_frame: float = 0.0
    # Initiator's message 1, responder's message 2, initiator's message 3 (after
    # reading 2), responder's reading of 3.
    handshake: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    handshake_bytes: tuple[int, int, int] = (0, 0, 0)  # Noise messages, framing included
    measured: str = "nothing: every cost zero"
    scale: float = 1.0

    @property
    def free(self) -> bool:
        return self.scale == 0.0 or (
            not self.handle and not self.session_receive and not self.session_send
        )

    def _typed(self, table: dict[str, Linear], kind: str, size: int) -> float:
        cost = table.get(kind) or table.get("*")
        return 0.0 if cost is None else max(0.0, cost(size)) * self.scale

    def receive_cost(self, kind: str, size: int, verified: int) -> float:
        return (
            self._typed(self.session_receive, kind, size)
            + self._typed(self.handle, kind, size)
            + verified * self.verify * self.scale
        )

    def verify_cost(self, checks: int) -> float:
        return checks * self.verify * self.scale

    def send_cost(self, kind: str, size: int) -> float:
        return self._typed(self.session_send, kind, size)

    def frame_cost(self) -> float:
        return self.io_frame * self.scale

    def tick_cost(self) -> float:
        return self.tick * self.scale

    def handshake_cost(self, step: int) -> float:
        return self.handshake[step] * self.scale

    def scaled(self, factor: float) -> CostTable:
        """The same table on a machine ``1 / factor`` times as fast (0: everything free)."""
        return CostTable(
            self.handle,
            self.session_receive,
            self.session_send,
            self.verify,
            self.tick,
            self.io_frame,
            self.handshake,
            self.handshake_bytes,
            self.measured,
            factor,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CostTable:
        def table(name: str) -> dict[str, Linear]:
            return {kind: Linear.from_json(v) for kind, v in data[name].items()}

        steps = tuple(float(v) / 1e6 for v in data["handshake_us"])
        sizes = tuple(int(v) for v in data["handshake_bytes"])
        if len(steps) != 4 or len(sizes) != 3:
            raise ValueError("handshake_us has four steps and handshake_bytes three")
        return cls(
            handle=table("handle"),
            session_receive=table("session_receive"),
            session_send=table("session_send"),
            verify=data["verify_us"] / 1e6,
            tick=data["tick_us"] / 1e6,
            io_frame=data["io_frame_us"] / 1e6,
            handshake=(steps[0], steps[1], steps[2], steps[3]),
            handshake_bytes=(sizes[0], sizes[1], sizes[2]),
            measured=f"{data['measured_at']} on {data['machine']}",
        )

    @classmethod
    def load(cls, path: Path = TABLE) -> CostTable:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


FREE = CostTable()
