"""2-byte big-endian length framing: every Noise message on a stream is ``len || bytes``."""

from __future__ import annotations

from collections import deque

from p2pchat.errors import LocalProtocolError, RemoteProtocolError

HEADER_BYTES = 2
MAX_FRAME_BYTES = 0xFFFF  # the largest Noise message

Buffer = bytes | bytearray | memoryview


def encode_frame(payload: bytes) -> bytes:
    size = len(payload)
    if size > MAX_FRAME_BYTES:
        raise LocalProtocolError(f"a frame holds at most {MAX_FRAME_BYTES} bytes, not {size}")
    return size.to_bytes(2, "big") + payload


class FrameDecoder:
    """Turns a byte stream into frames; feed it any split of the stream.

    Frames that lie within one fed chunk come back as zero-copy memoryviews of it;
    only a frame that straddles two chunks is copied together. The decoder holds
    only what was fed and not yet returned; the caller feeds one read at a time, so
    its memory is bounded by the read size plus one frame.
    """

    __slots__ = (
        "_borrowed",
        "_buffered",
        "_chunks",
        "max_frame_bytes",
        "min_frame_bytes",
        "oversize_hint",
    )

    def __init__(self, *, min_frame_bytes: int = 1, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._chunks: deque[memoryview] = deque()
        self._buffered = 0
        self._borrowed = False  # some chunk views a buffer the caller will reuse
        # A zero-length frame carries nothing in our protocol; refusing it stops a peer
        # from making us spin on empty frames.
        self.min_frame_bytes = min_frame_bytes
        # Lowered while a small frame is expected (the handshake), so that a stranger
        # speaking another protocol is refused at its first two bytes.
        self.max_frame_bytes = max_frame_bytes
        self.oversize_hint = ""  # appended to the error: what an oversize frame suggests

    def feed(self, data: Buffer) -> None:
        """Take ``data`` without copying it.

        If ``data`` is (a view of) a buffer the caller will reuse, the caller must call
        :meth:`detach` before reusing it.
        """
        if data:
            view = memoryview(data)
            self._chunks.append(view)
            self._buffered += len(view)
            if not isinstance(view.obj, bytes):
                self._borrowed = True

    def detach(self) -> None:
        """Copy whatever is still buffered out of any borrowed (mutable) buffer."""
        if self._borrowed:
            self._chunks = deque(
                chunk if isinstance(chunk.obj, bytes) else memoryview(bytes(chunk))
                for chunk in self._chunks
            )
            self._borrowed = False

    @property
    def buffered(self) -> int:
        return self._buffered

    def next_frame(self) -> memoryview | None:
        """The next complete frame, or None until more bytes arrive."""
        if self._buffered < HEADER_BYTES:
            return None
        first = self._chunks[0]
        if len(first) >= HEADER_BYTES:
            size = (first[0] << 8) | first[1]
        else:
            size = (first[0] << 8) | self._chunks[1][0]
        if size < self.min_frame_bytes:
            raise RemoteProtocolError(
                f"frame of {size} bytes is shorter than the minimum {self.min_frame_bytes}",
                code="bad-frame",
            )
        if size > self.max_frame_bytes:
            raise RemoteProtocolError(
                f"frame of {size} bytes is over the {self.max_frame_bytes}-byte limit here"
                f"{self.oversize_hint}",
                code="bad-frame",
            )
        end = HEADER_BYTES + size
        if self._buffered < end:
            return None
        if len(first) >= end:  # the common case: the whole frame is in the first chunk
            self._buffered -= end
            if len(first) == end:
                self._chunks.popleft()
            else:
                self._chunks[0] = first[end:]
            return first[HEADER_BYTES:end]
        self._take(HEADER_BYTES)
        return self._take(size)

    def _take(self, size: int) -> memoryview:
        self._buffered -= size
        chunks = self._chunks
        first = chunks[0]
        if len(first) > size:
            chunks[0] = first[size:]
            return first[:size]
        if len(first) == size:
            chunks.popleft()
            return first
        joined = bytearray()
        while len(joined) < size:
            chunk = chunks[0]
            need = size - len(joined)
            if len(chunk) > need:
                joined += chunk[:need]
                chunks[0] = chunk[need:]
            else:
                joined += chunk
                chunks.popleft()
        return memoryview(joined)
