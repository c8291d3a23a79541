"""Records: how application messages are packed into Noise transport plaintexts.

A Noise transport message carries at most 65519 bytes of plaintext. Inside it are
one or more *records*: ``flags (1 byte) || length (2 bytes, big-endian) || chunk``.
Flag bit 0 (FINAL) marks the last chunk of a message; a message larger than one
plaintext spans several records in consecutive Noise messages. Many small messages
share one plaintext, which is what makes small messages cheap (one AEAD call and one
socket write for hundreds of them).

With the ``padding/1`` feature (docs/protocol.md §4.2), each plaintext is padded to a
Padmé size with one PADDING record (flag bit 1) that the receiver skips: what a
listener sees of the lengths of messages is then their size class, not their size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from p2pchat.errors import RemoteProtocolError
from p2pchat.wire.padding import padme

FINAL = 0x01
PADDING = 0x02  # a record that carries nothing: skipped (only with padding/1)
RECORD_HEADER_BYTES = 3
MAX_PLAINTEXT_BYTES = 0xFFFF - 16  # the Noise message limit minus the AEAD tag


class RecordWriter:
    """Queues messages and cuts them into plaintexts on demand.

    A message may be queued as several pieces (:meth:`push_pieces`): each piece
    becomes one or more records and only the last carries FINAL, so a large byte
    string inside a message travels by reference until it is copied into its frame.
    """

    __slots__ = ("_offset", "_queue", "pad", "pending_bytes", "popped_bytes")

    def __init__(self) -> None:
        self.pad = False  # pad each plaintext to its Padmé size (padding/1 negotiated)
        self._queue: deque[tuple[bytes | memoryview, bool]] = deque()
        self._offset = 0  # bytes of _queue[0] already cut into an earlier plaintext
        self.pending_bytes = 0
        # Message bytes cut into plaintexts so far: a message pushed when
        # popped_bytes + pending_bytes was N has left the queue once popped_bytes >= N.
        self.popped_bytes = 0

    def push(self, message: bytes) -> None:
        self._queue.append((message, True))
        self.pending_bytes += len(message)

    def push_pieces(self, pieces: list[bytes | memoryview]) -> None:
        # Empty pieces would become empty records, which the receiver refuses.
        pieces = [piece for piece in pieces if piece]
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            self._queue.append((piece, index == last))
            self.pending_bytes += len(piece)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def pop_plaintexts(
        self,
        count: int,
        head: int = 0,
        tail: int = 0,
        allocate: Callable[[int], bytearray] = bytearray,
    ) -> tuple[bytearray, list[int]]:
        """Cut up to ``count`` plaintexts, each as full as the queue allows.

        They are written back to back into one buffer from ``allocate(size)`` (at
        least ``size`` bytes), each with ``head`` spare bytes before it and ``tail``
        after (room for a frame header and an AEAD tag). Returns the buffer and the
        plaintext sizes. The caller encrypts them in place and writes the buffer with
        one socket call: each message byte is copied once on its way to the socket.
        """
        queue = self._queue
        index, offset = 0, self._offset
        plans: list[tuple[list[tuple[bytes | memoryview, int, int, bool]], int]] = []
        while len(plans) < count and index < len(queue):
            plan: list[tuple[bytes | memoryview, int, int, bool]] = []
            room, size = MAX_PLAINTEXT_BYTES, 0
            while index < len(queue) and room > RECORD_HEADER_BYTES:
                piece, ends_message = queue[index]
                remaining = len(piece) - offset
                take = min(remaining, room - RECORD_HEADER_BYTES)
                whole = take == remaining
                plan.append((piece, offset, take, whole and ends_message))
                room -= RECORD_HEADER_BYTES + take
                size += RECORD_HEADER_BYTES + take
                if whole:
                    index, offset = index + 1, 0
                else:
                    offset += take
            plans.append((plan, size))
        if self.pad:
            plans = [(plan, padded_size(size)) for plan, size in plans]
        buffer = allocate(sum(head + size + tail for _, size in plans))
        position = 0
        payload = 0
        for plan, padded in plans:
            position += head
            start_of_plaintext = position
            for piece, start, take, final in plan:
                buffer[position] = FINAL if final else 0
                buffer[position + 1] = take >> 8
                buffer[position + 2] = take & 0xFF
                position += RECORD_HEADER_BYTES
                if start == 0 and take == len(piece):
                    buffer[position : position + take] = piece
                else:
                    buffer[position : position + take] = memoryview(piece)[start : start + take]
                position += take
                payload += take
            filler = start_of_plaintext + padded - position
            if filler:  # at least a record header and a byte (padded_size sees to it)
                buffer[position] = PADDING
                buffer[position + 1] = (filler - RECORD_HEADER_BYTES) >> 8
                buffer[position + 2] = (filler - RECORD_HEADER_BYTES) & 0xFF
                buffer[position + RECORD_HEADER_BYTES : position + filler] = bytes(
                    filler - RECORD_HEADER_BYTES
                )
                position += filler
            position += tail
        for _ in range(index):
            queue.popleft()
        self._offset = offset
        self.pending_bytes -= payload
        self.popped_bytes += payload
        return buffer, [size for _, size in plans]

    def pop_plaintext(self, head: int = 0, tail: int = 0) -> bytearray:
        """One plaintext with spare room around it (see :meth:`pop_plaintexts`)."""
        return self.pop_plaintexts(1, head, tail)[0]

    def next_plaintext(self) -> bytes:
        """One plaintext as bytes (for tests)."""
        return bytes(self.pop_plaintext())


def padded_size(size: int) -> int:
    """The size a plaintext of ``size`` bytes of records is sent at under padding/1:
    its Padmé size with room for a padding record (a header and at least one byte),
    at most the plaintext limit; a plaintext too near the limit for a padding record
    goes as it is (only bulk data fills one so far)."""
    target = min(padme(size + RECORD_HEADER_BYTES + 1), MAX_PLAINTEXT_BYTES)
    return target if target - size > RECORD_HEADER_BYTES else size


class RecordReader:
    """Reassembles messages from plaintexts; bounds the size of any one message."""

    __slots__ = ("_partial", "_partial_bytes", "max_message_bytes", "padding_allowed")

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.padding_allowed = False  # padding/1 negotiated: PADDING records skipped
        self._partial: list[memoryview] = []
        self._partial_bytes = 0

    @property
    def partial_bytes(self) -> int:
        """Bytes of a message begun but not finished: held until its last record."""
        return self._partial_bytes

    def feed(self, plaintext: bytes | bytearray) -> list[memoryview | bytes]:
        """Return the messages completed by this plaintext, in order.

        Messages within one plaintext come back as views of it (no copy); a message
        that spans plaintexts is joined once. The caller must not modify
        ``plaintext`` while it still uses them.
        """
        complete: list[memoryview | bytes] = []
        view = memoryview(plaintext)
        offset = 0
        end = len(plaintext)
        if end == 0:
            raise RemoteProtocolError("empty transport message", code="bad-record")
        while offset < end:
            if end - offset < RECORD_HEADER_BYTES:
                raise RemoteProtocolError("truncated record header", code="bad-record")
            flags = plaintext[offset]
            length = (plaintext[offset + 1] << 8) | plaintext[offset + 2]
            offset += RECORD_HEADER_BYTES
            if flags & ~FINAL and not (flags == PADDING and self.padding_allowed):
                raise RemoteProtocolError(f"unknown record flags {flags:#04x}", code="bad-record")
            if length == 0 or offset + length > end:
                raise RemoteProtocolError("record length out of bounds", code="bad-record")
            if flags == PADDING:
                offset += length
                continue
            self._partial_bytes += length
            if self._partial_bytes > self.max_message_bytes:
                raise RemoteProtocolError(
                    f"message larger than the {self.max_message_bytes}-byte limit",
                    code="too-large",
                )
            chunk = view[offset : offset + length]
            offset += length
            if flags & FINAL:
                if self._partial:
                    self._partial.append(chunk)
                    complete.append(b"".join(self._partial))
                    self._partial.clear()
                else:
                    complete.append(chunk)
                self._partial_bytes = 0
            else:
                self._partial.append(chunk)
        return complete
