"""Slots for large incoming messages, shared by the connections of a node.

A message arrives record by record and is held until its last record (protocol §4.2).
A peer can therefore make us hold up to the largest message (4 MiB) per session just
by never sending that last record; over the couple of hundred sessions strangers may
hold (§4.3) that would be most of a gigabyte. So a session may hold more than
``small_bytes`` of an unfinished message only while it has one of a few slots, and it
stops reading until one is free; a slot is kept at most ``timeout`` seconds for one
message, so peers that stall cannot keep honest large messages (full digests, relay
offers) waiting for long. Contacts do not need a slot.
"""

from __future__ import annotations

import trio

DEFAULT_SLOTS = 16  # 16 x 4 MiB: the most unfinished large messages ever held
DEFAULT_SMALL_BYTES = 256 * 1024
DEFAULT_TIMEOUT = 30.0  # 4 MiB in 30 s is ~140 KB/s: any LAN does better


class LargeMessageSlots:
    def __init__(
        self,
        slots: int = DEFAULT_SLOTS,
        *,
        small_bytes: int = DEFAULT_SMALL_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.slots = slots
        self.small_bytes = small_bytes
        self.timeout = timeout
        self._semaphore = trio.Semaphore(slots)
        self.waits = 0  # times a session had to wait for a slot

    @property
    def free(self) -> int:
        return self._semaphore.value

    def try_acquire(self) -> bool:
        try:
            self._semaphore.acquire_nowait()
        except trio.WouldBlock:
            return False
        return True

    async def acquire(self) -> None:
        self.waits += 1
        await self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()
