"""How a file line reads: its words, its progress with rate and time left, the rate
falling when nothing moves, and the actions each state offers. And the paths that
/send completes and that a dropped file pastes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.style import Style

from p2pchat.ui.file_lines import FileAction, FileLine
from p2pchat.ui.paths import complete_path, pasted_file
from p2pchat.ui.widgets.file_entry import draw_file


def line(state: str = "accepted", *, outgoing: bool = False, size: int = 100_000_000) -> FileLine:
    return FileLine(b"o" * 16, b"p" * 32, outgoing, "film.mkv", size, state)


def test_progress_shows_rate_and_time_left_then_falls_to_waiting() -> None:
    shown = line()
    for second in range(5):
        shown.moved("accepted", second * 10_000_000, float(second))
    assert shown.rate == pytest.approx(10_000_000)
    text = shown.status()
    assert "40%" in text and "40.0 MB of 100 MB" in text and "10.0 MB/s" in text
    assert "0:06 left" not in text and "6 s left" in text
    # Nothing comes any more (the peer went away): the rate falls, then it waits.
    changed = [shown.tick(4.0 + t) for t in (1.0, 2.0, 3.0, 6.0, 12.0)]
    assert changed[0] is False  # not yet a stall: events come twice a second
    assert shown.rate == 0 and "waiting for them" in shown.status()
    assert any(changed)


def test_every_block_here_reads_as_saving_not_as_time_left() -> None:
    """Between the last block and ``done`` the file is made durable (and a resumed one
    checked whole: seconds for a large file); no stale rate or time left meanwhile."""
    shown = line()
    shown.moved("accepted", 50_000_000, 0.0)
    shown.moved("accepted", 100_000_000, 1.0)
    assert shown.status().endswith("100% · 100 MB here · checking and saving")
    sending = line(outgoing=True)
    sending.moved("accepted", 100_000_000, 1.0)
    assert "checking" not in sending.status()


def test_each_state_offers_its_actions() -> None:
    assert line("offered").actions() == [FileAction.ACCEPT, FileAction.SAVE_AS,
                                         FileAction.DECLINE]  # fmt: skip
    assert line("accepted").actions() == [FileAction.CANCEL]
    assert line("declined").actions() == []
    assert line("waiting", outgoing=True).actions() == [FileAction.CANCEL]
    assert line("declined", outgoing=True).actions() == [FileAction.RESEND]
    done = line("done")
    done.path = "/tmp/film.mkv"
    assert done.actions() == [FileAction.OPEN, FileAction.FOLDER]
    assert done.status() == "saved as /tmp/film.mkv"
    # A picture is also viewed in the window, first where it is there to view.
    photo = line("done")
    photo.path, photo.media_type = "/tmp/sun.jpg", "image/jpeg"
    assert photo.actions() == [FileAction.VIEW, FileAction.OPEN, FileAction.FOLDER]
    sent = line("done", outgoing=True)
    sent.path, sent.media_type = "/home/ann/sun.jpg", "image/jpeg"
    assert sent.actions() == [FileAction.VIEW, FileAction.OPEN]
    shared = line("offered", outgoing=True)
    shared.path, shared.media_type, shared.room = "/home/ann/sun.jpg", "image/png", b"r" * 16
    assert shared.actions() == [FileAction.STOP, FileAction.VIEW, FileAction.OPEN]
    failed = line("failed")
    failed.moved("failed", 0, 1.0, reason="a block from the sender did not match the file")
    assert failed.status() == "failed: a block from the sender did not match the file"


@given(st.lists(st.integers(min_value=-(10**12), max_value=10**12), max_size=30))
def test_progress_never_leaves_zero_to_the_size(reports: list[int]) -> None:
    shown = line(size=1000)
    for t, done in enumerate(reports):
        shown.moved("accepted", done, float(t))
        assert 0 <= shown.done_bytes <= 1000 and 0 <= shown.fraction <= 1
        assert shown.status()


def test_paths_complete_like_a_shell(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photo.jpg").write_bytes(b"x")
    (tmp_path / ".hidden").write_bytes(b"x")
    assert complete_path(f"{tmp_path}/pho") == [f"{tmp_path}/photo.jpg", f"{tmp_path}/photos/"]
    assert complete_path(f"{tmp_path}/.h") == [f"{tmp_path}/.hidden"]
    assert f"{tmp_path}/.hidden" not in complete_path(f"{tmp_path}/")
    assert complete_path(f"{tmp_path}/nowhere/x") == []


def test_a_dropped_file_is_read_in_each_shape_terminals_paste(tmp_path: Path) -> None:
    dropped = tmp_path / "my photo.jpg"
    dropped.write_bytes(b"x")
    for pasted in (str(dropped), f"'{dropped}'", f'"{dropped}"',
                   str(dropped).replace(" ", "\\ "), f"file://{str(dropped).replace(' ', '%20')}",
                   f"  {dropped}\n"):  # fmt: skip
        assert pasted_file(pasted) == dropped, pasted
    elsewhere = f"file://elsewhere{dropped}"
    for text in ("hello there", str(tmp_path), f"{tmp_path}/missing.jpg", elsewhere,
                 f"{dropped}\n{dropped}", "relative.jpg"):  # fmt: skip
        assert pasted_file(text) is None, text
    # "~user" for no such user is a name like any other, not a crash (it was one:
    # Path.expanduser raises where os.path.expanduser leaves it as typed).
    assert pasted_file("~0") is None and pasted_file("~no-such-user-p2p/x.jpg") is None
    assert complete_path("~no-such-user-p2p/") == []


def test_a_name_from_the_network_cannot_drive_the_terminal_or_reorder_itself() -> None:
    # An ESC, a C1 control and a right-to-left override ("photo<RLO>gpj.exe" reads as
    # "photoexe.jpg" where bidi is honoured).
    shown = FileLine(b"o" * 16, b"p" * 32, False, "ph\x1b[2Joto\x9b\u202egpj.exe", 10, "offered")
    strips, buttons = draw_file(shown, [], 0, 60, None, base=Style(), title=Style(),
                                hint=Style(), button=Style())  # fmt: skip
    text = "".join(strip.text for strip in strips)
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert "ph\ufffd[2Joto\ufffd\ufffdgpj.exe" in text
    assert [b.action for b in buttons] == [FileAction.ACCEPT, FileAction.SAVE_AS,
                                           FileAction.DECLINE]  # fmt: skip
