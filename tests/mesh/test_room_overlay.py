"""The room overlay's pure core (docs/protocol.md §14): degree, symmetry, connectivity
over random member and online sets, repair after churn, and what one hostile member
can and cannot do."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pchat.mesh.room_overlay import (
    NEAR_REACH,
    RoomOverlay,
    ring_count,
    ring_neighbours,
    ring_position,
)

ROOM = bytes(range(16))


def member(index: int) -> bytes:
    return hashlib.sha256(index.to_bytes(4, "big")).digest()


def graph(room_id: bytes, present: set[bytes], size: int) -> dict[bytes, set[bytes]]:
    rings = ring_count(size)
    return {m: ring_neighbours(room_id, m, present, rings) for m in present}


def connected(links: dict[bytes, set[bytes]], among: set[bytes]) -> bool:
    if not among:
        return True
    start = next(iter(among))
    seen, todo = {start}, [start]
    while todo:
        for other in links[todo.pop()] & among:
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen == among


rooms = st.binary(min_size=16, max_size=16)


@st.composite
def rooms_with_present(draw: st.DrawFn) -> tuple[bytes, int, set[bytes]]:
    """A room id, the size of its member list, and the members present (≥ 1)."""
    size = draw(st.integers(min_value=1, max_value=256))
    indices = draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=size))
    return draw(rooms), size, {member(i) for i in indices}


def test_two_rings_up_to_the_room_limit_then_one_more_per_16_fold() -> None:
    assert [ring_count(m) for m in (1, 2, 20, 200, 256)] == [2] * 5
    assert [ring_count(m) for m in (257, 4096, 4097)] == [3, 3, 4]


@settings(max_examples=150, deadline=None)
@given(rooms_with_present())
def test_degree_is_bounded_and_links_are_symmetric(case: tuple[bytes, int, set[bytes]]) -> None:
    room_id, size, present = case
    links = graph(room_id, present, size)
    bound = 2 * ring_count(size)
    for m, near in links.items():
        assert m not in near
        assert len(near) <= bound
        assert len(near) >= min(2, len(present) - 1)  # a ring gives two, or all there are
        for other in near:
            assert m in links[other]


@settings(max_examples=150, deadline=None)
@given(rooms_with_present())
def test_every_present_set_is_connected(case: tuple[bytes, int, set[bytes]]) -> None:
    room_id, size, present = case
    assert connected(graph(room_id, present, size), present)


@settings(max_examples=100, deadline=None)
@given(rooms_with_present(), st.data())
def test_one_hostile_member_is_the_neighbour_of_few_and_cuts_no_one_off(
    case: tuple[bytes, int, set[bytes]], data: st.DataObject
) -> None:
    room_id, size, present = case
    hostile = data.draw(st.sampled_from(sorted(present)))
    links = graph(room_id, present, size)
    linked_to_it = [m for m, near in links.items() if hostile in near]
    assert len(linked_to_it) <= 2 * ring_count(size)
    # It drops everything: the others still reach each other without it.
    assert connected(links, present - {hostile})


@settings(max_examples=100, deadline=None)
@given(rooms_with_present(), st.data())
def test_churn_is_repaired_and_touches_only_the_ring_neighbours(
    case: tuple[bytes, int, set[bytes]], data: st.DataObject
) -> None:
    room_id, size, present = case
    overlays = {m: RoomOverlay(room_id, m) for m in present}
    for m, overlay in overlays.items():
        overlay.update(size, present - {m})
    gone = data.draw(st.sets(st.sampled_from(sorted(present)), max_size=max(len(present) - 1, 0)))
    after = present - gone
    changed = 0
    for m in after:
        change = overlays[m].update(size, after)
        assert not (change.up & gone) and not (overlays[m].neighbours & gone)
        changed += bool(change.up or change.down)
    links = {m: set(overlays[m].neighbours) for m in after}
    assert connected(links, after)
    assert links == graph(room_id, after, size)  # the same as computed afresh
    if len(gone) == 1 and len(present) > 2 * ring_count(size) + 1:
        assert changed <= 2 * ring_count(size)  # only its ring neighbours relink
    # They come back: every view is what it was.
    for m in present:
        overlays.setdefault(m, RoomOverlay(room_id, m)).update(size, present)
    assert {m: set(o.neighbours) for m, o in overlays.items()} == graph(room_id, present, size)


@settings(max_examples=50, deadline=None)
@given(rooms_with_present())
def test_nothing_changes_while_nothing_changes(case: tuple[bytes, int, set[bytes]]) -> None:
    room_id, size, present = case
    me = next(iter(present))
    overlay = RoomOverlay(room_id, me)
    overlay.update(size, present)
    again = overlay.update(size, present - {me})
    assert not again.up and not again.down


@settings(max_examples=100, deadline=None)
@given(rooms_with_present(), st.data())
def test_a_view_one_member_behind_is_still_heard(
    case: tuple[bytes, int, set[bytes]], data: st.DataObject
) -> None:
    # b does not yet see one member that a sees: whom b takes for a neighbour, a hears.
    room_id, size, present = case
    a = data.draw(st.sampled_from(sorted(present)))
    unseen = data.draw(st.sampled_from(sorted(present)))
    behind = present - {unseen} | {a}
    seen_by_a = RoomOverlay(room_id, a)
    seen_by_a.update(size, present)
    for b in behind - {a}:
        if a in ring_neighbours(room_id, b, behind, ring_count(size)):
            assert b in seen_by_a.near
    assert len(seen_by_a.near) <= 2 * NEAR_REACH * ring_count(size)


def test_positions_depend_on_the_room_and_the_ring() -> None:
    one = member(1)
    assert ring_position(ROOM, 0, one) != ring_position(ROOM, 1, one)
    assert ring_position(ROOM, 0, one) != ring_position(bytes(16), 0, one)


@settings(max_examples=100, deadline=None)
@given(rooms, st.integers(min_value=1, max_value=256), st.data())
def test_updates_in_steps_give_what_computing_afresh_gives(
    room_id: bytes, size: int, data: st.DataObject
) -> None:
    # The rings are kept sorted between updates and changed by who came and went: after
    # any sequence of present sets, the view is what it is computed from scratch.
    everyone = [member(i) for i in range(size)]
    me = everyone[0]
    overlay = RoomOverlay(room_id, me)
    present: set[bytes] = set()
    for _ in range(data.draw(st.integers(1, 12))):
        came = data.draw(st.sets(st.sampled_from(everyone), max_size=8))
        gone = data.draw(st.sets(st.sampled_from(everyone), max_size=8))
        present = (present | came) - gone
        members = data.draw(st.sampled_from([size, size, max(1, size // 20), size * 20]))
        overlay.update(members, present)
        rings = ring_count(members)
        assert overlay.neighbours == ring_neighbours(room_id, me, present, rings)
        assert overlay.near == ring_neighbours(room_id, me, present, rings, NEAR_REACH)
