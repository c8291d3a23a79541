"""Files shared with rooms (docs/protocol.md §16.4): the offers that room messages
carry, who holds which blocks (``FileHave``), where a member fetches each block from,
and what we serve to whom — the author a bounded number of copies of each block, a
member the blocks it holds verified.

Everything kept here is bounded by what we take part in: haves are kept only for room
files we hold or fetch, from members of their room, at most one bitmap per member.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping

import trio

from p2pchat.chat.rooms import SharedFile
from p2pchat.files.blocks import block_count
from p2pchat.net.links import LinkManager
from p2pchat.node.events import FileEvent
from p2pchat.store import FileTransfer, Store
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import FILES_FEATURE, MAX_HAVE_BYTES, FileHave

HAVE_EVERY = 4  # blocks fetched between two FileHave updates (1 MiB)
# The author serves each block once; a member refused ``busy`` in PATIENCE seconds of a
# row (counted at most once a second: no other holder it reaches has what it asks) is
# served its next request whole.
PATIENCE = 3
# Members we open a session with to trade blocks when we start fetching, beyond those
# the room's overlay already gave us (each such dial is bounded by DIAL_WAIT).
FETCH_PEERS = 6
DIAL_WAIT = 5.0
SOURCE_WINDOW = 8  # blocks asked of one holder at a time (2 MiB)
MAX_ROOM_FILE_BLOCKS = MAX_HAVE_BYTES * 8  # 65,536 blocks: 16 GiB
HOLDING = ("accepted", "done")  # a member's states in which it holds blocks


def has_block(held: bytes, index: int) -> bool:
    byte = index >> 3
    return byte < len(held) and bool(held[byte] & (1 << (index & 7)))


def full_map(size: int) -> bytes:
    count = block_count(size)
    held = bytearray(b"\xff" * ((count + 7) // 8))
    if count % 8:
        held[-1] = (1 << (count % 8)) - 1
    return bytes(held)


class RoomFiles:
    def __init__(
        self,
        store: Store,
        links: LinkManager,
        me: bytes,
        members: Callable[[bytes], frozenset[bytes]],
        emit: Callable[[FileEvent], None],
        rng: random.Random | None = None,
        *,
        per_author: int = 32,
        in_all: int = 256,
    ) -> None:
        """``members(room_id)``: the room's members while we are in it (else empty).
        ``per_author``, ``in_all``: room offers kept waiting for our user's say, from one
        author and in all (the 1:1 offers' limits: a member cannot fill the list)."""
        self._store = store
        self._links = links
        self._me = me
        self._members = members
        self._emit = emit
        self._rng = rng or random.Random()
        self._per_author = per_author
        self._in_all = in_all
        self.haves: dict[bytes, dict[bytes, bytes]] = {}  # root -> member -> bitmap
        self._told: dict[bytes, set[bytes]] = defaultdict(set)  # root -> sent ours to
        self.banned: dict[bytes, set[bytes]] = defaultdict(set)  # root -> sent a bad block
        self._served: dict[bytes, Counter[int]] = {}  # our offer -> copies of each block
        # (our offer, member) -> seconds refused in a row, and when last counted
        self._refused: dict[tuple[bytes, bytes], tuple[int, float]] = {}
        self.nursery: trio.Nursery | None = None  # for the dials of reach()

    # ---------------------------------------------------------------- offers

    def shared(self, room_id: bytes, msg_id: bytes, author: bytes, clock: int,
               file: SharedFile) -> None:  # fmt: skip
        """A room message shared a file: kept as an offer for our user's say (our own
        shares are stored when made)."""
        if author == self._me or self._store.transfer(msg_id) is not None:
            return
        if block_count(file.size) > MAX_ROOM_FILE_BLOCKS:
            return  # larger than a room file may be: no one could say what they hold
        waiting = ("offered",)
        if (
            self._store.count_transfers(outgoing=False, states=waiting, peer=author)
            >= self._per_author
            or self._store.count_transfers(outgoing=False, states=waiting) >= self._in_all
        ):
            return  # too many wait already: the message shows as its line, not an offer
        now = now_ms()
        transfer = FileTransfer(
            msg_id, author, False, file.root, file.size, file.name, file.media_type,
            file.thumbnail, now, "offered", "", "", now, clock=clock, room_id=room_id,
        )  # fmt: skip
        self._store.add_transfer(transfer)
        self._emit(FileEvent("offer", msg_id, author, False, file.name, file.size, "offered",
                             room=room_id))  # fmt: skip

    def row_for(self, peer: bytes, root: bytes, *, holding: bool = True) -> FileTransfer | None:
        """Our row of the room file ``root`` shared in a room ``peer`` is a member of;
        ``holding``: only one we serve from (ours, or one we fetch or have)."""
        for row in self._store.transfers_of_root(root):
            if not row.room_id or peer not in self._members(row.room_id):
                continue
            if (
                not holding
                or (row.outgoing and row.state == "offered")
                or (not row.outgoing and row.state in HOLDING)
            ):
                return row
        return None

    # ---------------------------------------------------------------- who holds what

    def have(self, peer: bytes, message: FileHave, ours: Callable[[FileTransfer], bytes]) -> None:
        """A member says what it holds; answered with what we hold when it first speaks
        of this file (in this session). ``ours(row)``: our held map of a row we fetch or
        have."""
        row = self.row_for(peer, message.root)
        if row is None or peer in self.banned[message.root]:
            return
        if len(message.held) > (block_count(row.size) + 7) // 8:
            return
        holders = self.haves.setdefault(message.root, {})
        first = peer not in holders  # (what we told it before, it may have ignored)
        holders[peer] = message.held
        if first or peer not in self._told[message.root]:
            held = full_map(row.size) if row.outgoing else ours(row)
            self._send_have(peer, message.root, held)

    def announce(self, row: FileTransfer, held: bytes, *, everyone: bool = False) -> None:
        """Our FileHave for a room file we fetch: to the members who sent us theirs, or
        (``everyone``: starting) to every member we have a session with."""
        if everyone:
            peers: Iterable[bytes] = self._members(row.room_id) - {self._me}
        else:
            peers = list(self.haves.get(row.root, {}))
        for peer in peers:
            self._send_have(peer, row.root, held)

    def reach(self, row: FileTransfer, held: Callable[[], bytes]) -> None:
        """Starting to fetch: open sessions with a few members we have none with (the
        overlay gives each member only a few), and tell them what we hold, so that
        there are holders to trade with beyond the author."""
        if self.nursery is None:
            return
        others = [m for m in self._members(row.room_id)
                  if m not in (self._me, row.peer) and not self._links.is_connected(m)]  # fmt: skip
        for member in self._rng.sample(others, min(FETCH_PEERS, len(others))):
            self.nursery.start_soon(self._dial_and_tell, member, row.root, held)

    async def _dial_and_tell(self, peer: bytes, root: bytes, held: Callable[[], bytes]) -> None:
        if await self._links.session(peer, DIAL_WAIT) is not None:
            self._send_have(peer, root, held())

    def _send_have(self, peer: bytes, root: bytes, held: bytes) -> None:
        link = self._links.links.get(peer)
        if link is None or FILES_FEATURE not in link.connection.features:
            return
        if self._links.send(peer, FileHave(root, held)):
            self._told[root].add(peer)

    def announce_to(self, peer: bytes, row: FileTransfer, held: bytes) -> None:
        """A session with ``peer`` came up while we fetch ``row``: tell it, if a member."""
        if peer in self._members(row.room_id) and peer != self._me:
            self._send_have(peer, row.root, held)

    def forget_holder(self, root: bytes, peer: bytes) -> None:
        """``peer`` said it does not hold what it claimed: asked again once it says so."""
        self.haves.get(root, {}).pop(peer, None)

    def session_down(self, peer: bytes) -> None:
        """What a member said it holds is asked again on its next session."""
        for told in self._told.values():
            told.discard(peer)
        for holders in self.haves.values():
            holders.pop(peer, None)

    def forget(self, root: bytes) -> None:
        """No room file of ``root`` is fetched any more: its holders go."""
        if not any(r.room_id and r.state in ("offered", "accepted")
                   for r in self._store.transfers_of_root(root)):  # fmt: skip
            self.haves.pop(root, None)
            self._told.pop(root, None)

    def ban(self, root: bytes, peer: bytes) -> None:
        """``peer`` sent a block of ``root`` that did not verify: asked for no more."""
        self.banned[root].add(peer)
        self.haves.get(root, {}).pop(peer, None)

    # ---------------------------------------------------------------- fetching

    def sources(
        self, row: FileTransfer, blocks: list[int], asked_of: Mapping[int, bytes]
    ) -> tuple[dict[bytes, list[int]], list[int]]:
        """Whom to ask for each of ``blocks``: a member whose FileHave holds it (the one
        with the fewest asked), else the author; at most SOURCE_WINDOW asked of each.
        Also the blocks no one can be asked for now."""
        load = Counter(asked_of.values())
        members = self._members(row.room_id)
        holders = {
            peer: held for peer, held in self.haves.get(row.root, {}).items()
            if peer in members and peer not in self.banned[row.root]
            and self._links.is_connected(peer)
        }  # fmt: skip
        plan: dict[bytes, list[int]] = defaultdict(list)
        later: list[int] = []
        for index in blocks:
            having = [p for p, held in holders.items()
                      if has_block(held, index) and load[p] < SOURCE_WINDOW]  # fmt: skip
            if having:
                source = min(having, key=lambda p: (load[p], self._rng.random()))
            elif load[row.peer] < SOURCE_WINDOW and row.peer not in self.banned[row.root]:
                source = row.peer
            else:
                later.append(index)
                continue
            plan[source].append(index)
            load[source] += 1
        return plan, later

    # ---------------------------------------------------------------- serving

    def plan_serving(
        self, peer: bytes, row: FileTransfer, blocks: Iterable[int], held: bytes
    ) -> tuple[list[int], list[int], list[int]]:
        """Of the blocks ``peer`` asked of ``row``: those to serve, those to call
        ``busy`` (the author served them already, and the member is not starved) and
        ``unknown`` ones (not held, or past the end). ``held``: ours, for a row we
        fetched."""
        count = block_count(row.size)
        serve: list[int] = []
        busy: list[int] = []
        unknown: list[int] = []
        if row.outgoing:
            copies = self._served.setdefault(row.offer_id, Counter())
            key = (row.offer_id, peer)
            refused, counted = self._refused.get(key, (0, -1.0))
            starved = refused >= PATIENCE
            for index in blocks:
                if index >= count:
                    unknown.append(index)
                elif copies[index] and not starved:
                    busy.append(index)
                else:
                    copies[index] += 1
                    serve.append(index)
            now = trio.current_time()
            if starved or not busy:
                self._refused.pop(key, None)
            elif now - counted >= 1.0:
                self._refused[key] = (refused + 1, now)
            return serve, busy, unknown
        for index in blocks:
            (serve if index < count and has_block(held, index) else unknown).append(index)
        return serve, busy, unknown
