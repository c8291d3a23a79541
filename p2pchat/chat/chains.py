"""Sender chains: forward secrecy inside a room epoch (docs/protocol.md §15.7).

Pure: keys arrive as bytes, nothing here touches a store or a clock.

In a **chained** epoch nobody encrypts with the epoch key itself. From it each member
derives, for every author of the epoch, the first key of that author's chain; each
message of the author takes the next key of its chain (a hash ratchet, as Signal's
sender keys), and the chain moves on:

    chain key 0 = BLAKE2b(key=K, room_id || epoch || author)
    message key i = BLAKE2b(key=chain key i, 0x01)
    chain key i+1 = BLAKE2b(key=chain key i, 0x02)

A reader keeps, per author, only the chain key of the next index it has not read, and
the message keys of indices it skipped (out of order, or not come yet), a bounded
number. A message key is deleted when its message is read, so what a member holds
today opens no message it read yesterday; and the epoch key is deleted once every
member has shown it holds it (the node's rule, §15.7), so nobody can start a chain
again from the top.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

KEY_BYTES = 32
INDEX_BYTES = 8  # a chained message's nonce begins with its index, big-endian
MAX_SKIP = 2048  # a message this far past the next unread index of its chain is refused
MAX_SKIPPED = 2048  # skipped message keys kept per chain (the oldest go first)
MAX_SKIPPED_PER_ROOM = 16384  # and per room, over all its epochs (the oldest epoch's go)

_KEY_ID = b"p2pchat-room-kid"
_CHAIN = b"p2pchat-chain-0"
_MESSAGE = b"p2pchat-chain-mk"
_NEXT = b"p2pchat-chain-ck"


def _hash(key: bytes, data: bytes, person: bytes) -> bytes:
    return hashlib.blake2b(data, key=key, digest_size=KEY_BYTES, person=person).digest()


def key_id(key: bytes, chained: bool) -> bytes:
    """What names an epoch key, with how it is used (chained or not), once the key
    itself is gone (32 bytes, not secret). The flag is part of the name: an update that
    gives a key with the other flag gives another key (§15.7), so a member cannot
    change how others use a key they hold."""
    return hashlib.blake2b(key + bytes((chained,)), digest_size=KEY_BYTES, person=_KEY_ID).digest()


def first_chain_key(key: bytes, room_id: bytes, epoch: int, author: bytes) -> bytes:
    """Chain key 0 of ``author`` in the epoch whose key is ``key``."""
    return _hash(key, room_id + epoch.to_bytes(8, "big") + author, _CHAIN)


def message_key(chain_key: bytes) -> bytes:
    return _hash(chain_key, b"\x01", _MESSAGE)


def next_chain_key(chain_key: bytes) -> bytes:
    return _hash(chain_key, b"\x02", _NEXT)


def nonce_index(nonce: bytes) -> int:
    """The chain index a chained message's nonce carries."""
    return int.from_bytes(nonce[:INDEX_BYTES], "big")


def chained_nonce(index: int, random_part: bytes) -> bytes:
    """The 24-byte nonce of a chained message: its index, then 16 random bytes."""
    if len(random_part) != 16:
        raise ValueError("a chained nonce has 16 random bytes after the index")
    return index.to_bytes(INDEX_BYTES, "big") + random_part


class ChainError(ValueError):
    """A message key that cannot be had: read already, skipped too long ago, or too
    far ahead."""


@dataclass(slots=True)
class Chain:
    """One author's chain as one reader holds it."""

    next_index: int
    chain_key: bytes = field(repr=False)
    skipped: dict[int, bytes] = field(default_factory=dict, repr=False)

    def key_for(self, index: int) -> bytes:
        """The message key of ``index``, without changing anything (checked first,
        taken by :meth:`take` once the message is kept)."""
        if index in self.skipped:
            return self.skipped[index]
        if index < self.next_index:
            raise ChainError(f"message {index} of this chain was read already (its key is gone)")
        if index - self.next_index > MAX_SKIP:
            raise ChainError(f"message {index} is too far ahead of {self.next_index}")
        chain_key = self.chain_key
        for _ in range(index - self.next_index):
            chain_key = next_chain_key(chain_key)
        return message_key(chain_key)

    def take(self, index: int) -> int:
        """Delete the key of ``index`` (its message is kept): the chain moves past it,
        keeping the keys it skipped. A repeat is a no-op. How many keys were added to
        the skipped ones (after dropping the oldest beyond MAX_SKIPPED)."""
        if self.skipped.pop(index, None) is not None or index < self.next_index:
            return 0
        if index - self.next_index > MAX_SKIP:
            raise ChainError(f"message {index} is too far ahead of {self.next_index}")
        added = 0
        while self.next_index < index:
            self.skipped[self.next_index] = message_key(self.chain_key)
            self.chain_key = next_chain_key(self.chain_key)
            self.next_index += 1
            added += 1
        self.chain_key = next_chain_key(self.chain_key)
        self.next_index += 1
        for old in sorted(self.skipped)[: max(0, len(self.skipped) - MAX_SKIPPED)]:
            del self.skipped[old]
        return added

    def encode_skipped(self) -> bytes:
        """The skipped keys as stored: 8-byte index and 32-byte key each, by index."""
        return b"".join(i.to_bytes(8, "big") + self.skipped[i] for i in sorted(self.skipped))

    @staticmethod
    def decode_skipped(data: bytes) -> dict[int, bytes]:
        step = 8 + KEY_BYTES
        return {
            int.from_bytes(data[i : i + 8], "big"): data[i + 8 : i + step]
            for i in range(0, len(data) - len(data) % step, step)
        }


