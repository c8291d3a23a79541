"""The switch's pure core: where a frame goes, when it arrives, whether it is lost, what is counted.

No sockets and no clock of its own: the switch process hands it frames with the time
they were read and calls :meth:`Fabric.deliver_due` when its timer fires; the fabric
writes through the ``write`` function it was given. Tests drive it with fake times.

What it models, per frame and per destination port (a "copy": one for a unicast frame,
one per other port for broadcast, multicast and unknown unicast, which are flooded):

- Forwarding by destination MAC. Every port has a fixed MAC (:func:`port_mac`), set on
  the host's interface, so there is no learning and no unknown unicast in practice.
- Freeze and partitions: a copy from or to a frozen port, or across a group border, is
  dropped, both when the frame arrives and when it is due (a frame in flight when the
  cable is cut is lost, like on a real wire).
- Loss: each copy is dropped with probability ``loss``, drawn from one seeded RNG.
- One-way delay: each copy is due ``latency + U(-jitter, +jitter)`` seconds (never less
  than 0) after it was read, but never before the previous copy on the same
  (source, destination) port pair: jitter never reorders the frames of a link, so it
  never reorders a TCP flow (the clamp makes the mean delay slightly larger than
  ``latency`` under heavy jitter and traffic). With ``reorder`` set, there is no clamp
  and jittered frames overtake each other.
- No bandwidth limit and no queue of its own: the only queues are the kernel's TAP
  queues (``txqueuelen`` 1000 frames) when the switch process falls behind, and frames
  a TAP refuses (EAGAIN on write) count as ``overflow``.

Counters, per port: ``rx`` counts frames the host sent (read from its TAP), ``tx`` frames
delivered to it. Copies that are not delivered count once on the sending port, by cause
(``lost``, ``blocked`` for freeze/partition, ``overflow``), so that for every port set
``sum(tx) + sum(lost + blocked + overflow) == sum(rx - flooded) + sum(flooded) * (ports - 1)``
once nothing is pending.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAC_PREFIX = (0x02, 0x74, 0x62)  # locally administered, unicast; 0x74 0x62 = "tb"
COUNTER_NAMES = ("rx_bytes", "rx_frames", "tx_bytes", "tx_frames",
                 "flooded_frames", "lost_frames", "blocked_frames", "overflow_frames")  # fmt: skip


def port_mac(index: int) -> bytes:
    """The MAC address of port (host) ``index``: 02:74:62 then the index in 24 bits."""
    if not 0 <= index < 1 << 24:
        raise ValueError(f"port index {index} does not fit in a MAC")
    return bytes((*MAC_PREFIX, index >> 16 & 0xFF, index >> 8 & 0xFF, index & 0xFF))


def mac_text(mac: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in mac)


@dataclass
class LinkSettings:
    """The same for every link; times in seconds, loss a probability per copy."""

    latency: float = 0.001
    jitter: float = 0.0
    loss: float = 0.0
    reorder: bool = False

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise ValueError("latency and jitter cannot be negative")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss {self.loss} is not a probability")


@dataclass
class Lateness:
    """How late the switch delivered delayed copies (its own queueing, not the model)."""

    delivered: int = 0
    total: float = 0.0
    worst: float = 0.0


class Fabric:
    def __init__(
        self,
        ports: int,
        write: Callable[[int, bytes], bool],
        *,
        seed: int,
        link: LinkSettings | None = None,
    ) -> None:
        """``write(port, frame)`` hands a frame to a host; False means it was refused."""
        if ports < 1:
            raise ValueError("a switch needs at least one port")
        self.ports = ports
        self.link = link or LinkSettings()
        self.lateness = Lateness()
        self._write = write
        self._rng = random.Random(seed)
        self._port_of = {port_mac(index): index for index in range(ports)}
        self._frozen = [False] * ports
        self._group = [0] * ports
        self._last_due = [0.0] * (ports * ports)  # per (source, destination): FIFO clamp
        self._pending: list[tuple[float, int, int, int, bytes]] = []
        self._sequence = 0
        self.rx_bytes = [0] * ports
        self.rx_frames = [0] * ports
        self.tx_bytes = [0] * ports
        self.tx_frames = [0] * ports
        self.flooded_frames = [0] * ports
        self.lost_frames = [0] * ports
        self.blocked_frames = [0] * ports
        self.overflow_frames = [0] * ports

    # The forwarding decision ------------------------------------------------------------

    def unicast_port(self, frame: bytes) -> int | None:
        """The one port a frame goes to, or None if it is flooded (broadcast, multicast:
        the group bit of its destination MAC; or unknown unicast)."""
        return None if frame[0] & 1 else self._port_of.get(frame[:6])

    def destinations(self, source: int, frame: bytes) -> list[int]:
        """The ports a frame from ``source`` is copied to (before freeze, partition, loss)."""
        port = self.unicast_port(frame)
        return [other for other in range(self.ports) if other != source] if port is None else [port]

    # Frames in --------------------------------------------------------------------------

    def receive(self, now: float, source: int, frame: bytes) -> None:
        """A frame read from ``source``'s TAP at ``now``: count it, then copy, drop or queue it."""
        self.rx_bytes[source] += len(frame)
        self.rx_frames[source] += 1
        port = self.unicast_port(frame)
        if port is not None:
            self._forward(now, source, port, frame)
            return
        self.flooded_frames[source] += 1
        for destination in range(self.ports):
            if destination != source:
                self._forward(now, source, destination, frame)

    def _cut(self, source: int, destination: int) -> bool:
        return (
            source == destination
            or self._frozen[source]
            or self._frozen[destination]
            or self._group[source] != self._group[destination]
        )

    def _forward(self, now: float, source: int, destination: int, frame: bytes) -> None:
        if self._cut(source, destination):
            self.blocked_frames[source] += 1
            return
        link = self.link
        if link.loss and self._rng.random() < link.loss:
            self.lost_frames[source] += 1
            return
        delay = link.latency
        if link.jitter:
            delay = max(0.0, delay + self._rng.uniform(-link.jitter, link.jitter))
        due = now + delay
        pair = source * self.ports + destination
        if due < self._last_due[pair] and not link.reorder:
            due = self._last_due[pair]
        self._last_due[pair] = max(due, self._last_due[pair])
        if due <= now:
            self._hand_over(source, destination, frame)
        else:
            self._sequence += 1
            heapq.heappush(self._pending, (due, self._sequence, source, destination, frame))

    def _hand_over(self, source: int, destination: int, frame: bytes) -> None:
        if self._write(destination, frame):
            self.tx_bytes[destination] += len(frame)
            self.tx_frames[destination] += 1
        else:
            self.overflow_frames[source] += 1

    # Frames out -------------------------------------------------------------------------

    def next_due(self) -> float | None:
        return self._pending[0][0] if self._pending else None

    def pending(self) -> int:
        return len(self._pending)

    def deliver_due(self, now: float) -> None:
        """Hand over every queued copy due at or before ``now``, in due order."""
        pending = self._pending
        lateness = self.lateness
        while pending and pending[0][0] <= now:
            due, _, source, destination, frame = heapq.heappop(pending)
            if self._cut(source, destination):
                self.blocked_frames[source] += 1
                continue
            late = now - due
            lateness.delivered += 1
            lateness.total += late
            if late > lateness.worst:
                lateness.worst = late
            self._hand_over(source, destination, frame)

    # Faults -----------------------------------------------------------------------------

    def freeze(self, port: int, frozen: bool = True) -> None:
        self._check_port(port)
        self._frozen[port] = frozen

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Frames cross no border between groups; ports named in no group form one more."""
        rest = len(groups)
        assignment = [rest] * self.ports
        for number, group in enumerate(groups):
            for port in group:
                self._check_port(port)
                if assignment[port] != rest:
                    raise ValueError(f"port {port} is in two groups")
                assignment[port] = number
        self._group = assignment

    def heal(self) -> None:
        self._group = [0] * self.ports

    def _check_port(self, port: int) -> None:
        if not 0 <= port < self.ports:
            raise ValueError(f"no port {port} (ports 0..{self.ports - 1})")

    # Counters ---------------------------------------------------------------------------

    def counters(self) -> list[list[int]]:
        """Per port, the values of :data:`COUNTER_NAMES` in that order."""
        columns = [getattr(self, name) for name in COUNTER_NAMES]
        return [[column[port] for column in columns] for port in range(self.ports)]
