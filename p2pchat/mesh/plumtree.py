"""Room broadcast: a Plumtree (epidemic broadcast tree) over one topic's members.

Sans-IO, one :class:`Broadcast` per topic (a room id) on each member, run over the
member's neighbours *in that topic*. The caller tells it which neighbours are up
(:meth:`Broadcast.neighbour_up` / :meth:`Broadcast.neighbour_down`), feeds it messages
with :meth:`Broadcast.receive`, wakes it at :meth:`Broadcast.next_deadline` with
:meth:`Broadcast.tick`, and drains :meth:`Broadcast.take_outgoing` (messages addressed
to peer ids) and :meth:`Broadcast.take_delivered` (each message once, on first receipt).

The idea (Leitão, Pereira, Rodrigues, "Epidemic Broadcast Trees", 2007; docs/protocol.md
§14): every neighbour starts *eager*. A message is pushed in full to eager neighbours
and announced by id (``RoomIHave``, batched) to *lazy* ones. A duplicate shows that a
link is redundant: the receiver moves its sender to lazy and tells it so
(``RoomPrune``), so the eager links settle into a spanning tree. When an announced
message does not arrive in time by the tree (a link or a node broke), the receiver
asks the announcer for it (``RoomGraft``), which also makes that link eager again:
the tree repairs itself. Members who were away catch up with ``RoomDigest``: the ids
of their newest messages, answered with the newest messages they lack (bounded).

The payload is opaque here, but the caller may judge it: a ``check`` given to the
constructor sees the first copy of every message before anything else happens, and a
payload it refuses is not delivered, cached, pushed, announced or served, and its id is
not taken as received (a genuine copy under the same id is still welcome).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

from p2pchat.errors import LocalProtocolError
from p2pchat.mesh.drain import Drain, Outgoing
from p2pchat.ratelimit import KeyedBuckets
from p2pchat.wire.messages import (
    MAX_ROOM_DIGEST_IDS,
    MAX_ROOM_IDS,
    MAX_ROOM_PAYLOAD,
    MAX_ROOM_ROUND,
    MSG_ID_BYTES,
    TOPIC_BYTES,
    RoomDigest,
    RoomGossip,
    RoomGraft,
    RoomIHave,
    RoomPrune,
)

if TYPE_CHECKING:  # the core draws from an injected generator; it never seeds one
    import random


@dataclass(frozen=True, slots=True)
class BroadcastConfig:
    # Lazy announcements are batched: one RoomIHave per lazy neighbour per interval.
    ihave_interval: float = 0.1
    # An announced message missing this long after the first announcement is grafted
    # from the first announcer; if it still has not come, from the next one after
    # graft_retry (LAN round trips are milliseconds, so these are generous).
    graft_timeout: float = 0.2
    graft_retry: float = 0.1
    # Grafts sent per missing id, cycling through its announcers (a graft or its
    # answer may be lost too); then the id is left to anti-entropy.
    graft_attempts: int = 4
    # Plumtree's optimisation: a lazy path this many hops shorter than the eager one
    # replaces it (graft the announcer, prune the eager sender). None turns it off.
    optimize_threshold: int | None = 7
    # Memory bounds.
    received_max: int = 4096  # ids of delivered messages (LRU): duplicates are detected
    cache_max: int = 1024  # payloads kept to answer grafts and digests ...
    cache_bytes: int = 8 * 1024 * 1024  # ... and their total size
    missing_max: int = 1024  # announced-but-not-received ids being waited for
    announcers_max: int = 4  # announcers remembered per missing id
    lazy_queue_max: int = 1024  # ids waiting to be announced to one lazy neighbour
    # Catch-up: a digest lists our newest digest_ids ids; the answer carries at most
    # catchup_max messages and catchup_bytes bytes, newest first, chosen among the
    # answerer's newest catchup_max messages.
    digest_ids: int = 128
    catchup_max: int = 64
    catchup_bytes: int = 512 * 1024
    # A digest (asking for one back, so the exchange repairs both sides) is owed to a
    # neighbour that comes up and to one whose session opened again (resync); owed
    # digests go out one per digest_gap, in turn, so a returning member that the first
    # answer caught up costs the others a short digest each, not a full answer. One
    # random neighbour also gets one every anti_entropy_interval (None: never), which
    # repairs what announcements missed.
    digest_gap: float = 1.0
    anti_entropy_interval: float | None = 30.0
    # Payloads sent on request (graft and digest answers) per neighbour: a member that
    # asks over and over cannot turn a small request into a flood of payloads.
    serve_rate: float = 128.0  # per second
    serve_burst: int = 512

    def __post_init__(self) -> None:
        if self.digest_ids > MAX_ROOM_DIGEST_IDS:
            raise ValueError(f"digest_ids must be at most {MAX_ROOM_DIGEST_IDS}")


@dataclass(slots=True)
class _Cached:
    payload: bytes
    round: int  # hops from the origin when it reached us
    sender: bytes | None  # who pushed it to us eagerly (None: ours, a repair, or settled)
    repaired: bool = False  # taken from a catch-up answer, so not passed on yet


@dataclass(slots=True)
class _Missing:
    deadline: float
    announcers: list[tuple[bytes, int]] = field(default_factory=list)
    grafts: int = 0


Check = Callable[[bytes, bytes, bytes], bool]  # (carrier, msg_id, payload) -> take it?


class Broadcast:
    """One member's Plumtree for one topic. Peers are opaque ids (bytes)."""

    def __init__(
        self,
        topic: bytes,
        *,
        now: float,
        rng: random.Random,
        config: BroadcastConfig | None = None,
        check: Check | None = None,
    ) -> None:
        if len(topic) != TOPIC_BYTES:
            raise LocalProtocolError(f"a topic has {TOPIC_BYTES} bytes, not {len(topic)}")
        self.topic = topic
        self.config = config or BroadcastConfig()
        self.rng = rng
        self._check = check
        self.eager: set[bytes] = set()
        self.lazy: set[bytes] = set()
        # Peers we are not linked to whose announcements, grafts and digests we still
        # take (they may take us for a neighbour): nothing is pushed or announced to them.
        self.heard: frozenset[bytes] = frozenset()
        self._received: OrderedDict[bytes, None] = OrderedDict()
        # Received ids that are news only while they spread (a room's join notices):
        # neither listed in our digests nor served in catch-up answers. A subset of
        # _received, so bounded by it.
        self._ephemeral: set[bytes] = set()
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()  # oldest first
        self._cache_size = 0
        self._missing: dict[bytes, _Missing] = {}
        self._lazy_queue: dict[bytes, OrderedDict[bytes, int]] = {}
        self._flush_at: float | None = None
        self._outgoing = Outgoing()
        self._delivered = Drain[tuple[bytes, bytes]]()
        self._last_digest = -float("inf")
        # Neighbours owed a digest, in turn, and whether it asks for one back.
        self._owed: dict[bytes, bool] = {}
        self._served = KeyedBuckets(self.config.serve_rate, self.config.serve_burst, capacity=1024)
        interval = self.config.anti_entropy_interval
        self._next_anti_entropy = (
            float("inf") if interval is None else now + rng.uniform(0.5, 1.5) * interval
        )

    # ------------------------------------------------------------------ public API

    @property
    def neighbours(self) -> set[bytes]:
        return self.eager | self.lazy

    def broadcast(self, msg_id: bytes, payload: bytes, now: float) -> None:
        """Publish our own message: deliver it locally and push it to the eager peers.

        An id already seen is ignored (the message is out already). Raises
        :class:`LocalProtocolError` for a wrong-sized id or an oversized payload.
        """
        if len(msg_id) != MSG_ID_BYTES:
            raise LocalProtocolError(f"a message id has {MSG_ID_BYTES} bytes")
        if len(payload) > MAX_ROOM_PAYLOAD:
            raise LocalProtocolError(f"a room payload has at most {MAX_ROOM_PAYLOAD} bytes")
        if msg_id in self._received:
            return
        self._accept(msg_id, payload, 0, None, now)

    def neighbour_up(self, peer: bytes, now: float) -> None:
        """``peer`` is now our neighbour in this topic: push to it eagerly, and catch up
        (a digest is owed to it)."""
        if peer in self.eager or peer in self.lazy:
            return
        self.eager.add(peer)
        self.resync(peer, now)

    def resync(self, peer: bytes, now: float) -> None:
        """We may have missed what ``peer`` has (its session with us broke and came back,
        say): owe it a digest. Makes it a neighbour if it was not one."""
        if peer not in self.eager and peer not in self.lazy:
            self.eager.add(peer)
        self._owe(peer, True, now)

    def hear(self, peers: frozenset[bytes]) -> None:
        """Take announcements, grafts and digests from ``peers`` too (besides the
        neighbours), without linking to them."""
        for peer in self.heard - peers - self.neighbours:
            self._forget(peer)
        self.heard = peers

    def neighbour_down(self, peer: bytes, now: float) -> None:
        self.eager.discard(peer)
        self.lazy.discard(peer)
        self._lazy_queue.pop(peer, None)
        if self._owed.get(peer):
            # A catch-up owed to the link, which is gone. While a room forms, each
            # member's ring neighbours change with every joiner near it: sending each
            # one that has passed a digest cost a session per passer-by. An answer
            # owed to a heard member's question (False) still goes.
            del self._owed[peer]
        if peer not in self.heard:
            self._forget(peer)

    def _forget(self, peer: bytes) -> None:
        """Neither a neighbour nor heard: nothing is owed to it or expected from it."""
        self._owed.pop(peer, None)
        for msg_id, missing in list(self._missing.items()):
            missing.announcers = [a for a in missing.announcers if a[0] != peer]
            if not missing.announcers:
                del self._missing[msg_id]

    def receive(self, peer: bytes, message: Any, now: float) -> None:
        """Handle one decoded message from ``peer``; other topics and types are ignored."""
        if getattr(message, "topic", None) != self.topic:
            return
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(self, peer, message, now)

    def tick(self, now: float) -> None:
        for msg_id, missing in list(self._missing.items()):
            if now >= missing.deadline:
                self._graft_next(msg_id, missing, now)
        if self._flush_at is not None and now >= self._flush_at:
            self._flush_lazy()
        self._send_owed(now)
        if now >= self._next_anti_entropy:
            if self.neighbours:
                self._send_digest(self.rng.choice(sorted(self.neighbours)), now, ask=True)
            assert self.config.anti_entropy_interval is not None
            jitter = self.rng.uniform(0.5, 1.5)
            self._next_anti_entropy = now + jitter * self.config.anti_entropy_interval

    def next_deadline(self) -> float:
        deadlines = [self._next_anti_entropy]
        if self._owed:
            deadlines.append(self._last_digest + self.config.digest_gap)
        if self._flush_at is not None:
            deadlines.append(self._flush_at)
        deadlines.extend(missing.deadline for missing in self._missing.values())
        return min(deadlines)

    def remember(self, msg_id: bytes, payload: bytes) -> None:
        """An old message (from the caller's storage, after a restart): known and kept to
        answer grafts and digests, but neither delivered nor pushed again."""
        if msg_id in self._received:
            return
        self._accept(msg_id, payload, 0, None, 0.0, push=False, deliver=False)

    def take_outgoing(self) -> list[tuple[bytes, Any]]:
        return self._outgoing.take()

    def take_delivered(self) -> list[tuple[bytes, bytes]]:
        """``(msg_id, payload)`` of each message received for the first time, in order."""
        return self._delivered.take()

    def has(self, msg_id: bytes) -> bool:
        return msg_id in self._received

    def ephemeral(self, msg_id: bytes) -> None:
        """A message we have that is news only while it spreads: grafts for it are
        answered, but it is left out of our digests and catch-up answers (§14.2), where
        a burst of them would crowd out what members need to catch up on."""
        if msg_id in self._received:
            self._ephemeral.add(msg_id)

    @property
    def memory(self) -> dict[str, int]:
        """Sizes of the bounded structures (for tests and diagnostics)."""
        return {
            "received": len(self._received),
            "cache": len(self._cache),
            "ephemeral": len(self._ephemeral),
            "cache_bytes": self._cache_size,
            "missing": len(self._missing),
            "lazy_queue": sum(len(queue) for queue in self._lazy_queue.values()),
            "owed_digests": len(self._owed),
            "serve_buckets": len(self._served),
        }

    # ------------------------------------------------------------------ message handlers

    def _on_gossip(self, peer: bytes, message: RoomGossip, now: float) -> None:
        neighbour = peer in self.eager or peer in self.lazy
        if message.msg_id in self._received:
            self._received.move_to_end(message.msg_id)
            if neighbour and not message.repair:
                cached = self._cache.get(message.msg_id)
                if cached is not None and cached.repaired:
                    # A catch-up answer overtook the tree's copy, and was not passed
                    # on: this is the first tree copy, so the link stays and it goes on.
                    cached.repaired = False
                    cached.sender, cached.round = peer, message.round
                    self._make_eager(peer)
                    self._push(message.msg_id, cached.payload, message.round, peer, now)
                    return
                # A second copy: this link is redundant in the tree.
                self._make_lazy(peer)
                self._send(peer, RoomPrune(self.topic))
            elif not message.repair:
                # From a member that is not our neighbour (an older peer that links to
                # every member, or one whose view of the room is a moment behind ours):
                # it should announce, not push, to us.
                self._send(peer, RoomPrune(self.topic))
            self._has_it(peer, message.msg_id)
            return
        if self._check is not None and not self._check(peer, message.msg_id, message.payload):
            return  # refused (or kept aside by the caller): as if it had never come
        sender = None
        if neighbour and not message.repair:
            self._make_eager(peer)
            sender = peer
        self._accept(
            message.msg_id, message.payload, message.round, sender, now, push=not message.repair
        )
        cached = self._cache.get(message.msg_id)
        if message.repair and cached is not None:
            cached.repaired = True

    def _on_ihave(self, peer: bytes, message: RoomIHave, now: float) -> None:
        if not self._hears(peer):
            return
        for msg_id, round_ in zip(message.ids, message.rounds, strict=True):
            self._has_it(peer, msg_id)
            if msg_id in self._received:
                self._optimize_on_announce(peer, msg_id, round_)
                continue
            missing = self._missing.get(msg_id)
            if missing is None:
                if len(self._missing) >= self.config.missing_max:
                    continue  # anti-entropy will bring it
                missing = self._missing[msg_id] = _Missing(now + self.config.graft_timeout)
            known = any(announcer == peer for announcer, _ in missing.announcers)
            if not known and len(missing.announcers) < self.config.announcers_max:
                missing.announcers.append((peer, round_))

    def _on_graft(self, peer: bytes, message: RoomGraft, now: float) -> None:
        if not self._hears(peer):
            return
        if peer in self.lazy:
            self._make_eager(peer)
        for msg_id in message.ids:
            cached = self._cache.get(msg_id)
            if cached is not None and self._served.take(peer, now):
                self._send(peer, self._gossip(msg_id, cached))

    def _on_prune(self, peer: bytes, message: RoomPrune, now: float) -> None:
        if peer in self.eager:
            self._make_lazy(peer)

    def _on_digest(self, peer: bytes, message: RoomDigest, now: float) -> None:
        if not self._hears(peer):
            return
        theirs = set(message.ids)
        budget = self.config.catchup_bytes
        candidates = (
            item for item in reversed(self._cache.items()) if item[0] not in self._ephemeral
        )
        newest = islice(candidates, self.config.catchup_max)
        for msg_id, cached in newest:
            if msg_id in theirs:
                continue
            budget -= len(cached.payload)
            if budget < 0 or not self._served.take(peer, now):
                break
            self._send(peer, self._gossip(msg_id, cached, repair=True))
        if message.want_reply:  # it may lack what we have, and not know it
            self._owe(peer, False, now)

    _handlers: ClassVar[dict[type, Callable[[Broadcast, bytes, Any, float], None]]] = {
        RoomGossip: _on_gossip,
        RoomIHave: _on_ihave,
        RoomGraft: _on_graft,
        RoomPrune: _on_prune,
        RoomDigest: _on_digest,
    }

    # ------------------------------------------------------------------ internals

    def _accept(
        self,
        msg_id: bytes,
        payload: bytes,
        round_: int,
        sender: bytes | None,
        now: float,
        *,
        push: bool = True,
        deliver: bool = True,
    ) -> None:
        """First receipt: remember, deliver, push to eager peers and announce to lazy ones
        (unless it is a catch-up repair: old news, which the neighbours have had; or a
        message the caller stored before a restart, which it has had too)."""
        self._received[msg_id] = None
        while len(self._received) > self.config.received_max:
            self._ephemeral.discard(self._received.popitem(last=False)[0])
        missing = self._missing.pop(msg_id, None)
        cached = _Cached(payload, round_, sender)
        self._cache[msg_id] = cached
        self._cache_size += len(payload)
        while self._cache and (
            len(self._cache) > self.config.cache_max or self._cache_size > self.config.cache_bytes
        ):
            _, old = self._cache.popitem(last=False)
            self._cache_size -= len(old.payload)
        if deliver:
            self._delivered.put((msg_id, payload))
        if push:
            announced = frozenset(a for a, _ in missing.announcers) if missing else frozenset()
            self._push(msg_id, payload, round_, sender, now, announced)

    def _push(
        self,
        msg_id: bytes,
        payload: bytes,
        round_: int,
        sender: bytes | None,
        now: float,
        announced: frozenset[bytes] = frozenset(),
    ) -> None:
        onward = min(round_ + 1, MAX_ROOM_ROUND)
        gossip = RoomGossip(self.topic, msg_id, onward, payload)
        for peer in sorted(self.eager):  # a fixed order keeps a seeded run repeatable
            if peer != sender:
                self._send(peer, gossip)
        for peer in self.lazy:
            # Who announced it to us has it: an announcement back would only cost bytes.
            if peer != sender and peer not in announced:
                self._announce(peer, msg_id, onward, now)

    def _has_it(self, peer: bytes, msg_id: bytes) -> None:
        """``peer`` showed it has ``msg_id``: do not announce it to it."""
        queue = self._lazy_queue.get(peer)
        if queue is not None:
            queue.pop(msg_id, None)

    def _announce(self, peer: bytes, msg_id: bytes, round_: int, now: float) -> None:
        queue = self._lazy_queue.setdefault(peer, OrderedDict())
        queue[msg_id] = round_
        while len(queue) > self.config.lazy_queue_max:
            queue.popitem(last=False)
        if self._flush_at is None:
            self._flush_at = now + self.config.ihave_interval

    def _flush_lazy(self) -> None:
        self._flush_at = None
        queues, self._lazy_queue = self._lazy_queue, {}
        for peer in sorted(queues):
            items = list(queues[peer].items())
            for start in range(0, len(items), MAX_ROOM_IDS):
                chunk = items[start : start + MAX_ROOM_IDS]
                ids = tuple(msg_id for msg_id, _ in chunk)
                rounds = tuple(round_ for _, round_ in chunk)
                self._send(peer, RoomIHave(self.topic, ids, rounds))

    def _graft_next(self, msg_id: bytes, missing: _Missing, now: float) -> None:
        if missing.announcers and missing.grafts < self.config.graft_attempts:
            # Announcers are neighbours (neighbour_down removes them): ask the first,
            # and put it last in case this graft or its answer is lost.
            announcer = missing.announcers.pop(0)
            missing.announcers.append(announcer)
            missing.grafts += 1
            if announcer[0] in self.lazy:  # a heard peer answers, but stays unlinked
                self._make_eager(announcer[0])
            self._send(announcer[0], RoomGraft(self.topic, (msg_id,)))
            missing.deadline = now + self.config.graft_retry
            return
        del self._missing[msg_id]  # anti-entropy or a later announcement brings it

    def _optimize_on_announce(self, peer: bytes, msg_id: bytes, round_: int) -> None:
        threshold = self.config.optimize_threshold
        cached = self._cache.get(msg_id)
        if threshold is None or cached is None or cached.sender is None:
            return
        if round_ + threshold < cached.round and cached.sender != peer:
            # The lazy path is much shorter: make it the tree link instead.
            old = cached.sender
            cached.sender = None  # one swap per message
            self._make_eager(peer)
            self._send(peer, RoomGraft(self.topic, ()))
            if old in self.eager:
                self._make_lazy(old)
                self._send(old, RoomPrune(self.topic))

    def _owe(self, peer: bytes, ask: bool, now: float) -> None:
        self._owed[peer] = ask or self._owed.get(peer, False)
        self._send_owed(now)

    def _send_owed(self, now: float) -> None:
        # The same sum as next_deadline's: now - last >= gap can stay false at that very
        # deadline (rounding), and a timer that never fires spins its runner.
        if self._owed and now >= self._last_digest + self.config.digest_gap:
            peer, ask = next(iter(self._owed.items()))
            self._send_digest(peer, now, ask=ask)

    def _send_digest(self, peer: bytes, now: float, *, ask: bool) -> None:
        self._last_digest = now
        owed = self._owed.pop(peer, False)  # this one covers what was owed
        ask = ask or owed
        listed = (msg_id for msg_id in reversed(self._received) if msg_id not in self._ephemeral)
        newest = islice(listed, self.config.digest_ids)
        self._send(peer, RoomDigest(self.topic, tuple(newest), want_reply=ask))

    def _gossip(self, msg_id: bytes, cached: _Cached, *, repair: bool = False) -> RoomGossip:
        onward = min(cached.round + 1, MAX_ROOM_ROUND)
        return RoomGossip(self.topic, msg_id, onward, cached.payload, repair)

    def _hears(self, peer: bytes) -> bool:
        return peer in self.eager or peer in self.lazy or peer in self.heard

    def _make_eager(self, peer: bytes) -> None:
        self.lazy.discard(peer)
        self.eager.add(peer)

    def _make_lazy(self, peer: bytes) -> None:
        self.eager.discard(peer)
        self.lazy.add(peer)

    def _send(self, peer: bytes, message: Any) -> None:
        self._outgoing.send(peer, message)


# What the I/O layer hands to Broadcast.receive: exactly the types it handles.
ROOM_MESSAGES = tuple(Broadcast._handlers)
