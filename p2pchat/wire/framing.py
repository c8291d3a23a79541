"""2-byte big-endian length framing: every Noise message on a stream is ``len || bytes``."""

from __future__ import annotations

from p2pchat.errors import LocalProtocolError, RemoteProtocolError

HEADER_BYTES = 2
MAX_FRAME_BYTES = 0xFFFF  # the largest Noise message


def encode_frame(payload: bytes) -> bytes:
    size = len(payload)
    if size > MAX_FRAME_BYTES:
        raise LocalProtocolError(f"a frame holds at most {MAX_FRAME_BYTES} bytes, not {size}")
    return size.to_bytes(2, "big") + payload


class FrameDecoder:
    """Turns a byte stream into frames; feed it any split of the stream.

    Never holds more than what was fed and not yet returned, and the caller feeds it
    at most one read at a time, so its memory is bounded by the read size plus one
    frame.
    """

    __slots__ = ("_buffer", "_offset", "max_frame_bytes", "min_frame_bytes")

    def __init__(self, *, min_frame_bytes: int = 1, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._offset = 0
        # A zero-length frame carries nothing in our protocol; refusing it stops a peer
        # from making us spin on empty frames.
        self.min_frame_bytes = min_frame_bytes
        # Lowered while a small frame is expected (the handshake), so that a stranger
        # speaking another protocol is refused at its first two bytes.
        self.max_frame_bytes = max_frame_bytes

    def feed(self, data: bytes | bytearray) -> None:
        if self._offset:
            del self._buffer[: self._offset]
            self._offset = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._offset

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None until more bytes arrive."""
        start = self._offset
        buffer = self._buffer
        if len(buffer) - start < HEADER_BYTES:
            return None
        size = (buffer[start] << 8) | buffer[start + 1]
        if size < self.min_frame_bytes:
            raise RemoteProtocolError(
                f"frame of {size} bytes is shorter than the minimum {self.min_frame_bytes}",
                code="bad-frame",
            )
        if size > self.max_frame_bytes:
            raise RemoteProtocolError(
                f"frame of {size} bytes is over the {self.max_frame_bytes}-byte limit here",
                code="bad-frame",
            )
        end = start + HEADER_BYTES + size
        if len(buffer) < end:
            return None
        self._offset = end
        return bytes(buffer[start + HEADER_BYTES : end])
