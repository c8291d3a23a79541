"""The bounded, drop-oldest queue every slow consumer of node events sits behind."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.backlog import Backlog, approx_size
from p2pchat.chat.rules import MessageState
from p2pchat.node.events import MessageIn, Receipt


def test_the_oldest_go_and_the_gap_is_reported_where_it_is() -> None:
    backlog = Backlog[int](3)
    for n in range(1, 4):
        assert backlog.put(n) == 0
    assert backlog.take(1) == (0, [1])
    assert backlog.put(4) == 0
    assert backlog.put(5) == 1  # 2 goes: the oldest waiting, the next one the reader wanted
    assert backlog.put(6) == 1  # then 3
    assert len(backlog) == 3
    assert backlog.take() == (2, [4, 5, 6])  # "2 missing here", then what follows the gap
    assert backlog.take() == (0, [])
    assert backlog.total_dropped == 2
    assert not backlog.waiting


def test_a_count_waits_for_the_reader_even_without_items() -> None:
    backlog = Backlog[str](1)
    backlog.put("a")
    backlog.put("b")
    assert backlog.pop() == "b"
    assert backlog.waiting  # nothing left but the news that "a" was lost
    assert backlog.take_dropped() == 1
    assert not backlog.waiting


def test_bytes_bound_keeps_the_newest_item_however_large() -> None:
    backlog = Backlog[str](100, max_bytes=10)
    backlog.put("a", size=4)
    backlog.put("b", size=4)
    assert backlog.bytes == 8
    assert backlog.put("c", size=4) == 1  # 12 > 10: "a" goes
    assert backlog.bytes == 8
    assert backlog.put("huge", size=50) == 2  # both go, the huge one stays alone
    assert (backlog.bytes, len(backlog)) == (50, 1)
    assert backlog.put("d", size=1) == 1  # and goes next
    assert backlog.take() == (4, ["d"])


def test_an_item_standing_for_several_events_counts_them_when_dropped() -> None:
    backlog = Backlog[str](2)
    backlog.put("gap of 500 upstream", count=500)
    backlog.put("x")
    backlog.put("y")
    assert backlog.take() == (500, ["x", "y"])


def test_noted_losses_are_reported_with_the_next_take() -> None:
    backlog = Backlog[str](4)
    backlog.put("a")
    backlog.note_dropped(7)
    assert backlog.take() == (7, ["a"])
    assert backlog.total_dropped == 7


def test_clear_forgets_without_counting() -> None:
    backlog = Backlog[str](4, max_bytes=100)
    backlog.put("a", size=10)
    backlog.clear()
    assert (len(backlog), backlog.bytes, backlog.total_dropped) == (0, 0, 0)


def test_at_least_one_item() -> None:
    with pytest.raises(ValueError):
        Backlog[int](0)


OPERATION = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 40)),
    st.tuples(st.just("take"), st.integers(1, 5)),
)


@given(
    max_items=st.integers(1, 8),
    max_bytes=st.none() | st.integers(1, 100),
    operations=st.lists(OPERATION, max_size=200),
)
def test_against_a_model(
    max_items: int, max_bytes: int | None, operations: list[tuple[str, int]]
) -> None:
    """Whatever the order of puts and takes: the reader sees items in order, each either
    taken or counted as dropped exactly once, every gap reported just before the items
    after it, and the bounds hold after every put."""
    backlog = Backlog[int](max_items, max_bytes)
    seen: list[int] = []  # what the reader got, with each gap written as -count
    serial = 0
    for operation, value in operations:
        if operation == "put":
            backlog.put(serial, size=value)
            serial += 1
            assert len(backlog) <= max_items
            if max_bytes is not None and len(backlog) > 1:
                assert backlog.bytes <= max_bytes
        else:
            dropped, items = backlog.take(value)
            if dropped:
                seen.append(-dropped)
            seen.extend(items)
    dropped, items = backlog.take()
    if dropped:
        seen.append(-dropped)
    seen.extend(items)
    # Replay: items keep their order, and each gap is exactly the items missing there.
    expected = 0
    for entry in seen:
        if entry < 0:
            expected += -entry
        else:
            assert entry == expected
            expected += 1
    assert expected == serial
    assert backlog.total_dropped == serial - sum(1 for entry in seen if entry >= 0)


def test_approx_size_weighs_what_an_event_holds() -> None:
    receipt = Receipt(b"p" * 32, b"m" * 16, MessageState.DELIVERED)
    short = MessageIn(b"p" * 32, b"m" * 16, "hi", 0, 1, False, False)
    long = MessageIn(b"p" * 32, b"m" * 16, "\U0001f600" * 4096, 0, 1, False, False)
    assert 150 < approx_size(receipt) < 600
    assert approx_size(long) - approx_size(short) >= 4 * 4096  # four bytes a character
