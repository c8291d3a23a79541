"""Backpressure and rate limits inside the sans-IO session (docs/protocol.md §4.3, §6)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pchat.errors import RemoteProtocolError
from p2pchat.session import (
    MessageReceived,
    PeerClosed,
    PongReceived,
    SecureSession,
    SessionConfig,
    SessionState,
)
from p2pchat.wire.codec import Codec
from p2pchat.wire.messages import Ping, Pong
from tests.blob import Blob
from tests.session.pairs import events, make_pair, pump

NO_PING_LIMIT = SessionConfig(ping_burst=10**9, ping_rate=1e9)
PONG_1K = len(Codec().encode(Pong(2**64 - 1, bytes(1024))))


def open_pair(config_b: SessionConfig | None = None) -> tuple[SecureSession, SecureSession]:
    a, b, _, _ = make_pair(None, config_b)
    pump(a, b)
    assert a.state is b.state is SessionState.OPEN
    events(a), events(b)
    return a, b


def pong_nonces(session: SecureSession, data: bytes) -> list[int]:
    session.receive_data(data)
    return [e.nonce for e in events(session) if isinstance(e, PongReceived)]


def test_a_peer_that_pings_and_never_reads_is_held_at_the_reply_limit() -> None:
    """1000 Pings of 1 KiB fed at once: the victim answers until 64 KiB of Pongs wait
    unsent, then holds the rest; its queue never passes the limit by more than one Pong."""
    a, b = open_pair(NO_PING_LIMIT)
    for nonce in range(1000):
        a.ping(nonce, bytes(1024))
    b.receive_data(a.data_to_send())
    limit = b.config.max_reply_bytes
    assert b.paused
    assert limit < b.reply_bytes <= limit + PONG_1K
    assert b.pending_bytes == b.reply_bytes <= limit + PONG_1K
    answered = pong_nonces(a, b.data_to_send())
    assert answered == list(range(len(answered))) and len(answered) < 70
    # Once the peer reads, the victim goes on where it stopped, and holds again.
    for _ in range(1000):
        assert not b.paused
        b.receive_data(b"")
        assert b.pending_bytes <= limit + PONG_1K
        answered += pong_nonces(a, b.data_to_send())
    assert answered == list(range(1000))
    assert b.state is SessionState.OPEN and not b.paused


def test_messages_behind_held_pings_wait_their_turn() -> None:
    a, b = open_pair(SessionConfig(max_reply_bytes=3000, ping_burst=10**9, ping_rate=1e9))
    for nonce in range(10):
        a.ping(nonce, bytes(1024))
    a.send(Blob(b"after the pings"))
    b.receive_data(a.data_to_send())
    assert b.paused and events(b) == []
    while not events(a) or b.paused:  # the peer reads, the victim goes on
        a.receive_data(b.data_to_send())
        b.receive_data(b"")
    assert events(b) == [MessageReceived(Blob(b"after the pings"))]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(st.integers(-1, 1024), min_size=1, max_size=120),
    st.integers(0, 5000),
    st.lists(st.integers(1, 9000), min_size=1, max_size=20),
)
def test_holding_input_back_loses_and_reorders_nothing(
    plan: list[int], limit: int, drains: list[int]
) -> None:
    """Pings (size >= 0) and messages (-1) through a victim whose reply limit is tiny and
    whose peer reads in odd portions: every Pong comes back, in order, and every
    message is delivered, in order, as with no limit at all."""
    a, b = open_pair(SessionConfig(max_reply_bytes=limit, ping_burst=10**9, ping_rate=1e9))
    for index, size in enumerate(plan):
        if size < 0:
            a.send(Blob(seq=index))
        else:
            a.ping(index, bytes(size))
    b.receive_data(a.data_to_send())
    pongs: list[int] = []
    delivered: list[int] = []
    for turn in range(100_000):
        # The peer reads one to three frames at a time; the victim then goes on.
        frame = b.next_frame_to_send(drains[turn % len(drains)] % 3 + 1)
        if frame is not None:
            pongs += pong_nonces(a, bytes(frame))
        b.receive_data(b"")
        assert b.reply_bytes <= limit + PONG_1K
        delivered += [e.message.seq for e in events(b) if isinstance(e, MessageReceived)]
        if frame is None and b.pending_bytes == 0:
            break  # nothing to send, so nothing held back: all input is consumed
    assert pongs == [i for i, size in enumerate(plan) if size >= 0]
    assert delivered == [i for i, size in enumerate(plan) if size < 0]


def test_pings_beyond_the_burst_close_the_session_as_rate_limited() -> None:
    a, b = open_pair()
    burst = b.config.ping_burst
    for nonce in range(burst):
        a.ping(nonce)
    b.receive_data(a.data_to_send(), now=100.0)
    assert b.state is SessionState.OPEN
    a.ping(burst)
    with pytest.raises(RemoteProtocolError, match="pings") as refused:
        b.receive_data(a.data_to_send(), now=100.0)
    assert refused.value.code == "rate-limited"
    a.receive_data(b.data_to_send())
    answered = [e for e in events(a) if isinstance(e, PongReceived)]
    assert len(answered) == burst  # the one over the limit got no Pong, but a Close
    assert a.state is SessionState.CLOSED


def test_the_close_says_rate_limited() -> None:
    a, b = open_pair()
    for nonce in range(b.config.ping_burst + 1):
        a.ping(nonce)
    with pytest.raises(RemoteProtocolError):
        b.receive_data(a.data_to_send(), now=5.0)
    a.receive_data(b.data_to_send())
    closes = [e for e in events(a) if isinstance(e, PeerClosed)]
    assert [c.code for c in closes] == ["rate-limited"]
    assert "more than 20 pings at once or 10 per second" in closes[0].reason


def test_pings_at_the_configured_rate_are_all_answered() -> None:
    """The bucket refills at ping_rate: 20 at once, then 10 per second for a minute
    (a hair slower, so that float rounding cannot make a step look short)."""
    a, b = open_pair()
    config = b.config
    now = 1000.0
    sent = 0
    for _ in range(config.ping_burst):
        a.ping(sent)
        sent += 1
    b.receive_data(a.data_to_send(), now=now)
    for _ in range(60 * int(config.ping_rate)):
        now += 1.0001 / config.ping_rate
        a.ping(sent)
        sent += 1
        b.receive_data(a.data_to_send(), now=now)
    assert b.state is SessionState.OPEN
    assert pong_nonces(a, b.data_to_send()) == list(range(sent))


def test_the_largest_nonce_is_answered() -> None:
    a, b = open_pair()
    a.send(Ping(2**64 - 1, b"edge"))
    b.receive_data(a.data_to_send())
    assert pong_nonces(a, b.data_to_send()) == [2**64 - 1]