ChainId = tuple[int, bytes, bytes]  # (epoch, key id, author)


class RoomChains:
    """Every chain of one room: (epoch, key id, author) -> Chain, and how many skipped
    keys they hold in all (kept within MAX_SKIPPED_PER_ROOM)."""

    __slots__ = ("_chains", "_skipped")

    def __init__(self) -> None:
        self._chains: dict[ChainId, Chain] = {}
        self._skipped = 0

    def __len__(self) -> int:
        return len(self._chains)

    def start(self, room_id: bytes, epoch: int, key: bytes, members: frozenset[bytes]) -> int:
        """Derive chain key 0 of each member of ``key`` that has no chain yet (a member
        list only grows for a given key by a repeat, so this runs once per member);
        how many chains began."""
        kid = key_id(key, True)
        began = 0
        for member in members:
            if (epoch, kid, member) not in self._chains:
                self._chains[(epoch, kid, member)] = Chain(
                    0, first_chain_key(key, room_id, epoch, member)
                )
                began += 1
        return began

    def get(self, chain_id: ChainId) -> Chain | None:
        return self._chains.get(chain_id)

    def put(self, chain_id: ChainId, chain: Chain) -> list[ChainId]:
        """Hold ``chain`` (loaded, or taken from :meth:`after_take` once stored); the
        chains changed to keep the room within MAX_SKIPPED_PER_ROOM (to store)."""
        old = self._chains.get(chain_id)
        self._skipped += len(chain.skipped) - (0 if old is None else len(old.skipped))
        self._chains[chain_id] = chain
        return self._trim() if self._skipped > MAX_SKIPPED_PER_ROOM else []

    def key_for(self, chain_id: ChainId, index: int) -> bytes:
        chain = self._chains.get(chain_id)
        if chain is None:
            raise ChainError("no chain of this author under this key")
        return chain.key_for(index)

    def after_take(self, chain_id: ChainId, index: int) -> Chain | None:
        """The chain as it is once the key of message ``index`` is deleted: a copy, so
        that memory changes only once the store has taken it (:meth:`put`)."""
        chain = self._chains.get(chain_id)
        if chain is None:
            return None
        after = Chain(chain.next_index, chain.chain_key, dict(chain.skipped))
        after.take(index)
        return after

    def take(self, chain_id: ChainId, index: int) -> list[ChainId]:
        """Delete the key of message ``index`` of the chain, in memory only; the chains
        changed (to store)."""
        after = self.after_take(chain_id, index)
        return [] if after is None else [chain_id, *self.put(chain_id, after)]

    def _trim(self) -> list[ChainId]:
        """Drop skipped keys until the room is within its bound: always the oldest of
        the chain that holds the most (so one member skipping far ahead in epoch after
        epoch loses its own, not the few an honest author's late messages need)."""
        changed: set[ChainId] = set()
        while self._skipped > MAX_SKIPPED_PER_ROOM:
            chain_id = max(self._chains, key=lambda c: (len(self._chains[c].skipped), c))
            chain = self._chains[chain_id]
            excess = min(len(chain.skipped), self._skipped - MAX_SKIPPED_PER_ROOM)
            for old in sorted(chain.skipped)[:excess]:
                del chain.skipped[old]
            self._skipped -= excess
            changed.add(chain_id)
        return sorted(changed)

    def keep_from(self, epoch: int) -> None:
        """Forget the chains of every epoch before ``epoch``."""
        for chain_id in [c for c in self._chains if c[0] < epoch]:
            self._skipped -= len(self._chains.pop(chain_id).skipped)

    def skipped(self) -> int:
        return self._skipped
