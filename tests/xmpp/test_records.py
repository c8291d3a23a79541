"""XEP-0174 presence records (p2pchat/xmpp/records.py): what a ``_presence._tcp``
instance announces, read with care — anyone on the network can announce anything —
and what ours says, within the bounds of one TXT string per field."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from p2pchat.wire.messages import Status
from p2pchat.xmpp.records import (
    MAX_FIELD_CHARS,
    MAX_INSTANCE_BYTES,
    MAX_MESSAGE_CHARS,
    InvalidPresence,
    LinkLocalPeer,
    clean,
    parse_presence,
    presence_txt,
)

ADDRESSES = ("198.18.0.3",)
TXT_STRING_BYTES = 255  # one TXT string: a length byte, then "key=value" (RFC 6763 §6)

# What libpurple's Bonjour plugin announces (bonjour/mdns_common.c), as zeroconf hands it.
LIBPURPLE: dict[bytes, bytes | None] = {
    b"txtvers": b"1",
    b"1st": b"Fred",
    b"last": b"Finch",
    b"port.p2pj": b"5298",
    b"status": b"avail",
    b"msg": b"at my desk",
    b"node": b"libpurple",
    b"ver": b"2.14.12",
}


def read(instance: str = "fred@finchhost", /, **fields: bytes | None) -> LinkLocalPeer:
    """libpurple's record with ``fields`` changed (None: the key alone, no value)."""
    txt = {**LIBPURPLE, **{key.encode(): value for key, value in fields.items()}}
    return parse_presence(instance, txt, ADDRESSES, 5298)


def refused(instance: str, txt: dict[bytes, bytes | None] | None = None,
            addresses: tuple[str, ...] = ADDRESSES, port: int = 5298) -> str:  # fmt: skip
    with pytest.raises(InvalidPresence) as caught:
        parse_presence(instance, LIBPURPLE if txt is None else txt, addresses, port)
    return str(caught.value)


def is_clean(text: str, limit: int) -> bool:
    """No control or format character, no doubled, leading or trailing space, bounded."""
    return (
        len(text) <= limit
        and not any(unicodedata.category(char)[0] == "C" for char in text)
        and "  " not in text
        and text == text.strip(" ")
        and not any(char.isspace() and char != " " for char in text)
    )


# ------------------------------------------------------------------ good records


def test_a_libpurple_record_reads_whole() -> None:
    assert read() == LinkLocalPeer(
        jid="fred@finchhost",
        addresses=ADDRESSES,
        port=5298,
        first="Fred",
        last="Finch",
        nick="",
        status=Status.AVAILABLE,
        message="at my desk",
        client="libpurple 2.14.12",
    )


def test_an_ichat_record_and_a_bare_one_read() -> None:
    ichat = {b"txtvers": b"1", b"1st": b"Carol", b"last": b"", b"port.p2pj": b"5298",
             b"status": b"away", b"msg": b"Away", b"version": b"1"}  # fmt: skip
    carol = parse_presence("carol@carolhost", ichat, ("198.18.0.4", "198.18.0.5"), 5298)
    assert (carol.name, carol.status, carol.message, carol.client) == (
        "Carol",
        Status.AWAY,
        "Away",
        "",
    )
    assert carol.addresses == ("198.18.0.4", "198.18.0.5")
    # An empty TXT record (no txtvers at all) still names a peer: by its user part.
    bare = parse_presence("dave@davehost", {}, ADDRESSES, 1)
    assert (bare.name, bare.status, bare.message, bare.client) == ("dave", Status.AVAILABLE, "", "")


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"nick": b"freddy"}, "freddy"),
        ({}, "Fred Finch"),
        ({"last": None}, "Fred"),
        ({"1st": b"", "last": b"Finch"}, "Finch"),
        ({"1st": None, "last": None}, "fred"),
        ({"1st": "\x1b[0m \u200b".encode(), "last": None}, "[0m"),
    ],
)
def test_the_name_shown_is_the_nick_else_the_names_else_the_user(
    fields: dict[str, bytes | None], name: str
) -> None:
    assert read(**fields).name == name


