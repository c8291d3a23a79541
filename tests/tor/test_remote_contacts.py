"""Keeping in touch with contacts through Tor (node/remote.py): who is dialled, and how
often an unreachable one is tried again. Trio's MockClock; the link manager is a fake
that answers each dial as the test says."""

from __future__ import annotations

import itertools
import random

import trio
import trio.testing

from p2pchat.node.remote import FIRST_RETRY, LAST_RETRY, LOOK_EVERY, RemoteContacts

ONION = "a" * 56 + ".onion:7676"
HOME, AWAY, OFFICE, LAN_ONLY, TALKING = (bytes([n]) * 32 for n in range(1, 6))


class FakeLinks:
    def __init__(self) -> None:
        self.sessions: set[bytes] = {TALKING}
        self.answering: set[bytes] = {HOME}
        self.dialled: list[tuple[float, bytes]] = []

    def linked(self, peer: bytes) -> bool:
        return peer in self.sessions

    async def session(self, peer: bytes, within: float) -> object | None:
        self.dialled.append((trio.current_time(), peer))
        await trio.sleep(5)  # a dial through Tor takes a while
        if peer in self.answering:
            self.sessions.add(peer)
            return object()
        return None


def remote(links: FakeLinks, tor: list[bool]) -> RemoteContacts:
    addresses = {
        HOME: ["198.18.0.9:7000", ONION],  # remembered on the LAN once, and its onion
        AWAY: [ONION],
        OFFICE: [ONION],
        LAN_ONLY: ["198.18.0.10:7000"],  # no onion address: nothing to do through Tor
        TALKING: [ONION],
    }
    return RemoteContacts(
        links,
        contacts=lambda: list(addresses),
        resolve=addresses.__getitem__,
        on_lan=lambda peer: peer == OFFICE,  # in the mesh on the LAN: no Tor needed
        tor_ready=lambda: tor[0],
        rng=random.Random(1),
    )


async def test_out_of_touch_contacts_are_dialled_and_the_unreachable_less_and_less(
    autojump_clock: trio.testing.MockClock,
) -> None:
    links = FakeLinks()
    tor = [False]
    keeper = remote(links, tor)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keeper.run)
        await trio.sleep(LOOK_EVERY * 3)
        assert links.dialled == []  # our tor cannot dial yet
        tor[0] = True
        await trio.sleep(3600 * 3)
        nursery.cancel_scope.cancel()
    dialled = {peer for _, peer in links.dialled}
    assert dialled == {HOME, AWAY}
    assert [peer for _, peer in links.dialled].count(HOME) == 1  # in session since
    tries = [when for when, peer in links.dialled if peer == AWAY]
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    # Each wait about doubles (jitter ±25 %, plus the look interval and the dial),
    # up to the last: a contact away for three hours is tried about 16 times, not 360.
    assert gaps[0] >= FIRST_RETRY * 0.75
    assert all(later >= earlier * 1.2 for earlier, later in itertools.pairwise(gaps[:5]))
    assert max(gaps) <= LAST_RETRY * 1.25 + LOOK_EVERY + 5
    assert len(tries) <= 3 * 3600 / (LAST_RETRY * 0.75) + 6


async def test_a_contact_back_in_session_is_tried_at_once_after_it_leaves_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    links = FakeLinks()
    keeper = remote(links, [True])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keeper.run)
        await trio.sleep(3600)  # AWAY failed many times: its retry is far off
        links.answering.add(AWAY)
        links.sessions.add(AWAY)  # it dialled us
        await trio.sleep(LOOK_EVERY * 2)
        links.sessions.discard(AWAY)  # and went again
        links.answering.discard(AWAY)
        left = trio.current_time()
        await trio.sleep(LOOK_EVERY * 2)
        nursery.cancel_scope.cancel()
    assert any(when >= left and peer == AWAY for when, peer in links.dialled)
