"""Our side of the files offered to us: the offers kept for our user's say, and the
downloads accepted (docs/protocol.md §16.3).

A download asks its sender for blocks within a window, judges each block against the
root before writing it into a partial file in the downloads folder's
``.p2pchat-partial`` (directly, bypassing the page cache, where the file system allows:
disk.py), saves the map of blocks held every SAVE_EVERY blocks (and when the session
ends), and when all are held makes the file durable and links it under a free, safe
name — after checking it whole against the root if some blocks came in an earlier run
(the disk may have changed them since). A stop at any point of that is finished on
the next start, without a second copy. A block that does not
verify fails the download: the sender is the only source, and it sent something false.
"""

from __future__ import annotations

import logging
import os
import random
from collections import deque
from collections.abc import Callable
from pathlib import Path

import trio

from p2pchat.chat.gate import Relation
from p2pchat.files.blocks import block_count
from p2pchat.files.download import Download, Verdict
from p2pchat.net.links import LinkManager
from p2pchat.node.events import FileEvent
from p2pchat.node.files.disk import (
    check_and_write_all,
    content_root,
    finish,
    partial_path,
    proofs_path,
)
from p2pchat.node.files.offers import ANSWER_FOR, OfferLimits, make_room, refusal
from p2pchat.node.files.partials import PartialFiles
from p2pchat.node.files.rooms import HAVE_EVERY, RoomFiles, full_map
from p2pchat.node.ports import Relations
from p2pchat.store import FileTransfer, Store
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import FileAnswer, FileBlock, FileOffer, FileRequest, FileUnavailable

log = logging.getLogger("p2pchat.files")

# Blocks stored between two saves of the held map (8 MiB): each save first makes the
# blocks durable (fdatasync), so the map never claims a block a power cut could lose.
# A resume sends again at most this much and the window.
SAVE_EVERY = 32
# Blocks checked and written in one trip to a worker thread, at most: those that came
# while the last trip ran (a quarter of the window, so asking goes on meanwhile).
WRITE_BATCH = 8
PROGRESS_INTERVAL = 0.5  # seconds between two progress events of one download
ACTIVE = ("offered", "accepted")  # theirs: not yet ended