@pytest.mark.parametrize(
    ("node", "status", "shown"),
    [
        (b"libpurple", b"dnd", Status.AWAY),  # libpurple says dnd for away
        (b"libpurple", b"away", Status.AWAY),
        (b"libpurple", b"avail", Status.AVAILABLE),
        (b"p2pchat", b"dnd", Status.BUSY),
        (None, b"dnd", Status.BUSY),
        (None, b"away", Status.AWAY),
        (b"libpurple", b"offline", Status.AVAILABLE),  # not a word of XEP-0174's
        (b"libpurple", b"DND", Status.AVAILABLE),
        (b"libpurple", b"", Status.AVAILABLE),
        (b"libpurple", None, Status.AVAILABLE),
        (b"libpurple", b"\xffdnd", Status.AVAILABLE),  # unreadable: left out
        (b"libpurple", b"\x1bdnd", Status.AWAY),  # cleaned first
    ],
)
def test_statuses_and_libpurples_dnd_read_as_away(
    node: bytes | None, status: bytes | None, shown: Status
) -> None:
    assert read(node=node, status=status).status is shown


# ------------------------------------------------------------------ hostile fields


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),  # terminal colours: no ESC left
        ("\x1b]0;pwned\x07title", "]0;pwnedtitle"),  # window title (OSC ... BEL)
        ("\x9b31mC1", "31mC1"),  # CSI as one C1 control
        ("\u202egnp.exe", "gnp.exe"),  # right-to-left override
        ("a\u2066b\u2069c\u200fd", "abcd"),  # isolates and marks
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("two\nlines\r\nand\ttabs", "two lines and tabs"),
        ("  spaced \u2028 out\u00a0 ", "spaced out"),
        ("nul\x00byte", "nulbyte"),
        ("\ue000private", "private"),  # private use
        ("ünïcödé ✓ 你好 🐦", "ünïcödé ✓ 你好 🐦"),  # letters and symbols stay
    ],
)
def test_control_characters_escapes_and_bidi_overrides_are_stripped(raw: str, shown: str) -> None:
    data = raw.encode("utf-8")
    peer = read(nick=data, msg=data, **{"1st": data, "last": data, "ver": data})
    assert (peer.nick, peer.message, peer.first, peer.last) == (shown, shown, shown, shown)
    assert peer.client == f"libpurple {shown}".strip()


def test_overlong_values_are_cut() -> None:
    long = "ü" * 1000
    peer = read(nick=long.encode(), msg=long.encode(), **{"1st": long.encode(), "node": b"n" * 300})
    assert (len(peer.nick), len(peer.first), len(peer.message)) == (
        MAX_FIELD_CHARS,
        MAX_FIELD_CHARS,
        MAX_MESSAGE_CHARS,
    )
    assert peer.client == "n" * MAX_FIELD_CHARS + " 2.14.12"
    # Cut after cleaning: escapes do not count against the bound.
    assert read(nick=b"\x1b" * 500 + b"x" * 200).nick == "x" * MAX_FIELD_CHARS


@pytest.mark.parametrize(
    "bad",
    [b"\xff\xfe", b"ok \xc0\xaf", b"half \xe4\xbd", b"\xed\xa0\x80 surrogate", b"\xf8\x88\x80"],
)
def test_a_field_of_invalid_utf8_is_left_out_and_the_rest_stands(bad: bytes) -> None:
    peer = read(nick=bad, msg=bad, last=bad, status=b"away")
    assert (peer.nick, peer.message, peer.last) == ("", "", "")
    assert (peer.first, peer.status, peer.client) == ("Fred", Status.AWAY, "libpurple 2.14.12")


