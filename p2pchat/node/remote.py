"""Keeping in touch with contacts beyond the LAN (with --tor, docs/protocol.md §19.5).

A contact reached through Tor is seen only while a session with it is open: its
presence is pairwise, not gossiped (mesh/core.py). So the node itself opens that
session: every contact with an onion address that is neither in session nor seen on
the LAN is dialled, and dialled again after a failure less and less often (from half a
minute to a quarter of an hour, with jitter): an offline contact costs a Tor lookup
now and then, not a stream of them. Both sides do this; whichever dial lands first
makes the session, and the link manager keeps one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import trio

from p2pchat.identity import encode_peer_id
from p2pchat.tor.onion import is_onion_address

log = logging.getLogger("p2pchat.tor")

LOOK_EVERY = 30.0  # s between looks at who is out of touch
FIRST_RETRY = 30.0  # s after a failed dial; doubled each time...
LAST_RETRY = 900.0  # ...up to this
DIAL_WITHIN = 120.0  # s a dial through Tor may take (a fresh circuit, a descriptor fetch)


class Sessions(Protocol):
    """What this needs of the link manager (net/links.py)."""

    def linked(self, peer: bytes) -> bool: ...

    async def session(self, peer: bytes, within: float) -> object | None: ...


@dataclass
class _Retry:
    failures: int = 0
    not_before: float = 0.0


class RemoteContacts:
    def __init__(
        self,
        links: Sessions,
        *,
        contacts: Callable[[], Iterable[bytes]],
        resolve: Callable[[bytes], list[str]],
        on_lan: Callable[[bytes], bool],
        tor_ready: Callable[[], bool],
        rng: random.Random,
    ) -> None:
        """``contacts()``: our contacts now; ``resolve(peer)``: where it is dialled;
        ``on_lan(peer)``: whether the LAN's mesh shows it online (no Tor needed);
        ``tor_ready()``: whether our tor can dial."""
        self._links = links
        self._contacts = contacts
        self._resolve = resolve
        self._on_lan = on_lan
        self._tor_ready = tor_ready
        self._rng = rng
        self._retry: dict[bytes, _Retry] = {}
        self._dialling: set[bytes] = set()
        self.dials = 0  # dials started, for tests and the bench

    def out_of_touch(self, now: float) -> list[bytes]:
        """Contacts to dial now: an onion address known, no session, not on the LAN,
        not dialled already, and their retry time come."""
        due = []
        contacts = list(self._contacts())
        for gone in self._retry.keys() - set(contacts):  # no longer a contact
            del self._retry[gone]
        for peer in contacts:
            if self._links.linked(peer) or self._on_lan(peer):
                self._retry.pop(peer, None)  # in touch: once it goes, it is tried at once
                continue
            retry = self._retry.get(peer)
            if peer in self._dialling or (retry is not None and now < retry.not_before):
                continue
            if any(is_onion_address(address) for address in self._resolve(peer)):
                due.append(peer)
        return due

    async def run(self) -> None:
        """Until cancelled: a look every LOOK_EVERY seconds, while our tor can dial."""
        async with trio.open_nursery() as nursery:
            while True:
                if self._tor_ready():
                    for peer in self.out_of_touch(trio.current_time()):
                        self._dialling.add(peer)
                        self.dials += 1
                        nursery.start_soon(self._reach, peer)
                await trio.sleep(LOOK_EVERY)

    async def _reach(self, peer: bytes) -> None:
        try:
            session = await self._links.session(peer, DIAL_WITHIN)
        finally:
            self._dialling.discard(peer)
        if session is not None:
            self._retry.pop(peer, None)
            return
        retry = self._retry.setdefault(peer, _Retry())
        delay = min(LAST_RETRY, FIRST_RETRY * 2**retry.failures)
        retry.failures += 1
        retry.not_before = trio.current_time() + delay * self._rng.uniform(0.75, 1.25)
        log.debug("%s not reached through Tor; next try in %.0f s", encode_peer_id(peer), delay)
