"""The UTF-8 gate in front of expat: whole characters only, faults where they start."""

from __future__ import annotations

from p2pchat.xmpp.utf8 import Utf8Gate


def test_a_character_cut_short_is_held_until_it_is_whole() -> None:
    gate = Utf8Gate()
    assert gate.admit(b"ok \xf0\x9f") == (b"ok ", "")
    assert gate.held == 2
    assert gate.admit(b"\x8e") == (b"", "")
    assert gate.admit(b"\x89!") == ("🎉!".encode(), "")
    assert gate.held == 0


def test_a_fault_stops_what_is_admitted_where_it_starts() -> None:
    assert Utf8Gate().admit(b"ab\xffcd") == (b"ab", "invalid UTF-8")
    assert Utf8Gate().admit(b"ab\0cd") == (b"ab", "a NUL byte")
    assert Utf8Gate().admit(b"a\0b\xff") == (b"a", "a NUL byte")
    assert Utf8Gate().admit(b"a\xffb\0") == (b"a", "invalid UTF-8")
    gate = Utf8Gate()
    assert gate.admit(b"x\xe2\x82") == (b"x", "")
    assert gate.admit(b"(") == (b"", "invalid UTF-8")  # the fault began in the last piece