@pytest.mark.parametrize(
    ("instance", "why"),
    [
        ("", "empty"),
        ("x" * 60 + "@abc", "longer than a DNS label"),
        ("ü" * 31 + "@ab", "longer than a DNS label"),  # 34 characters, 65 bytes
        ("nobody", "not of the form user@machine"),
        ("@host", "not of the form"),
        ("user@", "not of the form"),
        ("a@b@c", "not of the form"),
        ("a b@host", "spaces or control characters"),
        ("ann@host ", "spaces or control characters"),
        ("ann\t@host", "spaces or control characters"),
        ("ann\x1b[2J@host", "spaces or control characters"),
        ("ann\u202e@host", "spaces or control characters"),
        ("ann\u200b@host", "spaces or control characters"),
        ("ann\x00@host", "spaces or control characters"),
        ("<ann>@host", "characters an XMPP address may not"),
        ("ann@ho&st", "characters an XMPP address may not"),
        ("ann'@host", "characters an XMPP address may not"),
        ('ann"@host', "characters an XMPP address may not"),
        ("ann@host/resource", "characters an XMPP address may not"),
    ],
)
def test_bad_instance_names_are_refused(instance: str, why: str) -> None:
    assert why in refused(instance)


def test_instance_names_at_the_bounds_are_taken() -> None:
    longest = "x" * (MAX_INSTANCE_BYTES - 2) + "@h"
    assert read(longest).jid == longest
    assert read("ü" * 30 + "@ab").jid == "ü" * 30 + "@ab"  # 63 bytes
    assert read("Ann.B-c_d@host.local").jid == "Ann.B-c_d@host.local"


@pytest.mark.parametrize("txtvers", [b"2", b"0", b"", b"01", b"1.0", b"\xff"])
def test_a_txtvers_other_than_1_is_refused(txtvers: bytes) -> None:
    assert "only version 1 is known" in refused("ann@host", {**LIBPURPLE, b"txtvers": txtvers})


def test_txtvers_1_or_none_is_taken() -> None:
    assert read(txtvers=b"1").jid == read(txtvers=None).jid == "fred@finchhost"


@pytest.mark.parametrize("port", [0, -1, 65536, 1 << 20])
def test_a_port_outside_tcps_is_refused(port: int) -> None:
    assert "is not a TCP port" in refused("ann@host", port=port)


@pytest.mark.parametrize("port", [1, 5298, 65535])
def test_any_tcp_port_is_taken(port: int) -> None:
    assert parse_presence("ann@host", LIBPURPLE, ADDRESSES, port).port == port


def test_a_record_without_an_ipv4_address_is_refused() -> None:
    assert "no IPv4 address" in refused("ann@host", addresses=())


# ------------------------------------------------------------------ any input

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
txt_keys = st.sampled_from(
    [b"txtvers", b"1st", b"last", b"nick", b"status", b"msg", b"node", b"ver", b"port.p2pj"]
) | st.binary(max_size=20)
# Values: missing, any bytes, or any text as UTF-8 (lone surrogates making it invalid).
txt_values = (
    st.none()
    | st.binary(max_size=300)
    | any_text.map(lambda text: text.encode("utf-8", "surrogatepass"))
)


@given(
    # Names as python-zeroconf hands them: decoded from UTF-8 ("replace": no surrogates).
    instance=st.text(st.characters(codec="utf-8"), max_size=70)
    | st.from_regex(r"[a-z0-9._-]{1,20}@[a-z0-9.-]{1,20}", fullmatch=True),
    txt=st.dictionaries(txt_keys, txt_values, max_size=12),
    addresses=st.lists(st.ip_addresses(v=4).map(str), max_size=3).map(tuple),
    port=st.integers(-10, 70_000),
)
def test_any_record_is_read_clean_and_bounded_or_refused(
    instance: str, txt: dict[bytes, bytes | None], addresses: tuple[str, ...], port: int
) -> None:
    try:
        peer = parse_presence(instance, txt, addresses, port)
    except InvalidPresence:
        return
    assert peer.jid == instance and is_clean(peer.jid, MAX_INSTANCE_BYTES) and " " not in peer.jid
    assert len(peer.jid.encode("utf-8")) <= MAX_INSTANCE_BYTES
    assert (peer.addresses, peer.port) == (addresses, port) and 0 < port < 65536
    for field in (peer.first, peer.last, peer.nick):
        assert is_clean(field, MAX_FIELD_CHARS), field
    assert is_clean(peer.message, MAX_MESSAGE_CHARS)
    assert len(peer.client) <= 2 * MAX_FIELD_CHARS + 1
    assert not any(unicodedata.category(char)[0] == "C" for char in peer.client + peer.name)
    assert peer.status in (Status.AVAILABLE, Status.AWAY, Status.BUSY)


