"""Spreading news (records and claims) through the mesh.

News is pushed at once to every neighbour but the one it came from, batched per
neighbour after each call into the core, and the newest is also piggybacked on probes
a few times (SWIM). A member forgotten to make room is dropped from the news and from
the views before anything more is sent: what is dropped is never passed on.
"""

from __future__ import annotations

from collections import OrderedDict

from p2pchat.mesh.events import MemberForgotten
from p2pchat.mesh.shared import Part, Shared
from p2pchat.mesh.views import Views
from p2pchat.wire.messages import MAX_GOSSIP_ITEMS, MeshClaim, MeshGossip, PresenceRecord

Item = PresenceRecord | MeshClaim


def _item_key(item: Item) -> tuple[str, bytes]:
    if isinstance(item, PresenceRecord):
        return ("r", item.owner)
    return ("c", item.subject)


class Dissemination(Part):
    def __init__(self, shared: Shared, views: Views) -> None:
        super().__init__(shared)
        self._views = views
        self._flood: list[tuple[Item, bytes | None]] = []
        self._piggyback: OrderedDict[tuple[str, bytes], tuple[Item, int]] = OrderedDict()

    def spread(self, item: Item, source: bytes | None) -> None:
        """News from ``source`` (None: our own): pushed at the next flush, piggybacked."""
        self._flood.append((item, source))
        key = _item_key(item)
        self._piggyback.pop(key, None)
        self._piggyback[key] = (item, self._config.retransmits(len(self._members)))
        while len(self._piggyback) > self._config.piggyback_queue:
            self._piggyback.popitem(last=False)  # the oldest news has spread by now

    def flush(self) -> None:
        for record in self._members.take_evicted():
            self._let_go(record)
        if not self._flood:
            return
        batches: dict[bytes, tuple[list[PresenceRecord], list[MeshClaim]]] = {}
        neighbours = sorted(self._views.active)  # a fixed order keeps a seeded run repeatable
        for item, source in self._flood:
            for peer in neighbours:
                if peer == source:
                    continue
                records, claims = batches.setdefault(peer, ([], []))
                if isinstance(item, PresenceRecord):
                    records.append(item)
                else:
                    claims.append(item)
        self._flood.clear()
        for peer, (records, claims) in batches.items():
            self.send_items(peer, records, claims)

    def send_items(
        self,
        peer: bytes,
        records: list[PresenceRecord],
        claims: list[MeshClaim],
        *,
        repair: bool = False,
    ) -> None:
        step = MAX_GOSSIP_ITEMS
        for start in range(0, max(len(records), len(claims)), step):
            chunk_records = tuple(records[start : start + step])
            chunk_claims = tuple(claims[start : start + step])
            self._outgoing.send(peer, MeshGossip(chunk_records, chunk_claims, repair))

    def piggyback(self) -> tuple[tuple[PresenceRecord, ...], tuple[MeshClaim, ...]]:
        """The newest news for one probe; each item rides a limited number of times."""
        records: list[PresenceRecord] = []
        claims: list[MeshClaim] = []
        for key in list(self._piggyback)[: self._config.piggyback_max]:
            item, remaining = self._piggyback.pop(key)
            if isinstance(item, PresenceRecord):
                records.append(item)
            else:
                claims.append(item)
            if remaining > 1:
                self._piggyback[key] = (item, remaining - 1)
        return tuple(records), tuple(claims)

    def _let_go(self, record: PresenceRecord) -> None:
        """A member was forgotten to make room: no view or news may keep pointing at it."""
        peer = record.owner
        self._views.remove(peer)
        self._piggyback.pop(("r", peer), None)
        self._piggyback.pop(("c", peer), None)
        self._events.put(MemberForgotten(record))
