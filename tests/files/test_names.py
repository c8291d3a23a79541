"""Names from the network made safe to create in the downloads folder (§16.2)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.files.names import FALLBACK, MAX_NAME_BYTES, safe_name, unique_name

DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
           *(f"lpt{i}" for i in range(1, 10))}  # fmt: skip


def assert_safe(name: str) -> None:
    assert name and name not in (".", "..")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert not set(name) & set('/\\\0<>:"|?*')
    assert not name.startswith((".", " ")) and not name.endswith((".", " "))
    for char in name:
        assert unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    assert name.split(".", 1)[0].rstrip(" ").lower() not in DEVICES


@given(st.text(max_size=600))
def test_any_text_becomes_a_safe_name(offered: str) -> None:
    assert_safe(safe_name(offered))


@given(st.text(alphabet=st.sampled_from(list("./\\ ._-aCcOoNn1é\u202e\x00")), max_size=40))
def test_names_built_from_the_dangerous_characters_are_safe(offered: str) -> None:
    assert_safe(safe_name(offered))


@given(st.text(max_size=300))
def test_a_safe_name_stays_as_it_is(offered: str) -> None:
    once = safe_name(offered)
    assert safe_name(once) == once


@pytest.mark.parametrize(
    ("offered", "stored"),
    [
        ("holiday.jpg", "holiday.jpg"),
        ("report v2.final.pdf", "report v2.final.pdf"),
        ("../../.ssh/authorized_keys", "__.._.ssh_authorized_keys"),
        ("..\\..\\Windows\\system.ini", "__.._Windows_system.ini"),
        (".bashrc", "_bashrc"),
        ("..", FALLBACK),
        ("", FALLBACK),
        ("  . . ", FALLBACK),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
        ("nul .txt", "_nul .txt"),
        ("console.log", "console.log"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe"),  # shown reversed as "exe.pdf"
        ("tab\there\nnewline", "tab_here_newline"),
        ("what?.txt", "what_.txt"),
        ("trailing. ", "trailing"),
        ("e\u0301.txt", "é.txt"),  # NFC
        ("a\ud800b.txt", "a_b.txt"),  # a lone surrogate (msgpack cannot carry one; still)
        ("\ue000x", "_x"),  # private use
        ("x\u2028y", "x_y"),  # a line separator
    ],
)
def test_examples(offered: str, stored: str) -> None:
    assert safe_name(offered) == stored


def test_a_long_name_keeps_its_extension_and_whole_characters() -> None:
    name = safe_name("é" * 10_000 + ".jpeg")
    assert name.endswith(".jpeg") and len(name.encode()) <= MAX_NAME_BYTES
    assert set(name[:-5]) == {"é"}
    assert len(safe_name("a" * 10_000).encode()) == MAX_NAME_BYTES
    # An "extension" that is not short is not kept apart.
    assert safe_name("a" * 300 + "." + "b" * 100).startswith("a" * 190)


def test_a_cut_that_leaves_a_device_name_is_caught() -> None:
    assert safe_name("CON" + " " * 300 + "x") == "_CON"


def test_unique_name_counts_up_within_the_bound() -> None:
    taken = {"photo.jpg", "photo (1).jpg"}
    assert unique_name("photo.jpg", taken.__contains__) == "photo (2).jpg"
    assert unique_name("new.jpg", taken.__contains__) == "new.jpg"
    assert unique_name("README", {"README"}.__contains__) == "README (1)"
    long = safe_name("x" * 1000 + ".png")
    again = unique_name(long, {long}.__contains__)
    assert again.endswith(" (1).png") and len(again.encode()) <= MAX_NAME_BYTES
    with pytest.raises(ValueError):
        unique_name("a.txt", lambda _: True, limit=5)


@given(st.text(max_size=300), st.integers(1, 30))
def test_unique_names_are_safe_and_new(offered: str, existing: int) -> None:
    taken: set[str] = set()
    for _ in range(existing):
        taken.add(unique_name(safe_name(offered), taken.__contains__))
    assert len(taken) == existing
    for name in taken:
        assert_safe(name)
