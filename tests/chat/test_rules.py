"""Message ids, clocks, states and order: both sides must agree without talking."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.chat.rules import (
    MAX_CLOCK_JUMP,
    Clocks,
    MessageState,
    clock_acceptable,
    compose,
    moves_forward,
    order_key,
    retry_delay_ms,
    text_problem,
)
from p2pchat.wire.messages import ChatMessage

A, B = b"a" * 32, b"b" * 32


def test_states_only_move_forward() -> None:
    order = ["queued", "sent", "delivered", "read"]
    for i, old in enumerate(order):
        for j, new in enumerate(order):
            assert moves_forward(old, new) == (j > i)
    assert moves_forward("received", "read")
    assert not moves_forward("read", "received")
    with pytest.raises(ValueError):
        moves_forward("queued", "lost")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("x" * 4097, "at most 4096"),
        ("bell\x07", "control character"),
    ],
)
def test_text_problems(text: str, problem: str) -> None:
    found = text_problem(text)
    assert found is not None and problem in found


def test_good_text_passes() -> None:
    assert text_problem("hello\n\tworld ✓ 👋") is None
    assert text_problem("x" * 4096) is None


def test_compose_ticks_past_the_clock() -> None:
    message = compose(bytes(16), 41, 1000, "hi")
    assert (message.clock, message.time, message.text) == (42, 1000, "hi")
    with pytest.raises(ValueError):
        compose(bytes(15), 0, 0, "hi")
    with pytest.raises(ValueError):
        compose(bytes(16), 0, 0, " ")


def test_clocks_per_conversation() -> None:
    clocks = Clocks()
    assert clocks.tick(A) == 1
    assert clocks.tick(A) == 2
    clocks.observe(A, 10)
    assert clocks.tick(A) == 11
    clocks.observe(A, 3)  # old news never moves a clock back
    assert clocks.highest(A) == 11
    assert clocks.tick(B) == 1
    assert not clocks.known(b"c" * 32)
    clocks.seed(b"c" * 32, 7)
    assert clocks.tick(b"c" * 32) == 8


def test_implausible_clocks_are_refused() -> None:
    assert clock_acceptable(5, 6)
    assert clock_acceptable(5, 1)
    assert clock_acceptable(5, 5 + MAX_CLOCK_JUMP)
    assert not clock_acceptable(5, 6 + MAX_CLOCK_JUMP)
    assert not clock_acceptable(5, 0)


def test_retry_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [retry_delay_ms(attempt, rng) for attempt in range(12)]
    assert 500 <= delays[0] <= 1500
    assert 1000 <= delays[1] <= 3000
    assert all(d <= 90_000 for d in delays)
    assert delays[-1] >= 30_000


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
)
def test_both_sides_order_a_conversation_identically(
    steps: list[tuple[bool, int]], rng: random.Random
) -> None:
    """Two people write at will; messages arrive late and out of order. Each side keeps
    its own Lamport clock. In the end both sort the same set identically, and every
    message sorts after everything its author had seen when writing it."""
    clocks = {True: Clocks(), False: Clocks()}
    inbox: dict[bool, list[ChatMessage]] = {True: [], False: []}
    seen: dict[bool, list[ChatMessage]] = {True: [], False: []}
    causes: dict[bytes, list[bytes]] = {}
    for counter, (side, deliveries) in enumerate(steps, start=1):
        for _ in range(min(deliveries, len(inbox[side]))):
            message = inbox[side].pop(rng.randrange(len(inbox[side])))
            clocks[side].observe(b"peer", message.clock)
            seen[side].append(message)
        msg_id = rng.randbytes(15) + bytes([counter % 256])
        message = compose(msg_id, clocks[side].highest(b"peer"), counter, f"m{counter}")
        clocks[side].observe(b"peer", message.clock)
        causes[message.msg_id] = [m.msg_id for m in seen[side]]
        seen[side].append(message)
        inbox[not side].append(message)
    for side in (True, False):
        seen[side].extend(inbox[side])
    first = [m.msg_id for m in sorted(seen[True], key=lambda m: order_key(m.clock, m.msg_id))]
    second = [m.msg_id for m in sorted(seen[False], key=lambda m: order_key(m.clock, m.msg_id))]
    assert first == second
    position = {msg_id: i for i, msg_id in enumerate(first)}
    for msg_id, before in causes.items():
        assert all(position[cause] < position[msg_id] for cause in before)


def test_message_state_values_are_the_stored_strings() -> None:
    assert [s.value for s in MessageState] == ["queued", "sent", "delivered", "read", "received"]
