"""The files of running downloads, held open: each download's partial file (written
with direct I/O where the file system has it) and, for a room file, its proofs beside
it (disk.py).

A worker thread writes and syncs them. A download can end while the thread runs (a
cancel, a failure, the tick seeing it complete); closing its descriptors then would
let the kernel give the numbers to the next file opened, which the thread would write
or sync instead. So a download's descriptors are closed when no thread uses them, and
if one does, when it returns."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from p2pchat.node.files.disk import open_partial, partial_path, proofs_path

T = TypeVar("T")


class PartialFiles:
    def __init__(self, folder: Callable[[], Path | None]) -> None:
        """``folder``: the downloads folder, asked when a file is first opened."""
        self._folder = folder
        self._files: dict[bytes, int] = {}  # offer_id -> the partial file, open to write
        self._proofs: dict[bytes, int] = {}  # offer_id -> its proofs file, open
        self._in_use: set[bytes] = set()  # a worker thread uses these downloads' files
        self._close_later: dict[bytes, list[int]] = {}  # closed when that thread returns

    def file(self, offer_id: bytes) -> int:
        """The download's partial file, opened on first use."""
        fd = self._files.get(offer_id)
        if fd is None:
            fd = self._files[offer_id] = open_partial(
                partial_path(self._where(), offer_id), direct=True
            )
        return fd

    def proofs(self, offer_id: bytes) -> int:
        """The proofs file beside a room file's partial file, opened on first use."""
        fd = self._proofs.get(offer_id)
        if fd is None:
            fd = self._proofs[offer_id] = open_partial(proofs_path(self._where(), offer_id))
        return fd

    def opened(self, offer_id: bytes) -> int | None:
        """The partial file if it is open (to sync it), else None."""
        return self._files.get(offer_id)

    def in_use(self, offer_id: bytes) -> bool:
        """A worker thread is using the download's files now."""
        return offer_id in self._in_use

    @property
    def closing(self) -> bool:
        """Some descriptors wait for a worker thread to return before they close."""
        return bool(self._close_later)

    async def in_thread(self, offer_id: bytes, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` in a worker thread, the download's files kept open meanwhile."""
        self._in_use.add(offer_id)
        try:
            return await trio.to_thread.run_sync(work, *args)
        finally:
            self._in_use.discard(offer_id)
            for fd in self._close_later.pop(offer_id, ()):
                os.close(fd)

    def close(self, offer_id: bytes) -> None:
        """The download ended: its files are closed now, or when its thread returns."""
        fds = [fd for fd in (self._files.pop(offer_id, None), self._proofs.pop(offer_id, None))
               if fd is not None]  # fmt: skip
        if offer_id in self._in_use:
            self._close_later.setdefault(offer_id, []).extend(fds)
        else:
            for fd in fds:
                os.close(fd)

    def _where(self) -> Path:
        folder = self._folder()
        assert folder is not None, "no downloads folder: nothing is downloaded"
        return folder
