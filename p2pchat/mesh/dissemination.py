"""Spreading news (records and claims) through the mesh.

News is what changes what a member is shown as: a new record, a dead claim. It is
pushed at once to every neighbour but the one it came from, batched per neighbour
after each call into the core: in full to eager neighbours, by id to lazy ones
(:mod:`.tree`, which settles the eager links into a spanning tree). It is not also
piggybacked on probes: sessions run over TCP, where a pushed message arrives or the
session breaks, and anti-entropy repairs what a broken session lost. Suspicions and
their answers are not news: they travel between the accuser and the subject alone
(:mod:`.failure`, :mod:`.own_record`).
A member forgotten to make room is dropped from the news and from the views before
anything more is sent: what is dropped is never passed on. Neither is an unlisted
member (§11.1): its record and any claim about it stay with us.
"""

from __future__ import annotations

from collections.abc import Callable

from p2pchat.mesh.events import MemberForgotten
from p2pchat.mesh.shared import Part, Shared
from p2pchat.mesh.tree import NewsTree, news_entry
from p2pchat.mesh.views import Views
from p2pchat.wire.messages import MAX_GOSSIP_ITEMS, MeshClaim, MeshGossip, PresenceRecord

Item = PresenceRecord | MeshClaim


def _about(item: Item) -> bytes:
    return item.owner if isinstance(item, PresenceRecord) else item.subject


class Dissemination(Part):
    def __init__(self, shared: Shared, views: Views, tree: NewsTree) -> None:
        super().__init__(shared)
        self._views = views
        self._tree = tree
        self._flood: list[tuple[Item, bytes | None]] = []
        # Neighbours our own probes failed to reach: dead claims skip them, since one
        # cut off with the claim's subject would carry a death across the cut when it
        # heals (anti-entropy brings them the news later, as a suspicion). Set by the
        # core.
        self.unreachable: Callable[[bytes], bool] = lambda peer: False

    def spread(self, item: Item, source: bytes | None) -> None:
        """News from ``source`` (None: our own): pushed at the next flush."""
        self._flood.append((item, source))

    def flush(self, now: float) -> None:
        for record in self._members.take_evicted():
            self._let_go(record)
        self._tree.keep(self._views.active)
        if not self._flood:
            return
        batches: dict[bytes, tuple[list[PresenceRecord], list[MeshClaim]]] = {}
        # A fixed order keeps a seeded run repeatable.
        neighbours = sorted(self._views.active)
        reachable = [peer for peer in neighbours if not self.unreachable(peer)]
        lazy_push = self._config.lazy_push
        unlisted = self._members.is_unlisted
        for item, source in self._flood:
            if unlisted(_about(item)):
                continue
            if isinstance(item, PresenceRecord):
                # A record is safe to pass anyone (only a newer one of its owner's
                # replaces it), and on a tree a neighbour skipped here may be a whole
                # subtree's only way in: records skip no one.
                for peer in neighbours:
                    if peer == source:
                        continue
                    if lazy_push and self._tree.is_lazy(peer):
                        self._tree.announce(peer, news_entry(item), now)
                    else:
                        batches.setdefault(peer, ([], []))[0].append(item)
                continue
            # A death leaves a hole in the tree right where its news must travel, so
            # dead claims go in full to every neighbour we can reach (deaths are rare).
            for peer in reachable:
                if peer != source:
                    batches.setdefault(peer, ([], []))[1].append(item)
        self._flood.clear()
        for peer, (records, claims) in batches.items():
            self.send_items(peer, records, claims, tree=lazy_push)

    def send_items(
        self,
        peer: bytes,
        records: list[PresenceRecord],
        claims: list[MeshClaim],
        *,
        repair: bool = False,
        tree: bool = False,
    ) -> None:
        step = MAX_GOSSIP_ITEMS
        for start in range(0, max(len(records), len(claims)), step):
            chunk_records = tuple(records[start : start + step])
            chunk_claims = tuple(claims[start : start + step])
            self._outgoing.send(peer, MeshGossip(chunk_records, chunk_claims, repair, tree))

    def _let_go(self, record: PresenceRecord) -> None:
        """A member was forgotten to make room: no view or news may keep pointing at it."""
        peer = record.owner
        self._views.remove(peer)
        self._flood = [(item, source) for item, source in self._flood if _about(item) != peer]
        self._events.put(MemberForgotten(record))
