"""Our side of the files we offer: the offers, their answers, and serving blocks to the
peers we offered them to (docs/protocol.md §16.3) and to the members of rooms we share
files with or fetched them in (§16.4).

A request is served only for an offer we made to that peer and did not end, or for a
room file of a room the peer is a member of (which blocks, the room rules say);
blocks are read in a worker thread, and each is checked before it leaves — ours
against its leaf hash, a room file we fetched against the proof kept with it: a file
that changed on our disk ends our offer (``gone``), or is no longer served from (a
fetched one, ``unknown``), rather than sending something that would not verify. Each
peer gets at most SERVE_QUEUE block indices waiting; beyond, ``busy``.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import trio

from p2pchat.errors import ConnectionClosed
from p2pchat.files.blocks import HashTree, block_count
from p2pchat.net.links import LinkManager
from p2pchat.node.events import FileEvent
from p2pchat.node.files.disk import (
    read_blocks,
    read_cached,
    read_held_block,
    reads_without_waiting,
    tree_of,
)
from p2pchat.node.files.downloads import PROGRESS_INTERVAL
from p2pchat.node.files.rooms import RoomFiles
from p2pchat.store import FileTransfer, Store
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import FileAnswer, FileBlock, FileOffer, FileRequest, FileUnavailable

log = logging.getLogger("p2pchat.files")

SERVE_QUEUE = 64  # block indices waiting to be served, per peer
TREES_KEPT = 16  # what we know of the files of offers being served, kept in memory
READ_BATCH = 4  # blocks of one offer read from the disk in one go, at most
READ_AHEAD = 2 * READ_BATCH  # blocks read ahead of the one being sent, per peer
SERVING = ("offered", "waiting", "accepted")  # states in which we serve an offer's blocks
ENDED = ("declined", "done", "cancelled", "failed")
NOT_SUPPORTED = "their p2pchat cannot receive files yet"
# What an answer moves our offer to, from which states.
MOVES: dict[str, tuple[str, tuple[str, ...]]] = {
    "received": ("waiting", ("offered",)),
    "accept": ("accepted", ("offered", "waiting")),
    "decline": ("declined", ("offered", "waiting")),
    "done": ("done", ("offered", "waiting", "accepted")),
    "cancel": ("cancelled", ("offered", "waiting", "accepted")),
}


@dataclass
class Source:
    """The file of an offer of ours being served: its hash tree (for proofs), its stamp
    when it was hashed (disk.file_stamp: while it is the same, the file is), and whether
    its blocks may be read in the event loop (None: not asked yet)."""

    tree: HashTree
    stamp: bytes
    cached_reads: bool | None = None
    row: FileTransfer | None = None  # the offer, while it is served (_row_to_serve)


# A block read to serve: the row, the index, the data (None: not there or not the same
# any more) and its proof (None: ours, from our hash tree).
Read = tuple[FileTransfer, int, bytes | None, tuple[bytes, ...] | None]


class Uploads:
    def __init__(self, store: Store, links: LinkManager, emit: Callable[[FileEvent], None]) -> None:
        self._store = store
        self._links = links
        self._emit = emit
        self._queues: dict[bytes, deque[tuple[bytes, int]]] = {}  # peer -> (offer_id, index)
        self._serving: set[bytes] = set()  # peers with a serving task
        self._sources: dict[bytes, Source] = {}  # offer_id -> its file, the last TREES_KEPT
        # offer_id -> bytes handed to the session so far (ours being served; the end of
        # an offer forgets it): what a sender can show of the receiver's progress.
        self.sent_bytes: dict[bytes, int] = {}
        self._progress_at: dict[bytes, float] = {}  # offer_id -> its last progress event
        self._serving_offer: dict[tuple[bytes, bytes], bytes] = {}  # (peer, root) -> offer_id
        # Room files (§16.4): whom we serve, what we hold, where it is (set by the service).
        self.rooms: RoomFiles | None = None
        self.held_of: Callable[[FileTransfer], bytes] = lambda _: b""
        self.serving_path: Callable[[FileTransfer], tuple[Path, Path] | None] = lambda _: None
        self.served: Counter[bytes] = Counter()  # offer_id -> bytes served, all time
        self.nursery: trio.Nursery | None = None

    # ---------------------------------------------------------------- offers

    def offer_message(self, transfer: FileTransfer) -> FileOffer:
        return FileOffer(
            offer_id=transfer.offer_id, root=transfer.root, size=transfer.size,
            name=transfer.name, media_type=transfer.media_type,
            thumbnail=transfer.thumbnail, time=transfer.offered_at,
        )  # fmt: skip

    def resend_offers(self, peer: bytes) -> None:
        """Offers the peer has not said it received: again, on a new session."""
        for transfer in self._store.transfers(peer, states=("offered",)):
            if transfer.outgoing:
                self._links.send(peer, self.offer_message(transfer))

    def not_supported(self, peer: bytes) -> None:
        """The peer's session shows its p2pchat takes no files: our offers to it fail
        (nothing was or will be sent), saying why."""
        for transfer in self._store.transfers(peer, states=SERVING):
            if transfer.outgoing:
                self._move(transfer, "failed", NOT_SUPPORTED)

    def cancel(self, transfer: FileTransfer, reason: str) -> FileTransfer:
        self._move(transfer, "cancelled", reason)
        self._links.send(transfer.peer, FileAnswer(transfer.offer_id, "cancel", reason))
        return self._store_row(transfer.offer_id)

    def answered(self, peer: bytes, message: FileAnswer) -> None:
        transfer = self._store.transfer(message.offer_id)
        if transfer is None or not transfer.outgoing or transfer.peer != peer:
            return  # not an offer of ours to this peer: ignored (§16.3)
        state, sources = MOVES[message.state]
        if transfer.state in sources:
            reason = message.reason[:256] if state in ("declined", "cancelled") else ""
            self._move(transfer, state, reason)

    def _move(self, transfer: FileTransfer, state: str, reason: str = "") -> None:
        self._store.set_transfer_state(transfer.offer_id, state, now=now_ms(), reason=reason)
        sent = self.sent_bytes.get(transfer.offer_id, 0)
        if state in ENDED:
            self._sources.pop(transfer.offer_id, None)
            self.sent_bytes.pop(transfer.offer_id, None)
            self._progress_at.pop(transfer.offer_id, None)
        elif (source := self._sources.get(transfer.offer_id)) and source.row is not None:
            source.row = replace(source.row, state=state, reason=reason)
        kind = {"done": "done", "failed": "failed"}.get(state, "answer")
        self._emit(FileEvent(kind, transfer.offer_id, transfer.peer, True, transfer.name,
                             transfer.size, state, sent, reason, transfer.path))  # fmt: skip

    def _store_row(self, offer_id: bytes) -> FileTransfer:
        row = self._store.transfer(offer_id)
        assert row is not None
        return row

    # ---------------------------------------------------------------- serving

    def requested(self, peer: bytes, message: FileRequest) -> None:
        offer = self._offer_for(peer, message.root)
        if offer is None and self.rooms is not None:
            offer = self.rooms.row_for(peer, message.root)
        if offer is None:
            # Whether or not we hold it: a guessed root tells a stranger nothing.
            self._links.send(peer, FileUnavailable(message.root, message.blocks, "unknown"))
            return
        if offer.outgoing and offer.state in SERVING:
            self.sent_bytes.setdefault(offer.offer_id, 0)  # counted until the offer ends
        queue = self._queues.setdefault(peer, deque())
        room = max(0, SERVE_QUEUE - len(queue))
        wanted, over = list(message.blocks[:room]), list(message.blocks[room:])
        if offer.room_id and self.rooms is not None:
            held = b"" if offer.outgoing else self.held_of(offer)
            wanted, busy, unknown = self.rooms.plan_serving(peer, offer, wanted, held)
            over += busy
        else:
            count = block_count(offer.size)
            unknown = [index for index in wanted if index >= count]
            wanted = [index for index in wanted if index < count]
        queue.extend((offer.offer_id, index) for index in wanted)
        if over:
            self._links.send(peer, FileUnavailable(message.root, tuple(over), "busy"))
        if unknown:
            self._links.send(peer, FileUnavailable(message.root, tuple(unknown), "unknown"))
        if queue and peer not in self._serving and self.nursery is not None:
            self._serving.add(peer)
            self.nursery.start_soon(self._serve, peer)

    def _offer_for(self, peer: bytes, root: bytes) -> FileTransfer | None:
        """Our offer of ``root`` to ``peer`` that is being served (the last one found is
        remembered: a download asks for a file's blocks many times over)."""
        known = self._serving_offer.get((peer, root))
        if known is not None:
            transfer = self._row_to_serve(known)
            if transfer is not None and transfer.state in SERVING:
                return transfer
        for transfer in self._store.transfers(peer, states=SERVING):
            if transfer.outgoing and transfer.root == root:
                if len(self._serving_offer) >= TREES_KEPT:
                    del self._serving_offer[next(iter(self._serving_offer))]
                self._serving_offer[(peer, root)] = transfer.offer_id
                return transfer
        return None

    def session_down(self, peer: bytes) -> None:
        queue = self._queues.get(peer)
        if queue is not None:
            queue.clear()  # the peer asks again on its next session

    async def _serve(self, peer: bytes) -> None:
        """Serve ``peer``'s queue: blocks are read (in a worker thread, READ_AHEAD ahead)
        while earlier ones are encrypted and sent, so reading and hashing the file
        overlap with the session's work."""
        send, receive = trio.open_memory_channel[Read](READ_AHEAD)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_ahead, peer, send)
                async with receive:
                    async for transfer, index, block, proof in receive:
                        if not await self._send_block(peer, transfer, index, block, proof):
                            nursery.cancel_scope.cancel()
        finally:
            self._serving.discard(peer)
            if not self._queues.get(peer):
                self._queues.pop(peer, None)
            elif self.nursery is not None and self._links.is_connected(peer):
                # Asked for more after the reader had finished the queue, and before
                # this task ended: served by a task of its own, or never.
                self._serving.add(peer)
                self.nursery.start_soon(self._serve, peer)

    async def _read_ahead(self, peer: bytes, send: trio.MemorySendChannel[Read]) -> None:
        async with send:
            queue = self._queues[peer]
            while queue:
                offer_id, index = queue.popleft()
                transfer = self._row_to_serve(offer_id)
                if transfer is None:
                    continue
                if not transfer.outgoing:  # a room file we fetched: served on
                    await send.send(await self._read_held(transfer, index))
                    continue
                if transfer.state not in SERVING:
                    continue
                # The blocks of this offer next in the queue are read together (in a
                # worker thread, one trip: each costs a wake-up on both sides).
                indices = [index]
                while queue and queue[0][0] == offer_id and len(indices) < READ_BATCH:
                    indices.append(queue.popleft()[1])
                blocks = await self._read(transfer, indices)
                for block_index, block in zip(indices, blocks, strict=True):
                    await send.send((transfer, block_index, block, None))

    async def _read(self, transfer: FileTransfer, indices: list[int]) -> list[bytes | None]:
        """Blocks ``indices`` of our offer's file, each None if it is not what we offered
        (or cannot be read): from the page cache in the event loop where the file system
        allows it, else in a worker thread."""
        source = self._source(transfer.offer_id)
        path = Path(transfer.path)
        if source.cached_reads is None:
            source.cached_reads = await trio.to_thread.run_sync(reads_without_waiting, path)
        if source.cached_reads:
            blocks = read_cached(path, transfer.size, indices, source.stamp)
            if blocks is not None:
                return list(blocks)
        leaves = source.tree.leaves
        try:
            return await trio.to_thread.run_sync(
                read_blocks, path, transfer.size, [(i, leaves[i]) for i in indices], source.stamp
            )
        except OSError as error:
            log.warning("cannot read %s to serve it: %s", transfer.path, error)
            return [None] * len(indices)

    async def _read_held(self, transfer: FileTransfer, index: int) -> Read:
        where = self.serving_path(transfer) if transfer.state in ("accepted", "done") else None
        if where is None:
            return transfer, index, None, None
        found = await trio.to_thread.run_sync(
            read_held_block, where[0], where[1], transfer.root, transfer.size, index
        )
        return (transfer, index, None, None) if found is None else (transfer, index, *found)

    async def _send_block(
        self,
        peer: bytes,
        transfer: FileTransfer,
        index: int,
        block: bytes | None,
        proof: tuple[bytes, ...] | None,
    ) -> bool:
        """False when the session is gone (the rest of the queue goes with it)."""
        if block is None and not transfer.outgoing:  # moved away, or changed: not ours
            self._links.send(peer, FileUnavailable(transfer.root, (index,), "unknown"))
            return True
        if block is None:
            self._links.send(peer, FileUnavailable(transfer.root, (index,), "gone"))
            current = self._store.transfer(transfer.offer_id)
            if current is not None and current.state in SERVING:
                self.cancel(current, "the file changed or went away on the sender's disk")
            return True
        link = self._links.links.get(peer)
        if link is None:
            self.session_down(peer)
            return False
        if proof is None:
            proof = tuple(self._source(transfer.offer_id).tree.proof(index))
        try:
            # Waits while the session holds more than its high-water mark: blocks go out
            # as fast as the peer reads them, and a chat message waits behind that only.
            await link.connection.send(FileBlock(transfer.root, index, block, proof))
        except ConnectionClosed:
            self.session_down(peer)  # the peer asks again on its next session
            return False
        self.served[transfer.offer_id] += len(block)
        sent = self.sent_bytes.get(transfer.offer_id)
        if sent is None:
            return True  # not one of our offers being served (a room file, or ended)
        sent = self.sent_bytes[transfer.offer_id] = sent + len(block)
        now = trio.current_time()
        if now - self._progress_at.get(transfer.offer_id, -PROGRESS_INTERVAL) >= PROGRESS_INTERVAL:
            self._progress_at[transfer.offer_id] = now
            self._emit(FileEvent("progress", transfer.offer_id, peer, True, transfer.name,
                                 transfer.size, transfer.state, sent,
                                 path=transfer.path))  # fmt: skip
        return True

    def _row_to_serve(self, offer_id: bytes) -> FileTransfer | None:
        """The row of ``offer_id``; for an offer of ours being served, kept with its
        source: asked for at every request and every read, and only _move changes it
        (from one serving state to another, or to an end, which drops the source)."""
        source = self._sources.get(offer_id)
        if source is not None and source.row is not None:
            return source.row
        transfer = self._store.transfer(offer_id)
        if transfer is not None and transfer.outgoing and transfer.state in SERVING:
            self._source(offer_id).row = transfer
        return transfer

    def _source(self, offer_id: bytes) -> Source:
        source = self._sources.get(offer_id)
        if source is None:
            leaves, stamp = self._store.transfer_source(offer_id)
            source = Source(tree_of(leaves), stamp)
            while len(self._sources) >= TREES_KEPT:
                del self._sources[next(iter(self._sources))]
            self._sources[offer_id] = source
        return source
