"""What a receiver holds of one file and what it asks for next (docs/protocol.md §16.3),
sans-IO: blocks in, verdicts and requests out, time as an argument.

A download knows the file by its root and size. It asks for missing blocks in order,
keeping at most ``window`` asked and unanswered, so the chat messages that share the
session wait behind a bounded amount of file data. Every block that comes is checked
against the root (§16.1) before the caller may write it; one that fails is the
sender's fault and the caller stops asking that peer. Blocks are asked by index, so a
download made again from its held map (after a restart, a lost session, days away)
asks only for what it lacks.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence

from p2pchat.files.blocks import BLOCK_SIZE, block_count, block_length, verify_block

DEFAULT_WINDOW = 32  # 8 MiB in flight per download
ASK_AGAIN_AFTER = 30.0  # seconds an asked block may take before it is asked again


class Verdict(enum.Enum):
    CLAIMED = "claimed"  # asked and not held: check it, then stored() or failed()
    STORED = "stored"  # verified: write it at index * BLOCK_SIZE
    DUPLICATE = "duplicate"  # held already: nothing to write
    UNASKED = "unasked"  # not asked for (or asked of no one now): ignored
    BAD = "bad"  # does not verify: the sender's fault


class Download:
    def __init__(
        self,
        root: bytes,
        size: int,
        held: bytes = b"",
        *,
        window: int = DEFAULT_WINDOW,
        ask_again_after: float = ASK_AGAIN_AFTER,
        order: Sequence[int] | None = None,
    ) -> None:
        """``held``: a map from :meth:`held_map` of an earlier run (empty: nothing held).
        ``order``: the order to ask the blocks in (every index once; default: from the
        first): a room's members each ask in an order of their own, so that they soon
        hold different blocks to serve each other (§16.4)."""
        self.root = root
        self.size = size
        self.count = block_count(size)
        self.window = window
        self.ask_again_after = ask_again_after
        self._held = bytearray((self.count + 7) // 8)
        if held:
            if len(held) != len(self._held):
                raise ValueError(f"a held map of {len(held)} bytes for {self.count} blocks")
            self._held[:] = held
            # Bits past the last block mean nothing; a map is never trusted to be tidy.
            if self.count % 8:
                self._held[-1] &= (1 << (self.count % 8)) - 1
        self.held_count = sum(bin(byte).count("1") for byte in self._held)
        self._asked: dict[int, float] = {}  # index -> when it was asked
        self._checking: set[int] = set()  # come, claimed, being checked and written
        self._next = 0  # blocks before this were held or asked once
        self._again: deque[int] = deque()  # asked once, to ask again
        if order is not None and sorted(order) != list(range(self.count)):
            raise ValueError("an order names every block once")
        self._order = None if order is None else list(order)

    # ---------------------------------------------------------------- state

    @property
    def complete(self) -> bool:
        return self.held_count == self.count

    @property
    def held_bytes(self) -> int:
        if self.complete:
            return self.size
        last = self.count - 1
        return self.held_count * BLOCK_SIZE - (
            BLOCK_SIZE - block_length(self.size, last) if self.held(last) else 0
        )

    def held(self, index: int) -> bool:
        return bool(self._held[index >> 3] & (1 << (index & 7)))

    def held_map(self) -> bytes:
        """What to store to resume from (one bit per block, block 0 the lowest bit)."""
        return bytes(self._held)

    @property
    def asked(self) -> frozenset[int]:
        return frozenset(self._asked)

    @property
    def waiting(self) -> int:
        """Blocks asked and not yet answered, or come and not yet checked: at most
        ``window`` (what a sender can make us hold at once)."""
        return len(self._asked) + len(self._checking)

    # ---------------------------------------------------------------- asking

    def to_ask(self, now: float) -> list[int]:
        """The blocks to ask for now (marked asked at ``now``): those whose answer is
        overdue, then those to ask again, then the next missing ones, while fewer than
        ``window`` wait."""
        overdue = [i for i, at in self._asked.items() if now - at >= self.ask_again_after]
        for index in overdue:
            del self._asked[index]
        asking = overdue[: self.window - self.waiting]
        self._again.extend(overdue[len(asking) :])
        if not asking and 0 < self.window - self.waiting < self.window // 4:
            return []  # ask in batches of a quarter window: fewer, fuller requests
        while self.waiting + len(asking) < self.window:
            missing = self._take_missing()
            if missing is None:
                break
            asking.append(missing)
        for index in asking:
            self._asked[index] = now
        return asking

    def _take_missing(self) -> int | None:
        while self._again:
            index = self._again.popleft()
            if not self.held(index) and index not in self._asked and index not in self._checking:
                return index
        while self._next < self.count:
            index = self._next if self._order is None else self._order[self._next]
            self._next += 1
            if not self.held(index):
                return index
        return None

    def not_answered(self, blocks: Sequence[int] | None = None) -> None:
        """These blocks (every one asked, if None) will not come from the peer that was
        asked (it said unavailable, or its session ended): ask them again later."""
        for index in list(self._asked) if blocks is None else blocks:
            if self._asked.pop(index, None) is not None:
                self._again.append(index)

    # ---------------------------------------------------------------- receiving

    def claim(self, index: int) -> Verdict:
        """Block ``index`` came: CLAIMED if it was asked for and is not held (the caller
        checks it, with :func:`~p2pchat.files.blocks.verify_block`, then calls
        :meth:`stored` or :meth:`failed`; another copy meanwhile is UNASKED), else
        DUPLICATE or UNASKED. The check may run elsewhere (a worker thread)."""
        if not 0 <= index < self.count:
            return Verdict.UNASKED
        if self.held(index):
            self._asked.pop(index, None)
            return Verdict.DUPLICATE
        if self._asked.pop(index, None) is None:
            return Verdict.UNASKED
        self._checking.add(index)
        return Verdict.CLAIMED

    def stored(self, index: int) -> None:
        """A claimed block verified and written."""
        self._checking.remove(index)
        self._held[index >> 3] |= 1 << (index & 7)
        self.held_count += 1

    def failed(self, index: int) -> None:
        """A claimed block did not verify (or could not be written): to ask again, of a
        peer that sends the truth."""
        if index in self._checking:
            self._checking.remove(index)
            self._again.append(index)

    def receive(self, index: int, data: bytes, proof: Sequence[bytes]) -> Verdict:
        """Judge block ``index`` here and now (claim, verify, store); on STORED the
        caller writes ``data`` at ``index * BLOCK_SIZE``."""
        verdict = self.claim(index)
        if verdict is not Verdict.CLAIMED:
            return verdict
        if not verify_block(self.root, self.size, index, data, proof):
            self.failed(index)
            return Verdict.BAD
        self.stored(index)
        return Verdict.STORED
