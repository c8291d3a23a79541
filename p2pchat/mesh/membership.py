"""Who is in the mesh and in what state: the merge rules for records and claims.

Pure. Each member has the newest genuine record its owner signed and a liveness state.
The precedence is SWIM's, with the owner's record version as the incarnation number:
a claim (suspect or dead) applies to a version; a record with a higher version always
wins over any claim about an older one; at the same version dead beats suspect beats
alive. Only the owner can make a higher version, so only the owner can refute.

The list is bounded (``capacity``): when it is full a newcomer takes the place of the
member :mod:`p2pchat.mesh.eviction` picks (hearsay first, contacts never), or is
refused if every member stands higher than it.

An unlisted member (a node in private discovery, §11.1) is held like any other but is
never named to anyone: it is left out of the summary, the bucket hashes, the digest
entries and the random draws that pick peers to suggest or to keep in reserve. So is a
pairwise member (a contact reached through Tor, §19.5), whatever its record says: it is
ours alone until a session shows it on the LAN.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from p2pchat.mesh.buckets import bucket_hashes, in_mask
from p2pchat.mesh.eviction import EvictionOrder, Standing
from p2pchat.mesh.presence import PresenceStore, Verdict
from p2pchat.wire.messages import MAX_DIGEST_ENTRIES, DigestEntry, MeshClaim, PresenceRecord

if TYPE_CHECKING:
    import random


class State(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"  # someone failed to reach it; still shown online
    DEAD = "dead"  # declared failed: shown offline until it publishes a newer record
    LEFT = "left"  # its own record says offline: a graceful leave


ONLINE_STATES = frozenset({State.ALIVE, State.SUSPECT})


@dataclass(slots=True)
class Member:
    record: PresenceRecord
    state: State = State.ALIVE
    claim_version: int = 0  # the record version the suspect/dead state applies to
    suspect_since: float = 0.0
    confirmers: set[bytes] = field(default_factory=set)
    proven: bool = False  # a session or a verified handshake showed us this identity
    protected: bool = False  # a contact: never forgotten to make room
    introducer: bytes = b""  # the peer that first brought us its record

    @property
    def standing(self) -> Standing:
        if self.protected:
            return Standing.PROTECTED
        return Standing.PROVEN if self.proven else Standing.HEARSAY

    @property
    def peer(self) -> bytes:
        return self.record.owner

    @property
    def online(self) -> bool:
        return self.state in ONLINE_STATES

    @property
    def shown_status(self) -> str:
        return self.record.status if self.online else "offline"


class Change(enum.Enum):
    NONE = "none"
    NEW = "new"  # news worth spreading
    CONFIRMATION = "confirmation"  # another accuser for a suspicion we already hold


def _state_for(record: PresenceRecord) -> State:
    return State.LEFT if record.status == "offline" else State.ALIVE


SUMMARY_PERSON = b"p2pchat-digest"


def summary_of(entries: Iterable[tuple[bytes, int, bool]]) -> bytes:
    """The digest summary (docs/protocol.md §12.3) of (owner, version, dead) triples:
    BLAKE2b with a 16-byte output (not a 64-byte one cut short: the length is a
    parameter of the hash) over ``owner || version (8 bytes, big-endian) || dead
    (1 byte)`` for every member, sorted by owner."""
    digest = hashlib.blake2b(digest_size=16, person=SUMMARY_PERSON)
    for owner, version, dead in sorted(entries):
        digest.update(owner)
        digest.update(version.to_bytes(8, "big"))
        digest.update(b"\x01" if dead else b"\x00")
    return digest.digest()


class Membership:
    def __init__(
        self,
        own: PresenceRecord,
        *,
        capacity: int = 10_000,
        verify: Callable[[PresenceRecord], bool] | None = None,
        protected: Callable[[bytes], bool] | None = None,
        proven_pending: int = 4_096,
    ) -> None:
        if not 1 <= capacity <= MAX_DIGEST_ENTRIES:
            raise ValueError(f"capacity must be 1 to {MAX_DIGEST_ENTRIES}: a digest lists all")
        self.me = own.owner
        self.capacity = capacity
        # One spare slot: a record is judged (stored) before we know there is room.
        self._store = PresenceStore(capacity=capacity + 1, verify=verify)
        self._protected = protected or (lambda peer: False)
        self._members: dict[bytes, Member] = {}
        self._peer_list: list[bytes] = []  # for O(1) random sampling...
        self._peer_index: dict[bytes, int] = {}  # ...and O(1) removal
        self._summary: bytes | None = None
        self._buckets: tuple[bytes, bytes] | None = None  # (summary, bucket hashes)
        # Members by non-alive state, so hot paths never scan the whole membership.
        self._by_state: dict[State, set[bytes]] = {state: set() for state in State}
        self._order = EvictionOrder()
        # Proven before their record arrived (a session opens before gossip flows).
        self._proven_pending: OrderedDict[bytes, None] = OrderedDict()
        self._proven_pending_max = proven_pending
        self._evicted: list[PresenceRecord] = []
        self._unlisted: set[bytes] = set()  # members (us too) whose record is unlisted
        self._pairwise: set[bytes] = set()  # peers met through Tor, not on the LAN (§19.5)
        self.rejected: dict[Verdict, int] = {}
        self.refused_full = 0  # newcomers refused: every member stood higher
        self.set_own(own)

    # --- reading ---

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members.values())

    def get(self, peer: bytes) -> Member | None:
        return self._members.get(peer)

    @property
    def own(self) -> PresenceRecord:
        return self._members[self.me].record

    @property
    def own_state(self) -> State:
        return self._members[self.me].state

    def online_count(self) -> int:
        offline = len(self._by_state[State.DEAD]) + len(self._by_state[State.LEFT])
        return len(self._members) - offline

    def random_peers(self, rng: random.Random, count: int) -> list[bytes]:
        """Up to ``count`` random draws (with repetition) from every member but us."""
        if not self._peer_list:
            return []
        return [rng.choice(self._peer_list) for _ in range(count)]

    def in_state(self, state: State) -> set[bytes]:
        return self._by_state[state]

    def is_unlisted(self, peer: bytes) -> bool:
        """Whether ``peer`` is named to nobody: its record is unlisted, or it is pairwise."""
        return peer in self._unlisted or peer in self._pairwise

    def is_pairwise(self, peer: bytes) -> bool:
        return peer in self._pairwise

    def set_pairwise(self, peer: bytes, pairwise: bool) -> None:
        """``peer`` reaches us through Tor alone (True), or showed itself on the LAN."""
        if peer == self.me:
            return
        if pairwise:
            self._pairwise.add(peer)
        else:
            self._pairwise.discard(peer)
        if peer in self._members:
            self._list(peer, peer in self._unlisted)
            self._summary = None

    def _list(self, peer: bytes, unlisted: bool) -> None:
        """Keep ``peer`` (not us) in the random draws only while it may be named."""
        if unlisted:
            self._unlisted.add(peer)
        else:
            self._unlisted.discard(peer)
        if self.is_unlisted(peer) or peer == self.me:
            if peer in self._peer_index:
                self._drop_from_draws(peer)
        elif peer not in self._peer_index:
            self._peer_index[peer] = len(self._peer_list)
            self._peer_list.append(peer)

    def _drop_from_draws(self, peer: bytes) -> None:
        index = self._peer_index.pop(peer)
        last = self._peer_list.pop()
        if last != peer:
            self._peer_list[index] = last
            self._peer_index[last] = index

    def _set_state(self, member: Member, state: State) -> None:
        self._by_state[member.state].discard(member.peer)
        member.state = state
        self._by_state[state].add(member.peer)
        if state is not State.SUSPECT:
            member.confirmers.clear()
        self._order.set_online(member.peer, member.online)

    # --- standing ---

    def is_proven(self, peer: bytes) -> bool:
        member = self._members.get(peer)
        return member.proven if member is not None else peer in self._proven_pending

    def mark_proven(self, peer: bytes) -> bool:
        """A session or a verified handshake showed us ``peer``. True if a member we
        held as hearsay became proven (worth telling the user about)."""
        if peer == self.me:
            return False
        member = self._members.get(peer)
        if member is None:
            self._proven_pending[peer] = None
            self._proven_pending.move_to_end(peer)
            while len(self._proven_pending) > self._proven_pending_max:
                self._proven_pending.popitem(last=False)
            return False
        if member.proven:
            self._order.touch(peer)
            return False
        member.proven = True
        self._order.place(peer, member.standing, member.online, member.introducer)
        return True

    def take_evicted(self) -> list[PresenceRecord]:
        """The records of members forgotten to make room since the last call."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def _make_room(self, standing: Standing) -> bool:
        while len(self._members) >= self.capacity:
            victim = self._order.first(standing)
            if victim is None:
                return False
            member = self._members[victim]
            if self._protected(victim):  # became a contact since we placed it
                member.protected = True
                self._order.remove(victim)
                continue
            self._forget(member)
        return True

    def _forget(self, member: Member) -> None:
        peer = member.peer
        del self._members[peer]
        self._store.forget(peer)
        self._order.remove(peer)
        self._by_state[member.state].discard(peer)
        if peer in self._peer_index:
            self._drop_from_draws(peer)
        self._unlisted.discard(peer)
        self._pairwise.discard(peer)
        self._evicted.append(member.record)
        self._summary = None

    # --- merging ---

    def set_own(self, record: PresenceRecord) -> None:
        judgement = self._store.offer(record)
        if judgement.verdict is not Verdict.ACCEPTED:
            raise ValueError(f"own record refused: {judgement.verdict.value} {judgement.reason}")
        member = self._members.setdefault(self.me, Member(record, proven=True))
        member.record = record
        self._list(self.me, record.unlisted)
        self._set_state(member, _state_for(record))
        self._summary = None

    def offer_record(self, record: PresenceRecord, *, introducer: bytes = b"") -> Change:
        """Judge a record from anywhere; ``introducer`` is the peer it came from."""
        judgement = self._store.offer(record)
        if judgement.verdict is not Verdict.ACCEPTED:
            if judgement.verdict is not Verdict.DUPLICATE:
                self.rejected[judgement.verdict] = self.rejected.get(judgement.verdict, 0) + 1
            return Change.NONE
        member = self._members.get(record.owner)
        if member is None:
            member = Member(record, introducer=introducer)
            member.proven = record.owner in self._proven_pending
            self._proven_pending.pop(record.owner, None)
            member.protected = self._protected(record.owner)
            if not self._make_room(member.standing):
                self._store.forget(record.owner)
                self.refused_full += 1
                return Change.NONE
            self._members[record.owner] = member
            self._order.place(record.owner, member.standing, True, introducer)
            self._set_state(member, _state_for(record))
        elif member.state in (State.SUSPECT, State.DEAD) and member.claim_version >= record.version:
            member.record = record  # the claim is about this version or newer: it stands
        else:
            member.record = record
            self._set_state(member, _state_for(record))
        self._list(record.owner, record.unlisted)
        self._summary = None
        return Change.NEW

    def our_claim(self, member: Member, state: str) -> MeshClaim:
        """Our claim that ``member`` is ``state`` (suspect or dead), about the newest
        version of it we know of."""
        version = max(member.record.version, member.claim_version)
        return MeshClaim(member.peer, version, state, self.me)

    def offer_claim(self, claim: MeshClaim, now: float) -> Change:
        member = self._members.get(claim.subject)
        if member is None or claim.subject == self.me:
            return Change.NONE  # unknown: anti-entropy brings the record with the claim
        if claim.version < member.record.version or member.state is State.LEFT:
            return Change.NONE
        if claim.state == "dead":
            if member.state is State.DEAD and member.claim_version >= claim.version:
                return Change.NONE
            self._set_state(member, State.DEAD)
            member.claim_version = claim.version
            self._summary = None
            return Change.NEW
        if claim.state != "suspect" or member.state is State.DEAD:
            return Change.NONE
        if member.state is State.SUSPECT and member.claim_version >= claim.version:
            if claim.accuser in member.confirmers:
                return Change.NONE
            member.confirmers.add(claim.accuser)
            return Change.CONFIRMATION
        self._set_state(member, State.SUSPECT)
        member.claim_version = claim.version
        member.suspect_since = now
        member.confirmers = {claim.accuser}
        return Change.NEW

    def revive(self, peer: bytes) -> bool:
        """An unlisted member we marked offline when its session broke has a session
        again: what its record says, at the same version (it sends no newer one)."""
        member = self._members.get(peer)
        if member is None or not self.is_unlisted(peer) or member.state is not State.DEAD:
            return False
        self._set_state(member, _state_for(member.record))
        self._summary = None
        return True

    def clear_suspicion(self, peer: bytes) -> bool:
        """``peer`` showed it is alive to us (it sent us a message, or a suspicion only
        heard from others lapsed): alive again at the same version. A claim about that
        version may suspect it again; only its owner's new version overrides that."""
        member = self._members.get(peer)
        if member is None or member.state is not State.SUSPECT:
            return False
        self._set_state(member, State.ALIVE)
        return True

    # --- anti-entropy ---

    def entry(self, member: Member) -> DigestEntry:
        return DigestEntry(member.peer, member.record.version, member.state is State.DEAD)

    def _listed(self) -> Iterator[tuple[bytes, Member]]:
        unlisted, pairwise = self._unlisted, self._pairwise
        return (
            (peer, m)
            for peer, m in self._members.items()
            if peer not in unlisted and peer not in pairwise
        )

    def entries(self) -> list[DigestEntry]:
        return [self.entry(member) for _, member in self._listed()]

    def entries_in(self, mask: bytes) -> list[DigestEntry]:
        """Our entries in the buckets of ``mask``, and version 0 for each proven peer
        whose record we lack there: the other side sends what it holds of them."""
        held = [self.entry(m) for peer, m in self._listed() if in_mask(mask, peer)]
        pending = [DigestEntry(p, 0) for p in self._proven_pending if in_mask(mask, p)]
        return held + pending

    def bucket_hashes(self) -> bytes:
        """The 64 bucket hashes of :mod:`p2pchat.mesh.buckets` over every member."""
        summary = self.summary()
        if self._buckets is None or self._buckets[0] != summary:
            dead = self._by_state[State.DEAD]
            triples = ((peer, m.record.version, peer in dead) for peer, m in self._listed())
            self._buckets = (summary, bucket_hashes(triples))
        return self._buckets[1]

    def summary(self) -> bytes:
        """A 16-byte hash of every (owner, version, dead): equal summaries, equal views."""
        if self._summary is None:
            dead = self._by_state[State.DEAD]
            triples = ((peer, m.record.version, peer in dead) for peer, m in self._listed())
            self._summary = summary_of(triples)
        return self._summary


def newer(mine: DigestEntry, theirs: DigestEntry | None) -> bool:
    """Does ``mine`` tell the holder of ``theirs`` something it does not know?"""
    if theirs is None:
        return True
    return (mine.version, mine.dead) > (theirs.version, theirs.dead)
