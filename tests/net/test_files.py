"""Files between real nodes over loopback (docs/protocol.md §16.3): offered, accepted,
every block verified and the file saved under a safe name; declined, cancelled,
resumed after a crash, and refused when the sender's file changed."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pchat.files.blocks import BLOCK_SIZE
from p2pchat.files.download import DEFAULT_WINDOW, Download
from p2pchat.node.events import FileEvent
from p2pchat.node.files import FileService
from p2pchat.node.files.disk import partial_path
from p2pchat.node.files.downloads import SAVE_EVERY
from p2pchat.store import FileTransfer
from tests.net.chatpeers import ChatPeer, wait_for


def files(peer: ChatPeer) -> FileService:
    assert peer.node is not None and peer.node.files is not None
    return peer.node.files


def file_events(peer: ChatPeer, kind: str) -> list[FileEvent]:
    return [e for e in peer.events if isinstance(e, FileEvent) and e.kind == kind]


async def done_event(peer: ChatPeer, offer_id: bytes, timeout: float = 30) -> FileEvent:
    """The peer's ``done`` event of the offer, once its event reader has it (the store
    says "done" a moment before: events reach the test through a task of their own)."""

    def found() -> list[FileEvent]:
        return [e for e in file_events(peer, "done") if e.offer_id == offer_id]

    await wait_for(lambda: bool(found()), timeout, "the done event")
    [done] = found()
    return done


def state(peer: ChatPeer, offer_id: bytes) -> str:
    transfer = peer.store.transfer(offer_id) if peer.node is not None and peer.store else None
    return transfer.state if transfer else ""


def in_state(peer: ChatPeer, offer_id: bytes, wanted: str) -> Callable[[], bool]:
    return lambda: state(peer, offer_id) == wanted


def make_file(folder: Path, name: str, size: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(os.urandom(size))
    return path


async def pair(tmp_path: Path, nursery: trio.Nursery) -> tuple[ChatPeer, ChatPeer]:
    ann = ChatPeer("ann", tmp_path / "ann")
    bob = ChatPeer("bob", tmp_path / "bob", downloads=tmp_path / "bob-downloads")
    await ann.start(nursery)
    await bob.start(nursery)
    ann.befriend(bob)
    bob.befriend(ann)
    bob.introduce(ann)
    await wait_for(lambda: bob.connected_to(ann) and ann.connected_to(bob), 30, "a session")
    return ann, bob


async def test_a_file_is_offered_accepted_verified_and_saved(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        source = make_file(tmp_path / "ann-files", "holiday photo.jpg", 3 * BLOCK_SIZE + 1234)
        sent = await files(ann).offer(bob.key, source)
        assert (sent.size, sent.name, sent.media_type) == (
            source.stat().st_size,
            "holiday photo.jpg",
            "image/jpeg",
        )
        await wait_for(lambda: bool(file_events(bob, "offer")), 30, "bob sees the offer")
        [offer] = file_events(bob, "offer")
        assert (offer.offer_id, offer.name, offer.size) == (sent.offer_id, sent.name, sent.size)
        await wait_for(lambda: state(ann, sent.offer_id) == "waiting", 30, "ann hears it arrived")
        files(bob).accept(sent.offer_id)
        await wait_for(lambda: bool(file_events(bob, "done")), 30, "the file arrives")
        [done] = file_events(bob, "done")
        saved = Path(done.path)
        assert saved == tmp_path / "bob-downloads" / "holiday photo.jpg"
        assert saved.read_bytes() == source.read_bytes()
        assert not any((tmp_path / "bob-downloads" / ".p2pchat-partial").iterdir())
        await wait_for(lambda: state(ann, sent.offer_id) == "done", 30, "ann hears it is done")
        assert file_events(bob, "progress")  # at least one progress event on the way
        # The same file again is the file saved already: no second copy.
        again = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, again.offer_id) == "offered", 30, "the second offer")
        files(bob).accept(again.offer_id)
        await wait_for(lambda: state(bob, again.offer_id) == "done", 30, "the second file")
        assert bob.store is not None
        second = bob.store.transfer(again.offer_id)
        assert second is not None and second.path == str(saved)
        # Other content under the same name gets a number; the first file stays as it was.
        first_content = source.read_bytes()
        other = make_file(tmp_path / "ann-files", "holiday photo.jpg", 3 * BLOCK_SIZE + 1234)
        third = await files(ann).offer(bob.key, other)
        await wait_for(lambda: state(bob, third.offer_id) == "offered", 30, "the third offer")
        files(bob).accept(third.offer_id)
        await wait_for(lambda: state(bob, third.offer_id) == "done", 30, "the third file")
        numbered = tmp_path / "bob-downloads" / "holiday photo (1).jpg"
        assert numbered.read_bytes() == other.read_bytes() != first_content
        assert saved.read_bytes() == first_content
        assert sorted(p.name for p in saved.parent.iterdir() if p.is_file()) == [
            "holiday photo (1).jpg", "holiday photo.jpg"
        ]  # fmt: skip
        nursery.cancel_scope.cancel()


async def test_declined_and_cancelled_offers_end_on_both_sides(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        source = make_file(tmp_path / "ann-files", "a.bin", 1000)
        first = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, first.offer_id) == "offered", 30, "the offer")
        files(bob).decline(first.offer_id, "no thanks")
        await wait_for(lambda: state(ann, first.offer_id) == "declined", 30, "declined")
        assert ann.store is not None
        declined = ann.store.transfer(first.offer_id)
        assert declined is not None and declined.reason == "no thanks"
        second = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, second.offer_id) == "offered", 30, "the offer")
        files(ann).cancel(second.offer_id, "wrong file")
        await wait_for(lambda: state(bob, second.offer_id) == "cancelled", 30, "cancelled")
        nursery.cancel_scope.cancel()


async def accept_until_first_save(
    tmp_path: Path, ann: ChatPeer, bob: ChatPeer, blocks: int
) -> tuple[Path, FileTransfer]:
    """ann offers bob a file of ``blocks`` blocks; bob accepts and this returns right
    after bob's first save of the held map (SAVE_EVERY blocks in): (the source, the
    offer)."""
    source = make_file(tmp_path / "ann-files", "big.bin", blocks * BLOCK_SIZE)
    sent = await files(ann).offer(bob.key, source)
    await wait_for(lambda: state(bob, sent.offer_id) == "offered", 30, "the offer")
    downloads = files(bob).downloads
    saved = trio.Event()
    record = downloads._record_held

    def record_and_tell(offer_id: bytes, held: bytes) -> None:
        record(offer_id, held)
        saved.set()

    downloads._record_held = record_and_tell  # type: ignore[method-assign]
    files(bob).accept(sent.offer_id)
    with trio.fail_after(30):
        await saved.wait()
    return source, sent


async def restart_until_saved(
    nursery: trio.Nursery, ann: ChatPeer, bob: ChatPeer, source: Path, sent: FileTransfer
) -> int:
    """Start bob again and let the download finish; that bob saved the file whole is
    checked, and how many bytes of it ann sent in all is the answer."""
    await bob.start(nursery)
    bob.introduce(ann)
    await wait_for(lambda: state(bob, sent.offer_id) == "done", 60, "the file")
    done = await done_event(bob, sent.offer_id)
    assert Path(done.path).read_bytes() == source.read_bytes()
    delivered = await done_event(ann, sent.offer_id)
    return delivered.done_bytes


async def test_a_download_resumes_after_the_receiver_crashes(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        blocks = SAVE_EVERY * 5 // 2
        source, sent = await accept_until_first_save(tmp_path, ann, bob, blocks)
        assert state(bob, sent.offer_id) == "accepted" and bob.store is not None
        held_then = Download(sent.root, sent.size, bob.store.transfer_held(sent.offer_id))
        await bob.crash()
        assert SAVE_EVERY <= held_then.held_count < blocks
        sent_in_all = await restart_until_saved(nursery, ann, bob, source, sent)
        # Sent again: at most what was in flight when bob crashed, not the whole file.
        again = sent_in_all - sent.size
        assert 0 <= again <= (DEFAULT_WINDOW + SAVE_EVERY) * BLOCK_SIZE < sent.size
        nursery.cancel_scope.cancel()


async def test_a_partial_file_changed_while_the_receiver_was_stopped_is_fetched_again(
    tmp_path: Path,
) -> None:
    """Blocks from an earlier run were verified when written, but the disk may change
    behind our back: the whole file is checked against the root before it goes under
    its name, and a file that does not match is fetched again, never saved wrong."""
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        source, sent = await accept_until_first_save(tmp_path, ann, bob, SAVE_EVERY * 5 // 2)
        part = partial_path(tmp_path / "bob-downloads", sent.offer_id)
        await bob.crash()
        with open(part, "r+b") as partial:  # block 0, held, changed on the disk
            partial.write(b"not what was sent")
        sent_in_all = await restart_until_saved(nursery, ann, bob, source, sent)
        assert sent_in_all >= sent.size + SAVE_EVERY * BLOCK_SIZE  # again, whole
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("partial_left", [False, True])
async def test_a_stop_between_saving_a_file_and_recording_it_is_finished_on_restart(
    tmp_path: Path, partial_left: bool
) -> None:
    """A run that stopped after the file went under its name (``partial_left``: and
    before its partial file was removed) and before the store said so: the next run
    finds the file there, records it done, and makes no second copy."""
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        source = make_file(tmp_path / "ann-files", "notes.txt", 2 * BLOCK_SIZE + 77)
        sent = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, sent.offer_id) == "offered", 30, "the offer")
        files(bob).accept(sent.offer_id)
        await wait_for(lambda: state(bob, sent.offer_id) == "done", 30, "the file")
        saved = Path((await done_event(bob, sent.offer_id)).path)
        assert bob.store is not None
        # As the store was when the stop came: accepted, every block held.
        bob.store.set_transfer_state(sent.offer_id, "accepted", now=1, path="")
        bob.store.save_held(sent.offer_id, b"\x07", now=1)
        if partial_left:
            os.link(saved, partial_path(tmp_path / "bob-downloads", sent.offer_id))
        await bob.crash()
        await bob.start(nursery)
        await wait_for(lambda: state(bob, sent.offer_id) == "done", 30, "done again")
        row = bob.store.transfer(sent.offer_id)
        assert row is not None and row.path == str(saved)
        assert saved.read_bytes() == source.read_bytes()
        assert sorted(p.name for p in saved.parent.iterdir()) == [".p2pchat-partial", "notes.txt"]
        assert not any((saved.parent / ".p2pchat-partial").iterdir())
        nursery.cancel_scope.cancel()


async def test_a_file_that_changed_on_the_senders_disk_is_not_sent(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        source = make_file(tmp_path / "ann-files", "notes.txt", 2 * BLOCK_SIZE)
        sent = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, sent.offer_id) == "offered", 30, "the offer")
        source.write_bytes(os.urandom(2 * BLOCK_SIZE))  # same size, other content
        files(bob).accept(sent.offer_id)
        await wait_for(lambda: state(bob, sent.offer_id) == "failed", 30, "the download fails")
        await wait_for(lambda: state(ann, sent.offer_id) == "cancelled", 30, "ann cancels")
        assert not any((tmp_path / "bob-downloads").glob("notes*"))
        assert not any((tmp_path / "bob-downloads" / ".p2pchat-partial").iterdir())
        nursery.cancel_scope.cancel()


async def test_save_as_a_folder_or_a_chosen_name(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        source = make_file(tmp_path / "ann-files", "report.pdf", BLOCK_SIZE + 7)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        into_folder = await files(ann).offer(bob.key, source)
        named = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, named.offer_id) == "offered", 30, "both offers")
        files(bob).accept(into_folder.offer_id, elsewhere)
        files(bob).accept(named.offer_id, elsewhere / "q3 numbers.pdf")
        for offer in (into_folder, named):
            await wait_for(in_state(bob, offer.offer_id, "done"), 30, "saved")
        assert sorted(p.name for p in elsewhere.iterdir()) == ["q3 numbers.pdf", "report.pdf"]
        assert all(p.read_bytes() == source.read_bytes() for p in elsewhere.iterdir())
        assert not (tmp_path / "bob-downloads" / "report.pdf").exists()
        with pytest.raises(ValueError, match="no folder"):
            later = await files(ann).offer(bob.key, source)
            await wait_for(lambda: state(bob, later.offer_id) == "offered", 30, "a third offer")
            files(bob).accept(later.offer_id, tmp_path / "nowhere" / "x.pdf")
        nursery.cancel_scope.cancel()


async def test_a_contacts_small_file_is_accepted_unasked_a_strangers_never(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        ann = ChatPeer("ann", tmp_path / "ann")
        bob = ChatPeer(
            "bob", tmp_path / "bob", downloads=tmp_path / "bob-dl", auto_accept=BLOCK_SIZE
        )
        stranger = ChatPeer("eve", tmp_path / "eve")
        for peer in (ann, bob, stranger):
            await peer.start(nursery)
        ann.befriend(bob)
        bob.befriend(ann)
        bob.introduce(ann)
        stranger.introduce(bob)
        await wait_for(lambda: bob.connected_to(ann) and stranger.connected_to(bob), 30, "sessions")
        small = make_file(tmp_path / "files", "small.txt", 1000)
        large = make_file(tmp_path / "files", "large.bin", BLOCK_SIZE + 1)
        sent_small = await files(ann).offer(bob.key, small)
        sent_large = await files(ann).offer(bob.key, large)
        from_stranger = await files(stranger).offer(bob.key, small)
        await wait_for(lambda: state(bob, sent_small.offer_id) == "done", 30, "the small file")
        await wait_for(lambda: state(bob, from_stranger.offer_id) == "offered", 30, "eve's offer")
        await wait_for(lambda: state(bob, sent_large.offer_id) == "offered", 30, "the large offer")
        assert (tmp_path / "bob-dl" / "small.txt").read_bytes() == small.read_bytes()
        nursery.cancel_scope.cancel()


async def test_a_download_ended_while_its_block_is_written_closes_its_file_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's worker thread holds the partial file's descriptor: an end meanwhile
    (here a cancel; also a completion seen by the tick) must not close it under the
    thread, where the number could be given to another file, nor end the node."""
    from p2pchat.node.files.disk import check_and_write_all as real_write

    in_thread = threading.Event()
    go_on = threading.Event()

    def slow_write(*args: Any) -> list[bool]:
        in_thread.set()
        go_on.wait(10)
        return real_write(*args)

    monkeypatch.setattr("p2pchat.node.files.downloads.check_and_write_all", slow_write)
    async with trio.open_nursery() as nursery:
        ann, bob = await pair(tmp_path, nursery)
        source = make_file(tmp_path / "ann-files", "big.bin", 4 * BLOCK_SIZE)
        sent = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, sent.offer_id) == "offered", 30, "the offer")
        files(bob).accept(sent.offer_id)
        await wait_for(in_thread.is_set, 30, "a block in the writer's thread")
        downloads = files(bob).downloads
        files(bob).cancel(sent.offer_id)
        assert downloads._files.closing  # not closed under the thread
        go_on.set()
        await wait_for(lambda: not downloads._files.closing, 30, "the descriptors closed")
        # The node lives on: another file comes whole.
        monkeypatch.setattr("p2pchat.node.files.downloads.check_and_write_all", real_write)
        again = await files(ann).offer(bob.key, source)
        await wait_for(lambda: state(bob, again.offer_id) == "offered", 30, "a second offer")
        files(bob).accept(again.offer_id)
        await wait_for(lambda: state(bob, again.offer_id) == "done", 30, "the second file")
        nursery.cancel_scope.cancel()
