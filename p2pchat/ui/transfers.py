"""The window's file transfers: one :class:`~p2pchat.ui.file_lines.FileLine` per offer
it has shown, kept in step with the node's file events, and the pictures of image
files (the sender's thumbnail until the file is here, then the file itself), decoded in
a worker thread and kept for a while.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from p2pchat.commands import FileTransfer
from p2pchat.images import MAX_THUMBNAIL_PIXELS, Pixels, pixels
from p2pchat.node.events import FileEvent
from p2pchat.ui.file_lines import FileLine

PICTURES_KEPT = 64  # decoded previews held (a few KB each)
PREVIEW_LIMIT = 64 << 20  # larger files get no preview (decoding would take long)

Decode = Callable[[Callable[[], Pixels | None], Callable[[Pixels | None], None]], None]


class Transfers:
    def __init__(
        self,
        load: Callable[[bytes], FileTransfer | None],
        transferred: Callable[[FileTransfer], int],
        decode: Decode,
        changed: Callable[[bytes], None],
    ) -> None:
        """``load``: a transfer's row from the store; ``transferred``: its bytes so far;
        ``decode``: runs the first function in a worker thread and hands its result to
        the second in the window's thread; ``changed``: a line or its picture changed."""
        self._load = load
        self._transferred = transferred
        self._decode = decode
        self._changed = changed
        self.lines: dict[bytes, FileLine] = {}
        self._pictures: OrderedDict[tuple[bytes, str, int], Pixels | None] = OrderedDict()
        self._decoding: set[tuple[bytes, str, int]] = set()

    def line(self, offer_id: bytes) -> FileLine | None:
        line = self.lines.get(offer_id)
        if line is None:
            row = self._load(offer_id)
            if row is not None:
                line = self.add(row)
        return line

    def add(self, row: FileTransfer) -> FileLine:
        line = self.lines.get(row.offer_id)
        if line is None:
            line = self.lines[row.offer_id] = FileLine(
                row.offer_id, row.peer, row.outgoing, row.name, row.size, row.state,
                row.media_type, row.thumbnail, row.reason, row.path,
                min(self._transferred(row), row.size), row.room_id,
            )  # fmt: skip
        return line

    def event(self, event: FileEvent, now: float) -> FileLine | None:
        """A file event: the line moved (None if the transfer is unknown)."""
        line = self.line(event.offer_id)
        if line is not None:
            line.moved(event.state, event.done_bytes, now, reason=event.reason, path=event.path)
            self._changed(event.offer_id)
        return line

    def picture(self, line: FileLine, width: int, height: int) -> Pixels | None:
        """The picture to show for ``line`` within ``width`` by ``height`` pixels, if it
        has one and it is decoded (else None, and decoding starts: ``changed`` says when
        it is ready)."""
        if not line.is_image:
            return None
        source: Path | bytes
        if line.state == "done" or line.outgoing:
            path = Path(line.path) if line.path else None
            if path is None or not _small_enough(path):
                return None
            source, limit, which = path, None, "file"
        elif line.thumbnail:
            source, limit, which = line.thumbnail, MAX_THUMBNAIL_PIXELS, "thumbnail"
        else:
            return None
        key = (line.offer_id, which, width)
        if key in self._pictures:
            self._pictures.move_to_end(key)
            return self._pictures[key]
        if key not in self._decoding:
            self._decoding.add(key)

            def work() -> Pixels | None:
                if limit is None:
                    return pixels(source, width, height)
                return pixels(source, width, height, max_pixels=limit)

            def done(result: Pixels | None) -> None:
                self._decoding.discard(key)
                self._pictures[key] = result
                while len(self._pictures) > PICTURES_KEPT:
                    self._pictures.popitem(last=False)
                if result is not None:
                    self._changed(line.offer_id)

            self._decode(work, done)
        return None


def _small_enough(path: Path) -> bool:
    try:
        return path.stat().st_size <= PREVIEW_LIMIT
    except OSError:
        return False