class Downloads:
    def __init__(
        self,
        store: Store,
        links: LinkManager,
        relations: Relations,
        emit: Callable[[FileEvent], None],
        *,
        folder: Path | None,
        limits: OfferLimits,
    ) -> None:
        self._store = store
        self._links = links
        self._relations = relations
        self._emit = emit
        self.folder = folder
        self._limits = limits
        self.active: dict[bytes, Download] = {}  # offer_id -> download, accepted ones
        self._peers: dict[bytes, bytes] = {}  # offer_id -> sender
        self._unsaved: dict[bytes, int] = {}  # offer_id -> blocks stored since the last save
        self._progress_at: dict[bytes, float] = {}
        self._files = PartialFiles(lambda: self.folder)  # the partial files, open
        # offer_id -> blocks come and claimed, waiting for the writer (at most a window)
        self._arrived: dict[bytes, deque[tuple[bytes, FileBlock]]] = {}
        self.nursery: trio.Nursery | None = None
        # Room files (§16.4): fetched from any member that holds the blocks.
        self.rooms: RoomFiles | None = None
        self._room_rows: dict[bytes, FileTransfer] = {}  # offer_id -> row, room downloads
        self._asked_of: dict[bytes, dict[int, bytes]] = {}  # offer_id -> index -> holder
        self._resumed: set[bytes] = set()  # downloads that began from a stored held map
        self._rng = random.Random()

    # ---------------------------------------------------------------- offers

    def offered(self, peer: bytes, message: FileOffer) -> None:
        relation = self._relations.relation(peer)
        if relation is Relation.BLOCKED:
            return
        known = self._store.transfer(message.offer_id)
        if known is not None:
            if known.peer == peer and not known.outgoing:
                self._answer_again(known)
            return
        refused = refusal(self._store, self._limits, peer, relation, message.size)
        if refused:
            self._links.send(peer, FileAnswer(message.offer_id, "decline", refused))
            return
        now = now_ms()
        transfer = FileTransfer(
            message.offer_id, peer, False, message.root, message.size, message.name,
            message.media_type, message.thumbnail, message.time, "offered", "", "", now,
        )  # fmt: skip
        self._store.add_transfer(transfer)
        self._links.send(peer, FileAnswer(message.offer_id, "received"))
        self._event("offer", self._row(message.offer_id))
        if relation is Relation.CONTACT and 0 < message.size <= self._limits.auto_accept:
            try:
                self.accept(self._row(message.offer_id))
            except (OSError, ValueError) as error:  # no room, no folder: the user decides
                log.info("a file offer waits for our user: %s", error)

    def _answer_again(self, transfer: FileTransfer) -> None:
        """An offer we hold came again: the sender missed our answer."""
        answer = ANSWER_FOR[transfer.state]
        self._links.send(transfer.peer, FileAnswer(transfer.offer_id, answer, transfer.reason))

    def accept(self, transfer: FileTransfer, save_to: Path | None = None) -> FileTransfer:
        """Start downloading; saved in the downloads folder, or at ``save_to`` (a folder
        to save it in under its offered name, or a new file's path) once done."""
        make_room(transfer, self.folder, save_to)
        if save_to is not None:
            self._store.set_save_to(transfer.offer_id, str(save_to.resolve()))
        self._store.set_transfer_state(transfer.offer_id, "accepted", now=now_ms())
        transfer = self._row(transfer.offer_id)
        self._answer(transfer, "accept")
        self._event("answer", transfer)
        self._start(transfer)
        return transfer

    def decline(self, transfer: FileTransfer, reason: str = "") -> FileTransfer:
        if transfer.outgoing or transfer.state != "offered":
            raise ValueError(f"offer {transfer.offer_id.hex()} is {transfer.state}, not waiting")
        self._end(transfer, "declined", reason)
        self._answer(transfer, "decline", reason)
        return self._row(transfer.offer_id)

    def cancel(self, transfer: FileTransfer, reason: str) -> FileTransfer:
        self._end(transfer, "cancelled", reason)
        self._answer(transfer, "cancel", reason)
        return self._row(transfer.offer_id)

    def _answer(self, transfer: FileTransfer, state: str, reason: str = "") -> None:
        """Tell the sender (a room's author is told nothing: members decide alone)."""
        if not transfer.room_id:
            self._links.send(transfer.peer, FileAnswer(transfer.offer_id, state, reason))

    def answered(self, peer: bytes, message: FileAnswer) -> None:
        """The sender's word on an offer it made us: only ``cancel`` means anything."""
        transfer = self._store.transfer(message.offer_id)
        if transfer is None or transfer.outgoing or transfer.peer != peer:
            return
        if message.state == "cancel" and transfer.state in ACTIVE:
            self._end(transfer, "cancelled", message.reason[:256] or "the sender cancelled")

    # ---------------------------------------------------------------- downloading

    def resume(self) -> None:
        """Downloads accepted before we stopped: again, from their held maps."""
        for transfer in self._store.transfers(states=("accepted",)):
            if not transfer.outgoing:
                self._start(transfer)

    def _start(self, transfer: FileTransfer) -> None:
        held = self._store.transfer_held(transfer.offer_id)
        gone = self.folder is not None and not partial_path(self.folder, transfer.offer_id).exists()
        if held and gone and held != full_map(transfer.size):
            # (A whole map without its partial file: a stop while the file was put under
            # its name, which _finish finds there.)
            log.warning("the partial file of %s is gone: fetched again from the start",
                        transfer.offer_id.hex())  # fmt: skip
            held = b""
            self._record_held(transfer.offer_id, held)
        if held:
            # Blocks written by an earlier run: the whole file is checked against the
            # root before it goes under its name (the disk may have changed meanwhile).
            self._resumed.add(transfer.offer_id)
        order = None
        if transfer.room_id:
            # An order of our own: members soon hold different blocks to trade (§16.4).
            order = list(range(block_count(transfer.size)))
            self._rng.shuffle(order)
            self._room_rows[transfer.offer_id] = transfer
            self._asked_of[transfer.offer_id] = {}
        download = Download(transfer.root, transfer.size, held, order=order)
        self.active[transfer.offer_id] = download
        self._peers[transfer.offer_id] = transfer.peer
        if transfer.room_id and self.rooms is not None:
            self.rooms.announce(transfer, download.held_map(), everyone=True)
            self.rooms.reach(transfer, download.held_map)
        self._ask(transfer.offer_id, download)

    def held_of(self, transfer: FileTransfer) -> bytes:
        """What we hold of a room file we fetch or have (for FileHave and serving)."""
        if transfer.state == "done":
            return full_map(transfer.size)
        download = self.active.get(transfer.offer_id)
        return b"" if download is None else download.held_map()

    def serving_path(self, transfer: FileTransfer) -> tuple[Path, Path] | None:
        """Where to read a room file we fetched from, and its proofs."""
        if self.folder is None:
            return None
        proofs = proofs_path(self.folder, transfer.offer_id)
        if transfer.state == "done":
            return Path(transfer.path), proofs
        return partial_path(self.folder, transfer.offer_id), proofs

    def session_up(self, peer: bytes) -> None:
        for offer_id, download in list(self.active.items()):
            row = self._room_rows.get(offer_id)
            if row is not None:
                if self.rooms is not None:
                    self.rooms.announce_to(peer, row, download.held_map())
                self._ask(offer_id, download)
            elif self._peers[offer_id] == peer:
                download.not_answered()  # asked before this session: lost with it
                self._links.send(peer, FileAnswer(offer_id, "accept"))
                self._ask(offer_id, download)

    def session_down(self, peer: bytes) -> None:
        for offer_id, download in self.active.items():
            asked_of = self._asked_of.get(offer_id)
            if asked_of is not None:
                lost = [index for index, holder in asked_of.items() if holder == peer]
                for index in lost:
                    del asked_of[index]
                download.not_answered(lost)
            elif self._peers[offer_id] == peer:
                download.not_answered()
                self._save(offer_id, download)

    def tick(self) -> None:
        """Ask again for what is overdue (the service calls this every second)."""
        for offer_id, download in list(self.active.items()):
            if self._links.is_connected(self._peers[offer_id]):
                self._ask(offer_id, download)

    def _ask(self, offer_id: bytes, download: Download) -> None:
        if download.complete:
            if not self._files.in_use(offer_id):  # else the writer completes it, once done
                self._complete(offer_id)
            return
        blocks = download.to_ask(trio.current_time())
        row = self._room_rows.get(offer_id)
        if row is not None and blocks:
            self._ask_members(offer_id, row, download, blocks)
        elif blocks and not self._links.send(
            self._peers[offer_id], FileRequest(download.root, tuple(blocks))
        ):
            download.not_answered(blocks)  # dropped (no session, no address): later

    def _ask_members(
        self, offer_id: bytes, row: FileTransfer, download: Download, blocks: list[int]
    ) -> None:
        assert self.rooms is not None
        asked_of = self._asked_of[offer_id]
        plan, later = self.rooms.sources(row, blocks, asked_of)
        download.not_answered(later)
        for holder, indices in plan.items():
            if self._links.send(holder, FileRequest(download.root, tuple(indices))):
                asked_of.update(dict.fromkeys(indices, holder))
            else:
                download.not_answered(indices)

    def _downloads_of(
        self, peer: bytes, root: bytes, index: int | None = None
    ) -> list[tuple[bytes, Download]]:
        """The downloads of the file ``root`` from ``peer``: usually one, but the same
        file may be offered twice (and saved in two places); a room file's, when
        ``peer`` was asked for block ``index`` of it (any block, if None)."""
        found = []
        for offer_id, download in self.active.items():
            if download.root != root:
                continue
            asked_of = self._asked_of.get(offer_id)
            if asked_of is None:
                if self._peers[offer_id] == peer:
                    found.append((offer_id, download))
            elif peer in asked_of.values() if index is None else asked_of.get(index) == peer:
                found.append((offer_id, download))
        return found

    def block(self, peer: bytes, message: FileBlock) -> None:
        """A block came: claimed by the download that asked for it (others are
        ignored), then checked and written by its writer task, in a worker thread."""
        claimed = next((found for found in self._downloads_of(peer, message.root, message.index)
                        if found[1].claim(message.index) is Verdict.CLAIMED), None)  # fmt: skip
        if claimed is None:
            return  # not asked of this peer, or come already: ignored
        offer_id, download = claimed
        arrived = self._arrived.get(offer_id)
        if arrived is None:
            arrived = self._arrived[offer_id] = deque()
            assert self.nursery is not None
            self.nursery.start_soon(self._write, offer_id, download, arrived)
        asked_of = self._asked_of.get(offer_id)
        if asked_of is not None:
            asked_of.pop(message.index, None)
        arrived.append((peer, message))

    async def _write(
        self, offer_id: bytes, download: Download, arrived: deque[tuple[bytes, FileBlock]]
    ) -> None:
        try:
            while arrived and self.active.get(offer_id) is download:
                batch = [arrived.popleft() for _ in range(min(len(arrived), WRITE_BATCH))]
                fd = self._files.file(offer_id)
                proofs_fd = self._files.proofs(offer_id) if offer_id in self._room_rows else None
                try:
                    verdicts = await self._files.in_thread(
                        offer_id, check_and_write_all, fd, download.root, download.size,
                        [(m.index, m.data, m.proof) for _, m in batch], proofs_fd,
                    )  # fmt: skip
                except OSError as error:
                    self._fail(offer_id, f"cannot write the file: {error.strerror or error}")
                    return
                for (source, message), good in zip(batch, verdicts, strict=True):
                    if self.active.get(offer_id) is not download:
                        return  # cancelled or failed meanwhile
                    if not good:
                        download.failed(message.index)
                        if source != self._peers[offer_id] and self.rooms is not None:
                            self.rooms.ban(download.root, source)  # a member lied: not again
                            log.warning("a member sent a block of a room file that did not verify")
                            continue
                        self._fail(offer_id, "a block from the sender did not match the file")
                        return
                    download.stored(message.index)
                    if not await self._count_unsaved(offer_id, download, fd):
                        return
                    self._stored(offer_id, download)
        finally:
            if self._arrived.get(offer_id) is arrived:
                del self._arrived[offer_id]

    async def _count_unsaved(self, offer_id: bytes, download: Download, fd: int) -> bool:
        """One more block stored; every SAVE_EVERY, the held map saved (after a sync, in
        a worker thread). False if the download failed or ended meanwhile."""
        self._unsaved[offer_id] = self._unsaved.get(offer_id, 0) + 1
        if self._unsaved[offer_id] < SAVE_EVERY:
            return True
        # The map as it is now claims only blocks written before the sync.
        held = download.held_map()
        self._unsaved[offer_id] = 0
        try:
            await self._files.in_thread(offer_id, os.fdatasync, fd)
        except OSError as error:
            self._fail(offer_id, f"cannot write the file: {error.strerror or error}")
            return False
        if self.active.get(offer_id) is not download:
            return False
        self._record_held(offer_id, held)
        return True

    def _stored(self, offer_id: bytes, download: Download) -> None:
        row = self._room_rows.get(offer_id)
        if row is not None and self.rooms is not None and download.held_count % HAVE_EVERY == 0:
            self.rooms.announce(row, download.held_map())
        now = trio.current_time()
        if now - self._progress_at.get(offer_id, -PROGRESS_INTERVAL) >= PROGRESS_INTERVAL:
            self._progress_at[offer_id] = now
            self._event("progress", self._row(offer_id), download.held_bytes)
        self._ask(offer_id, download)

    def unavailable(self, peer: bytes, message: FileUnavailable) -> None:
        for offer_id, download in self._downloads_of(peer, message.root):
            asked_of = self._asked_of.get(offer_id)
            if asked_of is not None:  # a room file: ask another holder (or later)
                named = [i for i in message.blocks if asked_of.get(i) == peer]
                for index in named:
                    del asked_of[index]
                download.not_answered(named)
                author = self._peers[offer_id] == peer
                if message.reason == "gone" and author:
                    self._fail(offer_id, "the author stopped sharing the file")
                elif message.reason != "busy" and not author and self.rooms is not None:
                    self.rooms.forget_holder(message.root, peer)
                continue
            download.not_answered(message.blocks)
            if message.reason in ("gone", "unknown", "not-allowed"):
                self._fail(offer_id, f"the sender no longer has the file ({message.reason})")
        # busy: asked again when overdue

    def _save(self, offer_id: bytes, download: Download) -> None:
        """Save the held map, after making what it claims durable (in the event loop:
        for a lost session and the last blocks; the writer task saves on the way,
        syncing in a worker thread)."""
        self._unsaved[offer_id] = 0
        fd = self._files.opened(offer_id)
        if fd is not None:
            os.fdatasync(fd)
        self._record_held(offer_id, download.held_map())

    def _record_held(self, offer_id: bytes, held: bytes) -> None:
        """Store a held map whose blocks are durable already."""
        self._store.save_held(offer_id, held, now=now_ms())

    def _complete(self, offer_id: bytes) -> None:
        download = self.active.pop(offer_id)
        self._save(offer_id, download)
        self._forget(offer_id)
        # Every block is here: the last progress (events come twice a second) would
        # otherwise stand while the file is made durable and, if resumed, checked whole.
        self._event("progress", self._row(offer_id), download.held_bytes)
        assert self.nursery is not None and self.folder is not None
        self.nursery.start_soon(self._finish, offer_id, download, self.folder)

    async def _finish(self, offer_id: bytes, download: Download, folder: Path) -> None:
        transfer = self._row(offer_id)
        part = partial_path(folder, offer_id)
        resumed = offer_id in self._resumed
        self._resumed.discard(offer_id)
        # Blocks from an earlier run were verified when they were written, but the file
        # has lain on the disk since: checked whole once more.
        if (
            resumed
            and part.exists()
            and (await trio.to_thread.run_sync(content_root, part) != transfer.root)
        ):
            self._start_over(transfer, "its partial file changed on the disk")
            return
        try:
            # Every block was verified before it was written; the held maps saved on
            # the way claimed only blocks made durable first (_save).
            path = await trio.to_thread.run_sync(_finish_at, part, folder, transfer)
        except FileNotFoundError:
            self._start_over(transfer, "its partial file is gone")
            return
        except OSError as error:
            self._fail(offer_id, f"cannot write the file: {error.strerror or error}")
            return
        self._store.set_transfer_state(offer_id, "done", now=now_ms(), path=str(path))
        self._answer(transfer, "done")
        if transfer.room_id and self.rooms is not None:  # a holder of it all now
            self.rooms.announce(transfer, full_map(transfer.size))
        self._event("done", self._row(offer_id), transfer.size)

    def _start_over(self, transfer: FileTransfer, why: str) -> None:
        """Fetch every block again: what the disk holds of ``transfer`` is not the file
        (rare: changed or removed behind our back), and it never goes under its name."""
        log.warning("download %s: %s; fetched again from the start", transfer.offer_id.hex(), why)
        if self.folder is not None:
            partial_path(self.folder, transfer.offer_id).unlink(missing_ok=True)
        self._record_held(transfer.offer_id, b"")
        current = self._row(transfer.offer_id)
        if current.state == "accepted" and transfer.offer_id not in self.active:
            self._start(current)

    def _fail(self, offer_id: bytes, reason: str) -> None:
        transfer = self._row(offer_id)
        if transfer.state not in ACTIVE:
            return
        self._end(transfer, "failed", reason)
        self._answer(transfer, "cancel", reason)

    def _end(self, transfer: FileTransfer, state: str, reason: str) -> None:
        self._resumed.discard(transfer.offer_id)
        download = self.active.pop(transfer.offer_id, None)
        self._forget(transfer.offer_id)
        self._store.set_transfer_state(transfer.offer_id, state, now=now_ms(), reason=reason)
        if self.folder is not None and download is not None:
            partial_path(self.folder, transfer.offer_id).unlink(missing_ok=True)
            proofs_path(self.folder, transfer.offer_id).unlink(missing_ok=True)
        kind = "failed" if state == "failed" else "answer"
        self._event(kind, self._row(transfer.offer_id))

    def _forget(self, offer_id: bytes) -> None:
        self._files.close(offer_id)
        self._asked_of.pop(offer_id, None)
        row = self._room_rows.pop(offer_id, None)
        if row is not None and self.rooms is not None:
            self.rooms.forget(row.root)
        self._peers.pop(offer_id, None)
        self._unsaved.pop(offer_id, None)
        self._progress_at.pop(offer_id, None)

    def _row(self, offer_id: bytes) -> FileTransfer:
        row = self._store.transfer(offer_id)
        assert row is not None
        return row

    def _event(self, kind: str, transfer: FileTransfer, done_bytes: int = 0) -> None:
        self._emit(FileEvent(kind, transfer.offer_id, transfer.peer, False, transfer.name,
                             transfer.size, transfer.state, done_bytes, transfer.reason,
                             transfer.path, transfer.room_id))  # fmt: skip


def _finish_at(part: Path, downloads: Path, transfer: FileTransfer) -> Path:
    """Where a finished file goes: the downloads folder, or where our user chose."""
    root, size = transfer.root, transfer.size
    if not transfer.save_to:
        return finish(part, downloads, transfer.name, root=root, size=size)
    chosen = Path(transfer.save_to)
    if chosen.is_dir():
        return finish(part, chosen, transfer.name, root=root, size=size)
    return finish(part, chosen.parent, chosen.name, chosen=True, root=root, size=size)
