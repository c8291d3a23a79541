"""Storing room messages: written with the room's clock in one transaction, then shown.

A message the broadcast took (and will not deliver again) that the disk refuses is held
here, at most MAX_PARKED per room, and stored when the disk takes it again (the run
loop tries every DISK_RETRY seconds, oldest first).
"""

from __future__ import annotations

from collections.abc import Callable

from p2pchat.chat.chains import ChainId
from p2pchat.chat.rooms import SharedFile, observe, shared_file
from p2pchat.diskfaults import disk_fault
from p2pchat.errors import LocalProtocolError, RemoteProtocolError, StoreError
from p2pchat.node.events import RoomMessageIn
from p2pchat.node.rooms.state import MAX_PARKED, RoomState, log
from p2pchat.store import RoomMessage
from p2pchat.wallclock import now_ms
from p2pchat.wire.messages import RoomEnvelope, RoomText

DISK_RETRY = 2.0  # seconds between tries to store what a full disk refused
ChainUse = tuple[ChainId, int] | None  # the chain key that opened a message (§15.7)


class MessageStorage:
    def __init__(
        self,
        state: RoomState,
        *,
        wrote: Callable[[bytes, bytes], None],
        announced: Callable[[bytes, bytes], None],
    ) -> None:
        """``wrote(room_id, author)`` is told that a member wrote: it has joined;
        ``announced(room_id, author)`` that a member's join notice came."""
        self._state = state
        self._wrote = wrote
        self._announced = announced
        # Told of each stored message that shares a file (the file service's hook).
        self.file_shared: Callable[[bytes, bytes, bytes, int, SharedFile], None] | None = None
        # room -> msg id -> a message the disk refused, to store when it takes it (bounded)
        self.held: dict[bytes, dict[bytes, tuple[RoomEnvelope, RoomText, bytes, ChainUse]]] = {}

    def write(
        self,
        envelope: RoomEnvelope,
        inner: RoomText,
        payload: bytes,
        *,
        received_at: int,
        room_clock: int,
        used: ChainUse = None,
    ) -> RoomMessage | None:
        """Add a room message (``payload`` the encoded ``envelope``, ``inner`` its text)
        and the room's clock after it, in one transaction, with the deletion of the
        chain key that opened it (``used``, §15.7); None if it was stored already. Ours
        is stored read."""
        store = self._state.store
        taken = self._state.chain_after(envelope.room_id, used)
        with store.transaction():
            self._state.store_chain(envelope.room_id, taken)
            stored = store.add_room_message(
                room_id=envelope.room_id,
                msg_id=envelope.msg_id,
                author=envelope.author,
                clock=inner.clock,
                sent_at=inner.time,
                received_at=received_at,
                text=inner.text,
                envelope=payload,
                read=envelope.author == self._state.me,
                action=inner.action,
                topic=inner.topic,
            )
            if inner.topic and stored is not None:
                store.set_room_topic(envelope.room_id, inner.text, clock=inner.clock,
                                     msg_id=envelope.msg_id)  # fmt: skip
            store.set_room_clock(envelope.room_id, room_clock)
        self._state.chain_kept(envelope.room_id, taken)
        if stored is not None:
            self._state.counted(envelope.room_id, envelope.epoch)
        return stored

    def store_or_hold(
        self,
        room_id: bytes,
        envelope: RoomEnvelope,
        inner: RoomText,
        payload: bytes,
        used: ChainUse = None,
    ) -> None:
        """Store a message the tree took; if the disk refuses it, hold it to store later
        (the tree has it as received and will not deliver it again)."""
        try:
            self._store(room_id, envelope, inner, payload, used)
        except (RemoteProtocolError, LocalProtocolError) as error:
            self._state.refuse(envelope.author, error)
        except StoreError as error:
            if disk_fault(error) is None:
                log.warning("room message %s not stored: %s", envelope.msg_id.hex(), error)
                return
            held = self.held.setdefault(room_id, {})
            if len(held) < MAX_PARKED:
                held[envelope.msg_id] = (envelope, inner, payload, used)
            else:  # rare: repaired by a digest after our next restart
                log.warning("room %s: too many messages wait for the disk; one is dropped "
                            "here until the next start", room_id.hex())  # fmt: skip
            self._state.wake.set()

    def store_held(self) -> None:
        """Try again to store the room messages the disk refused (oldest first); stop at
        the first refusal: the disk is still full."""
        for room_id in list(self.held):
            held = self.held[room_id]
            while held:
                msg_id, (envelope, inner, payload, used) = next(iter(held.items()))
                if room_id not in self._state.rooms:
                    held.clear()
                    break
                try:
                    self._store(room_id, envelope, inner, payload, used)
                except StoreError as error:
                    if disk_fault(error) is not None:
                        return
                    log.warning("room message %s not stored: %s", msg_id.hex(), error)
                except (RemoteProtocolError, LocalProtocolError) as error:
                    self._state.refuse(envelope.author, error)
                del held[msg_id]
            del self.held[room_id]

    def _store(
        self,
        room_id: bytes,
        envelope: RoomEnvelope,
        inner: RoomText,
        payload: bytes,
        used: ChainUse,
    ) -> None:
        state = self._state
        room = state.rooms.get(room_id)
        if room is None:
            return
        room = observe(room, inner.clock)
        state.heard_nick(envelope.author, inner.nick)
        if inner.joined or inner.keyed:  # a notice: nothing to store or show
            taken = state.chain_after(room_id, used)
            with state.store.transaction():
                state.store_chain(room_id, taken)
                state.store.set_room_clock(room_id, room.clock)
            state.chain_kept(room_id, taken)
            state.rooms[room_id] = room
            state.held_by(room_id, used, envelope.author)
            if inner.joined:  # the author joined
                self._announced(room_id, envelope.author)
            return
        stored = self.write(envelope, inner, payload, received_at=now_ms(), room_clock=room.clock,
                            used=used)  # fmt: skip
        state.rooms[room_id] = room
        state.held_by(room_id, used, envelope.author)
        self._wrote(room_id, envelope.author)  # it wrote: it has joined
        if stored is not None:
            own = envelope.author == state.me
            file = shared_file(inner)
            state.emit(RoomMessageIn(room_id, envelope.msg_id, envelope.author, inner.text,
                                     inner.time, inner.clock, own, inner.action,
                                     inner.topic, file is not None))  # fmt: skip
            if file is not None and self.file_shared is not None:
                self.file_shared(room_id, envelope.msg_id, envelope.author, inner.clock, file)
