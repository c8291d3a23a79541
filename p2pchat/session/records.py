"""Records: how application messages are packed into Noise transport plaintexts.

A Noise transport message carries at most 65519 bytes of plaintext. Inside it are
one or more *records*: ``flags (1 byte) || length (2 bytes, big-endian) || chunk``.
Flag bit 0 (FINAL) marks the last chunk of a message; a message larger than one
plaintext spans several records in consecutive Noise messages. Many small messages
share one plaintext, which is what makes small messages cheap (one AEAD call and one
socket write for hundreds of them).
"""

from __future__ import annotations

from collections import deque

from p2pchat.errors import RemoteProtocolError

FINAL = 0x01
RECORD_HEADER_BYTES = 3
MAX_PLAINTEXT_BYTES = 0xFFFF - 16  # the Noise message limit minus the AEAD tag


class RecordWriter:
    """Queues whole messages and cuts them into plaintexts on demand."""

    __slots__ = ("_offset", "_queue", "pending_bytes")

    def __init__(self) -> None:
        self._queue: deque[bytes] = deque()
        self._offset = 0  # bytes of _queue[0] already cut into an earlier plaintext
        self.pending_bytes = 0

    def push(self, message: bytes) -> None:
        self._queue.append(message)
        self.pending_bytes += len(message)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def next_plaintext(self) -> bytes:
        """Fill one plaintext with as many queued messages (or chunks) as fit."""
        parts: list[bytes | memoryview] = []
        room = MAX_PLAINTEXT_BYTES
        queue = self._queue
        while queue and room > RECORD_HEADER_BYTES:
            message = queue[0]
            remaining = len(message) - self._offset
            take = min(remaining, room - RECORD_HEADER_BYTES)
            final = take == remaining
            parts.append(bytes((FINAL if final else 0, take >> 8, take & 0xFF)))
            if self._offset == 0 and final:
                parts.append(message)
            else:
                parts.append(memoryview(message)[self._offset : self._offset + take])
            room -= RECORD_HEADER_BYTES + take
            self.pending_bytes -= take
            if final:
                queue.popleft()
                self._offset = 0
            else:
                self._offset += take
        return b"".join(parts)


class RecordReader:
    """Reassembles messages from plaintexts; bounds the size of any one message."""

    __slots__ = ("_partial", "_partial_bytes", "max_message_bytes")

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._partial: list[bytes] = []
        self._partial_bytes = 0

    def feed(self, plaintext: bytes) -> list[bytes]:
        """Return the messages completed by this plaintext, in order."""
        complete: list[bytes] = []
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
            if flags & ~FINAL:
                raise RemoteProtocolError(f"unknown record flags {flags:#04x}", code="bad-record")
            if length == 0 or offset + length > end:
                raise RemoteProtocolError("record length out of bounds", code="bad-record")
            self._partial_bytes += length
            if self._partial_bytes > self.max_message_bytes:
                raise RemoteProtocolError(
                    f"message larger than the {self.max_message_bytes}-byte limit",
                    code="too-large",
                )
            chunk = plaintext[offset : offset + length]
            offset += length
            if flags & FINAL:
                if self._partial:
                    self._partial.append(chunk)
                    chunk = b"".join(self._partial)
                    self._partial.clear()
                complete.append(chunk)
                self._partial_bytes = 0
            else:
                self._partial.append(chunk)
        return complete
