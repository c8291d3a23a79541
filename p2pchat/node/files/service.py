"""Files between people (docs/protocol.md §16): offers, answers and transfers, over the
sessions that list the feature ``files/1``. The uploads (ours) and the downloads
(theirs) do the work; this service routes what arrives and holds the commands."""

from __future__ import annotations

import errno
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from p2pchat.chat.rooms import SharedFile
from p2pchat.files.blocks import block_count, file_root
from p2pchat.images import thumbnail
from p2pchat.net.links import LinkManager
from p2pchat.node.events import NodeEvent
from p2pchat.node.files.disk import hash_file, tree_of
from p2pchat.node.files.downloads import Downloads
from p2pchat.node.files.offers import OfferLimits
from p2pchat.node.files.rooms import MAX_ROOM_FILE_BLOCKS, RoomFiles
from p2pchat.node.files.uploads import NOT_SUPPORTED, SERVING, Uploads
from p2pchat.node.ports import Relations
from p2pchat.node.rooms import RoomService
from p2pchat.sizes import format_size
from p2pchat.store import FileTransfer, Store
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import (
    FILES_FEATURE,
    MAX_FILE_NAME_CHARS,
    MAX_MEDIA_TYPE_CHARS,
    MAX_ROOM_THUMBNAIL_BYTES,
    FileAnswer,
    FileBlock,
    FileHave,
    FileOffer,
    FileRequest,
    FileUnavailable,
)

FILE_MESSAGES = (FileOffer, FileAnswer, FileRequest, FileBlock, FileUnavailable, FileHave)
TICK = 1.0  # seconds between looks for overdue blocks, while a download runs
SESSION_WAIT = 5.0  # how long an offer waits for a session to learn the peer's features


class FilesNotSupported(ValueError):
    """The peer's p2pchat does not take files (its session does not list files/1)."""


@dataclass(frozen=True, slots=True)
class FileSettings:
    downloads: Path | None = None  # where accepted files are saved; None: none accepted
    offers: OfferLimits = field(default_factory=OfferLimits)