@given(any_text, st.integers(0, 400))
@example("ab cd", 3)  # the cut just after a space
def test_clean_leaves_no_control_or_format_character_and_is_idempotent(
    text: str, limit: int
) -> None:
    cleaned = clean(text, limit)
    assert is_clean(cleaned, limit)
    assert clean(cleaned, limit) == cleaned


# ------------------------------------------------------------------ our record


def ours(nick: str = "ann", status: str = "avail", message: str = "") -> dict[str, str]:
    return presence_txt(nick=nick, status=status, message=message, port=5298, version="0.9.0")


def test_our_record_says_what_libpurple_reads() -> None:
    assert ours("Ann", "avail", "hello") == {
        "txtvers": "1",
        "1st": "Ann",  # libpurple shows "1st last" and ignores nick
        "last": "",
        "nick": "Ann",
        "status": "avail",
        "msg": "hello",
        "port.p2pj": "5298",
        "node": "p2pchat",
        "ver": "0.9.0",
    }


@pytest.mark.parametrize(
    ("status", "announced"),
    [("avail", "avail"), ("away", "dnd"), ("dnd", "dnd"), ("offline", "avail"), ("xa", "avail")],
)
def test_away_and_dnd_are_announced_as_dnd(status: str, announced: str) -> None:
    # libpurple reads only dnd as not available (and announces its own away so).
    assert ours(status=status)["status"] == announced


def test_our_nick_and_status_text_are_cleaned() -> None:
    txt = ours("\x1b[1mAnn\u202e\n B", message="\x07gone\tfishing\x00")
    assert (txt["nick"], txt["1st"], txt["msg"]) == ("[1mAnn B", "[1mAnn B", "gone fishing")


@pytest.mark.parametrize(
    ("nick", "message"),
    [
        ("😀" * 200, "你" * 400),  # 4 and 3 bytes a character
        ("ü" * 200, "ü" * 400),
        ("a" * 1000, "a" * 1000),
        ("x" * 127 + "😀", "a" * 249 + "ü"),  # a character across the cut
        ("ü" * 124 + "x yy", "a" * 249 + " b"),  # the cut just after a space
    ],
    ids=["4-and-3-byte", "2-byte", "ascii", "across-the-cut", "space-at-the-cut"],
)
def test_each_field_of_ours_fits_one_txt_string(nick: str, message: str) -> None:
    txt = ours(nick, "away", message)
    for key, value in txt.items():
        assert len(f"{key}={value}".encode()) <= TXT_STRING_BYTES, (key, len(value.encode()))
    # Cut at a character, never inside one; what is kept begins the cleaned text.
    assert clean(nick, MAX_FIELD_CHARS).startswith(txt["nick"]) and txt["nick"]
    assert clean(message, MAX_MESSAGE_CHARS).startswith(txt["msg"]) and txt["msg"]
    assert txt["1st"] == txt["nick"]
    assert (txt["nick"], txt["msg"]) == (txt["nick"].strip(), txt["msg"].strip())


# Long texts of wide characters and spaces: where the byte bounds bite.
wide_text = st.text(st.sampled_from("a ü你😀\u202e\n"), min_size=50, max_size=400)


@given(
    nick=any_text | wide_text,
    message=any_text | wide_text,
    status=st.sampled_from(["avail", "away", "dnd", "x"]),
)
def test_our_record_always_fits_and_reads_back(nick: str, message: str, status: str) -> None:
    txt = ours(nick, status, message)
    encoded = {key.encode(): value.encode("utf-8") for key, value in txt.items()}
    for key, value in encoded.items():
        assert len(key) + 1 + len(value) <= TXT_STRING_BYTES
    back = parse_presence("ann@annhost", encoded, ADDRESSES, 5298)
    assert (back.nick, back.first, back.message) == (txt["nick"], txt["nick"], txt["msg"])
    assert back.status is (Status.AVAILABLE if status in ("avail", "x") else Status.BUSY)
    assert back.client == "p2pchat 0.9.0"
