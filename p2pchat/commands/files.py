"""Files: offering one to a person, the offers and transfers, and answering them
(docs/protocol.md §16). Offering and answering need a node; the list works on the
store alone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from p2pchat.commands.base import CommandContext, CommandError, readable_errors
from p2pchat.node.files import FileService, FilesNotSupported
from p2pchat.store import FileTransfer


class FileCommands(CommandContext):
    async def send_file(self, peer: bytes, path: Path) -> FileTransfer:
        """Offer the file at ``path`` to ``peer``; it is sent once they accept."""
        files = self._files()
        name = self.name_of(peer)
        with _file_errors(f"{name}'s" if name else "their"):
            return await files.offer(peer, _home_expanded(path))

    async def share_file(self, room_id: bytes, path: Path) -> FileTransfer:
        """Share the file at ``path`` with a room we are in: each member who wants it
        fetches it from the members who hold it (docs/protocol.md §16.4)."""
        files = self._files()
        with _file_errors():
            return await files.share(room_id, _home_expanded(path))

    def room_transfers(
        self, room_id: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        """The files shared in the room among its messages from ``from_clock`` up to
        ``below_clock``."""
        return self._store.room_transfers(room_id, from_clock=from_clock, below_clock=below_clock)

    def uploaded(self, offer_id: bytes) -> int:
        """Bytes of a file this node served to others since it started."""
        files = self.node.files if self.node is not None else None
        return 0 if files is None else files.uploaded(offer_id)

    def transfers(self, peer: bytes | None = None) -> list[FileTransfer]:
        """Offers and transfers, ours and others', newest first."""
        return self._store.transfers(peer)

    def placed_transfers(
        self, peer: bytes, *, from_clock: int | None = None, below_clock: int | None = None
    ) -> list[FileTransfer]:
        """The offers shown in the conversation with ``peer`` among the messages from
        the clock ``from_clock`` up to ``below_clock``."""
        return self._store.placed_transfers(peer, from_clock=from_clock, below_clock=below_clock)

    def stored_transfer(self, offer_id: bytes) -> FileTransfer | None:
        return self._store.transfer(offer_id)

    def transfer(self, offer_id: bytes) -> FileTransfer:
        found = self._store.transfer(offer_id)
        if found is None:
            raise CommandError(f"no file offer {offer_id.hex()}")
        return found

    def transferred(self, transfer: FileTransfer) -> int:
        """Bytes of ``transfer`` held so far: all once done, what a running download
        holds, 0 otherwise."""
        if transfer.state == "done":
            return transfer.size
        files = self.node.files if self.node is not None else None
        return 0 if files is None else files.progress(transfer.offer_id)

    def accept_file(self, offer_id: bytes, save_to: Path | None = None) -> FileTransfer:
        """Download a file offered to us: into the downloads folder, or ``save_to`` (a
        folder, or the path of a new file)."""
        files = self._files()
        with _file_errors():
            return files.accept(offer_id, None if save_to is None else _home_expanded(save_to))

    def decline_file(self, offer_id: bytes, reason: str = "") -> FileTransfer:
        files = self._files()
        with _file_errors():
            return files.decline(offer_id, reason)

    def cancel_file(self, offer_id: bytes, reason: str = "cancelled") -> FileTransfer:
        files = self._files()
        with _file_errors():
            return files.cancel(offer_id, reason)

    def _files(self) -> FileService:
        files = self.require_node().files
        if files is None:
            raise CommandError("this node runs without a message store: no files")
        return files


@contextmanager
def _file_errors(whose: str = "their") -> Iterator[None]:
    """The files service's refusals as sentences (the rest as readable_errors says)."""
    with readable_errors():
        try:
            yield
        except FilesNotSupported as error:
            raise CommandError(f"{whose} p2pchat cannot receive files yet") from error
        except KeyError as error:
            raise CommandError(str(error.args[0])) from error
        except OSError as error:
            raise CommandError(
                f"{error.filename or 'the file'}: {error.strerror or error}"
            ) from error


def _home_expanded(path: Path) -> Path:
    """A leading ``~`` or ``~user`` made the home folder; left as given where there is
    no such user (``Path.expanduser`` raises there: a path from a script is any text)."""
    return Path(os.path.expanduser(path))
