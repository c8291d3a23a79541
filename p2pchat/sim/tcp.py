"""TCP as the simulator models it: one ordered, reliable byte stream each way per
connection, over a path that delays and loses frames.

What is modelled (close to Linux defaults):

- Segments of at most ``mss`` payload bytes; each frame on the wire costs
  ``header_bytes`` more (Ethernet 14 + IPv4 20 + TCP 20 + timestamps 12 = 66).
- In-order delivery: what a segment carries is handed up only when it and every
  segment before it have arrived, so a lost segment holds back everything behind it on
  its connection (head-of-line blocking). Nothing is dropped.
- Loss recovery: a retransmission timer of ``srtt + max(4 rttvar, rto_min)`` (Linux:
  200 ms minimum), doubling on each expiry up to ``rto_max``; fast retransmit of a hole
  once ``dup_threshold`` segments sent after it are selectively acknowledged.
- ACKs: a receiver acknowledges at once a segment out of order or when more than
  ``ack_every_bytes`` are unacknowledged, otherwise after ``delayed_ack`` unless data
  going the other way carries the acknowledgement first (piggybacking). ACKs are lost
  like any frame; a later one covers for a lost one.
- Linux's quick-ack and ping-pong modes: data that arrives after a gap longer than the
  receiver's RTO (or the first data of a connection) is acknowledged at once, unless
  the receiver is in ping-pong mode: it entered it by sending data within
  ``delayed_ack`` of receiving some (an answer), and leaves it when a delayed ACK has
  to go alone (nothing answered in time). So a request after a quiet spell costs a
  lone ACK before its answer, except on a connection whose receiver answers what it
  gets; this is why an idle p2pchat daemon sent four frames per probe, not three.
- Set-up: SYN and SYN-ACK (``syn_bytes`` each, lost like any frame, retried after 1 s,
  doubling) and the final ACK.

Not modelled: congestion and receive windows (slow start), tail-loss probes and RACK's
time-based loss marking, Nagle, quick-ack counts (only the segment after a gap is
acknowledged at once), connection death after many
retransmissions. The path (latency, loss, who is reachable, wire accounting) is
injected, and so are the clock's timers: the module holds no time of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

Schedule = Callable[[float, Callable[[float], None]], None]


@dataclass(frozen=True, slots=True)
class TcpParams:
    mss: int = 1448
    header_bytes: int = 66
    syn_bytes: int = 74  # SYN and SYN-ACK carry options (MSS, SACK, timestamps, scale)
    rto_min: float = 0.2
    rto_initial: float = 1.0
    rto_max: float = 120.0
    delayed_ack: float = 0.04
    ack_every_bytes: int = 536  # Linux acks at once past one receive-MSS of new data
    dup_threshold: int = 3


class Path(Protocol):
    def transit(self, sender: int, receiver: int, wire_bytes: int, now: float) -> float | None:
        """Count a frame sent now and say when it arrives, or None if it is lost."""


@dataclass(slots=True)
class _Segment:
    seq: int
    size: int
    items: list[Any]
    sent_at: float
    retransmitted: bool = False
    sacked: bool = False
    fast_retransmitted: bool = False


@dataclass(slots=True)
class _Ack:
    cumulative: int  # every segment below this has arrived
    sacked: frozenset[int]


@dataclass(slots=True)
class _Half:
    """One direction: the sender's segments and the receiver's reassembly."""

    sender: int
    receiver: int
    next_seq: int = 0
    unacked: dict[int, _Segment] = field(default_factory=dict)
    srtt: float | None = None
    rttvar: float = 0.0
    backoff: int = 0
    rto_generation: int = 0
    rto_armed: bool = False
    # receiver side
    rcv_next: int = 0
    out_of_order: dict[int, _Segment] = field(default_factory=dict)
    unacked_bytes: int = 0
    ack_pending: bool = False
    delack_generation: int = 0
    retransmissions: int = 0
    last_data: float | None = None  # when new data last arrived in order
    pingpong: bool = False  # the receiver answers what it gets: its ACKs wait


class Connection:
    """Both directions of one TCP connection between ``a`` (the dialler) and ``b``.

    ``deliver(receiver, sender, item, now)`` is called for every item handed to
    :meth:`send`, in the order sent, when the stream has it all.
    """

    def __init__(
        self,
        a: int,
        b: int,
        *,
        params: TcpParams,
        path: Path,
        schedule: Schedule,
        deliver: Callable[[int, int, Any, float], None],
    ) -> None:
        self.a, self.b = a, b
        self.params = params
        self._path = path
        self._schedule = schedule
        self._deliver = deliver
        self._halves = {a: _Half(a, b), b: _Half(b, a)}
        self.established = False
        self.closed = False
        self._syn_attempt = 0

    # ------------------------------------------------------------------ set-up

    def connect(self, now: float, established: Callable[[float], None]) -> None:
        """Send a SYN; ``established(t)`` runs when the dialler has the SYN-ACK."""
        params = self.params
        syn_arrives = self._path.transit(self.a, self.b, params.syn_bytes, now)
        attempt = self._syn_attempt
        self._syn_attempt += 1

        def retry(t: float) -> None:
            if not self.established and not self.closed:
                self.connect(t, established)

        self._schedule(now + params.rto_initial * 2**attempt, retry)
        if syn_arrives is None:
            return

        def syn_received(t: float) -> None:
            if self.closed:
                return
            synack_arrives = self._path.transit(self.b, self.a, params.syn_bytes, t)
            if synack_arrives is not None:
                self._schedule(synack_arrives, synack_received)

        def synack_received(t: float) -> None:
            if self.established or self.closed:
                return
            self.established = True
            # The third packet of the handshake; its loss is covered by the first data.
            self._path.transit(self.a, self.b, params.header_bytes, t)
            established(t)

        self._schedule(syn_arrives, syn_received)

    def close(self) -> None:
        """Stop: nothing more is sent, retransmitted or delivered."""
        self.closed = True

    def outstanding(self, side: int) -> int:
        """Segments ``side`` has sent that are not yet acknowledged."""
        return len(self._halves[side].unacked)

    def retransmissions(self, side: int) -> int:
        return self._halves[side].retransmissions

    # ------------------------------------------------------------------ data

    def send(self, side: int, size: int, items: list[Any], now: float) -> None:
        """Write ``size`` bytes from ``side``; ``items`` are delivered with their last byte."""
        half = self._halves[side]
        received = self._reverse(half)
        if received.last_data is not None and now - received.last_data < self.params.delayed_ack:
            received.pingpong = True  # an answer: Linux's ping-pong mode
        mss = self.params.mss
        remaining = max(size, 1)
        while remaining > 0:
            chunk = min(mss, remaining)
            remaining -= chunk
            segment = _Segment(half.next_seq, chunk, items if remaining == 0 else [], now)
            half.next_seq += 1
            half.unacked[segment.seq] = segment
            self._transmit(half, segment, now)
        self._arm_rto(half, now, restart=False)

    def _reverse(self, half: _Half) -> _Half:
        return self._halves[half.receiver]

    def _transmit(self, half: _Half, segment: _Segment, now: float) -> None:
        if self.closed:
            return
        reverse = self._reverse(half)
        ack = self._take_ack(reverse)  # data carries the acknowledgement of the other way
        wire = segment.size + self.params.header_bytes
        arrives = self._path.transit(half.sender, half.receiver, wire, now)
        if arrives is not None:
            self._schedule(arrives, lambda t: self._arrive(half, segment, ack, t))

    def _take_ack(self, receiving: _Half) -> _Ack:
        receiving.unacked_bytes = 0
        receiving.ack_pending = False
        receiving.delack_generation += 1
        return _Ack(receiving.rcv_next, frozenset(receiving.out_of_order))

    # ------------------------------------------------------------------ receiving

    def _arrive(self, half: _Half, segment: _Segment, ack: _Ack, now: float) -> None:
        if self.closed:
            return
        self._on_ack(self._reverse(half), ack, now)
        seq = segment.seq
        if seq < half.rcv_next or seq in half.out_of_order:
            self._send_ack(half, now)  # a duplicate: say again what we have
            return
        if seq != half.rcv_next:
            half.out_of_order[seq] = segment
            self._send_ack(half, now)  # a hole: duplicate ACK with SACK, at once
            return
        filled_hole = bool(half.out_of_order)
        gap = math.inf if half.last_data is None else now - half.last_data
        half.last_data = now
        quick = gap > self.rto(half.receiver) and not half.pingpong
        ready = [segment]
        half.rcv_next += 1
        while half.rcv_next in half.out_of_order:
            ready.append(half.out_of_order.pop(half.rcv_next))
            half.rcv_next += 1
        half.unacked_bytes += sum(s.size for s in ready)
        for piece in ready:
            for item in piece.items:
                self._deliver(half.receiver, half.sender, item, now)
                if self.closed:
                    return
        if filled_hole or quick or half.unacked_bytes > self.params.ack_every_bytes:
            self._send_ack(half, now)
        elif not half.ack_pending:
            half.ack_pending = True
            generation = half.delack_generation

            def delayed(t: float) -> None:
                if half.ack_pending and half.delack_generation == generation:
                    half.pingpong = False  # nothing answered in time
                    self._send_ack(half, t)

            self._schedule(now + self.params.delayed_ack, delayed)

    def _send_ack(self, receiving: _Half, now: float) -> None:
        """A pure ACK from the receiver of ``receiving`` back to its sender."""
        if self.closed:
            return
        ack = self._take_ack(receiving)
        arrives = self._path.transit(
            receiving.receiver, receiving.sender, self.params.header_bytes, now
        )
        if arrives is not None:
            self._schedule(arrives, lambda t: self._on_ack(receiving, ack, t))

    def _on_ack(self, half: _Half, ack: _Ack, now: float) -> None:
        """``half``'s sender learns what its receiver holds."""
        if self.closed:
            return
        progressed = False
        for seq in [s for s in half.unacked if s < ack.cumulative]:
            segment = half.unacked.pop(seq)
            progressed = True
            if not segment.retransmitted:  # Karn: no samples from retransmissions
                self._sample_rtt(half, now - segment.sent_at)
        for seq in ack.sacked:
            segment_or_none = half.unacked.get(seq)
            if segment_or_none is not None:
                segment_or_none.sacked = True
        if progressed:
            half.backoff = 0
            self._arm_rto(half, now, restart=True)
        self._fast_retransmit(half, now)

    def _fast_retransmit(self, half: _Half, now: float) -> None:
        sacked = sorted(s for s, seg in half.unacked.items() if seg.sacked)
        if len(sacked) < self.params.dup_threshold:
            return
        for seq in sorted(half.unacked):
            segment = half.unacked[seq]
            if segment.sacked or segment.fast_retransmitted:
                continue
            above = sum(1 for s in sacked if s > seq)
            if above < self.params.dup_threshold:
                break
            segment.fast_retransmitted = True
            self._retransmit(half, segment, now)

    def _retransmit(self, half: _Half, segment: _Segment, now: float) -> None:
        segment.retransmitted = True
        segment.sent_at = now
        half.retransmissions += 1
        self._transmit(half, segment, now)

    def _sample_rtt(self, half: _Half, rtt: float) -> None:
        if half.srtt is None:
            half.srtt, half.rttvar = rtt, rtt / 2
        else:
            half.rttvar = 0.75 * half.rttvar + 0.25 * abs(half.srtt - rtt)
            half.srtt = 0.875 * half.srtt + 0.125 * rtt

    def rto(self, side: int) -> float:
        """The retransmission timeout ``side`` would arm now (before backoff)."""
        half = self._halves[side]
        params = self.params
        if half.srtt is None:
            return params.rto_initial
        return min(params.rto_max, half.srtt + max(4 * half.rttvar, params.rto_min))

    def _arm_rto(self, half: _Half, now: float, *, restart: bool) -> None:
        if not half.unacked:
            half.rto_armed = False
            half.rto_generation += 1
            return
        if half.rto_armed and not restart:
            return
        half.rto_armed = True
        half.rto_generation += 1
        generation = half.rto_generation
        timeout = min(self.params.rto_max, self.rto(half.sender) * 2**half.backoff)

        def expire(t: float) -> None:
            if half.rto_generation == generation and not self.closed:
                self._on_rto(half, t)

        self._schedule(now + timeout, expire)

    def _on_rto(self, half: _Half, now: float) -> None:
        # Linux marks everything outstanding lost and resends it; with the small
        # windows of this traffic that is all of it at once (no slow start modelled).
        half.backoff += 1
        for seq in sorted(half.unacked):
            segment = half.unacked[seq]
            if not segment.sacked:
                segment.fast_retransmitted = False
                self._retransmit(half, segment, now)
        half.rto_armed = False
        self._arm_rto(half, now, restart=True)