class FileService:
    def __init__(
        self,
        store: Store,
        links: LinkManager,
        relations: Relations,
        emit: Callable[[NodeEvent], None],
        settings: FileSettings,
        *,
        me: bytes = b"",
        rooms: RoomService | None = None,
    ) -> None:
        """``rooms``: the node's rooms, for files shared with them (§16.4)."""
        self._store = store
        self._links = links
        self._room_service = rooms
        self.uploads = Uploads(store, links, emit)
        self.downloads = Downloads(store, links, relations, emit,
                                   folder=settings.downloads, limits=settings.offers)  # fmt: skip
        self.rooms: RoomFiles | None = None
        if rooms is not None:
            self.rooms = RoomFiles(store, links, me, rooms.member_keys, emit,
                                   per_author=settings.offers.per_contact,
                                   in_all=settings.offers.in_all)  # fmt: skip
            self.uploads.rooms = self.downloads.rooms = self.rooms
            self.uploads.held_of = self.downloads.held_of
            self.uploads.serving_path = self.downloads.serving_path
            rooms.storage.file_shared = self.rooms.shared
        self._wake = trio.Event()

    # ---------------------------------------------------------------- commands

    async def offer(self, peer: bytes, path: Path) -> FileTransfer:
        """Offer the file at ``path`` to ``peer``: hashed (in a worker thread), stored,
        and sent now if a session is up, else when one comes. FilesNotSupported if the
        peer's session shows it cannot take files; OSError if the file cannot be read."""
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "not a file", str(path))
        connection = await self._links.session(peer, SESSION_WAIT)
        if connection is not None and FILES_FEATURE not in connection.features:
            raise FilesNotSupported(NOT_SUPPORTED)
        size, leaves, stamp = await trio.to_thread.run_sync(hash_file, path)
        root = file_root(size, tree_of(leaves).root)
        now = now_ms()
        media_type = mimetypes.guess_type(path.name)[0] or ""
        small = b""
        if media_type.startswith("image/"):
            small = await trio.to_thread.run_sync(thumbnail, path)
        transfer = FileTransfer(
            os.urandom(16), peer, True, root, size, path.name[:MAX_FILE_NAME_CHARS],
            media_type[:MAX_MEDIA_TYPE_CHARS], small, now, "offered", "", str(path.resolve()), now,
        )  # fmt: skip
        self._store.add_transfer(transfer, leaves=leaves, stamp=stamp)
        if self._links.is_connected(peer):
            self._links.send(peer, self.uploads.offer_message(transfer))
        return transfer

    async def share(self, room_id: bytes, path: Path) -> FileTransfer:
        """Share the file at ``path`` with a room we are in (§16.4): hashed (in a worker
        thread), announced in a room message, and served to its members as they ask.
        ValueError if it is larger than a room file may be; OSError if unreadable."""
        if self._room_service is None or self.rooms is None:
            raise ValueError("this node keeps no rooms")
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "not a file", str(path))
        self._room_service.state.room(room_id)  # KeyError-like refusal if not a member
        size, leaves, stamp = await trio.to_thread.run_sync(hash_file, path)
        if block_count(size) > MAX_ROOM_FILE_BLOCKS:
            raise ValueError(f"a file shared with a room is at most {MAX_ROOM_FILE_BLOCKS // 4} MiB"
                             f" ({MAX_ROOM_FILE_BLOCKS} blocks)")  # fmt: skip
        root = file_root(size, tree_of(leaves).root)
        media_type = (mimetypes.guess_type(path.name)[0] or "")[:MAX_MEDIA_TYPE_CHARS]
        small = b""
        if media_type.startswith("image/"):
            small = await trio.to_thread.run_sync(thumbnail, path, MAX_ROOM_THUMBNAIL_BYTES)
        name = path.name[:MAX_FILE_NAME_CHARS]
        file = SharedFile(root, size, name, media_type, small)
        message = self._room_service.send(
            room_id, f"shares a file: {name} ({format_size(size)})", action=True, file=file
        )
        now = now_ms()
        transfer = FileTransfer(
            message.msg_id, message.author, True, root, size, name, media_type, small, now,
            "offered", "", str(path.resolve()), now, clock=message.clock, room_id=room_id,
        )  # fmt: skip
        self._store.add_transfer(transfer, leaves=leaves, stamp=stamp)
        return transfer

    def uploaded(self, offer_id: bytes) -> int:
        """Bytes of this file we served to others since the node started."""
        return self.uploads.served[offer_id]

    def accept(self, offer_id: bytes, save_to: Path | None = None) -> FileTransfer:
        transfer = self._find(offer_id)
        if transfer.outgoing:
            raise ValueError("that is our own offer")
        accepted = self.downloads.accept(transfer, save_to)
        self._wake.set()
        return accepted

    def decline(self, offer_id: bytes, reason: str = "") -> FileTransfer:
        transfer = self._find(offer_id)
        if transfer.outgoing:
            raise ValueError("that is our own offer: cancel it instead")
        return self.downloads.decline(transfer, reason)

    def cancel(self, offer_id: bytes, reason: str = "cancelled") -> FileTransfer:
        transfer = self._find(offer_id)
        if transfer.outgoing:
            if transfer.state not in SERVING:
                raise ValueError(f"offer {offer_id.hex()} has ended ({transfer.state})")
            return self.uploads.cancel(transfer, reason)
        if transfer.state not in ("offered", "accepted"):
            raise ValueError(f"offer {offer_id.hex()} has ended ({transfer.state})")
        return self.downloads.cancel(transfer, reason)

    def transfers(self, peer: bytes | None = None) -> list[FileTransfer]:
        return self._store.transfers(peer)

    def progress(self, offer_id: bytes) -> int:
        """Bytes held of a download running now, or sent of an offer of ours being
        served (0 if neither)."""
        download = self.downloads.active.get(offer_id)
        if download is not None:
            return download.held_bytes
        return self.uploads.sent_bytes.get(offer_id, 0)

    def _find(self, offer_id: bytes) -> FileTransfer:
        transfer = self._store.transfer(offer_id)
        if transfer is None:
            raise KeyError(f"no file offer {offer_id.hex()}")
        return transfer

    # ---------------------------------------------------------------- the network

    def receive(self, peer: bytes, message: object) -> None:
        """A file message from ``peer``'s session; ignored unless that session lists
        files/1 (a peer that did not offer the feature has no business sending them)."""
        link = self._links.links.get(peer)
        if link is None or FILES_FEATURE not in link.connection.features:
            return
        if isinstance(message, FileBlock):
            self.downloads.block(peer, message)
        elif isinstance(message, FileRequest):
            self.uploads.requested(peer, message)
        elif isinstance(message, FileOffer):
            self.downloads.offered(peer, message)
            if self.downloads.active:  # accepted at once (a contact's small file)
                self._wake.set()
        elif isinstance(message, FileAnswer):
            self.uploads.answered(peer, message)
            self.downloads.answered(peer, message)
        elif isinstance(message, FileUnavailable):
            self.downloads.unavailable(peer, message)
        elif isinstance(message, FileHave) and self.rooms is not None:
            self.rooms.have(peer, message, self.downloads.held_of)

    def session_up(self, peer: bytes) -> None:
        link = self._links.links.get(peer)
        if link is None:
            return
        if FILES_FEATURE not in link.connection.features:
            self.uploads.not_supported(peer)
            return
        self.uploads.resend_offers(peer)
        self.downloads.session_up(peer)

    def session_down(self, peer: bytes) -> None:
        self.uploads.session_down(peer)
        self.downloads.session_down(peer)
        if self.rooms is not None:
            self.rooms.session_down(peer)

    async def run(self) -> None:
        """Serve and download; ask again for overdue blocks while a download runs (no
        wake-ups at all while none does)."""
        async with trio.open_nursery() as nursery:
            self.uploads.nursery = self.downloads.nursery = nursery
            if self.rooms is not None:
                self.rooms.nursery = nursery
            self.downloads.resume()
            while True:
                if self.downloads.active:
                    await trio.sleep(TICK)
                else:
                    await self._wake.wait()
                    self._wake = trio.Event()
                self.downloads.tick()
