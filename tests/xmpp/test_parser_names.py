"""The names a stream makes expat keep for its whole life: MAX_STREAM_NAMES and
MAX_STREAM_NAME_CHARS met exactly, and a flood of distinct names across stanzas."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from p2pchat.xmpp.events import StanzaReceived, StreamOpened, XmlStreamError
from p2pchat.xmpp.limits import (
    CHECK_INTERVAL,
    MAX_NAME_CHARS,
    MAX_STREAM_NAME_CHARS,
    MAX_STREAM_NAMES,
)
from p2pchat.xmpp.parser import XmlStreamParser
from p2pchat.xmpp.stanzas import ChatState, chat_message, chat_state_notice
from tests.xmpp.streams import END, HEADER, LIBPURPLE_HEADER, outcome, stanzas_of
from tests.xmpp.test_libpurple import ICHAT, PIDGIN
from tests.xmpp.tracing import traced

MB = 1024 * 1024
KIB = 1024

_START_TAG = re.compile(rb"<([^\s/>?!][^\s/>]*)([^>]*)>")
_ATTRIBUTE = re.compile(rb"([^\s=]+)\s*=")


def names_kept(data: bytes) -> tuple[int, int]:
    """The entries the start tags of ``data`` add to expat's three tables, and their
    characters: element names and attribute names (namespace declarations' included)
    as written, and prefixes; "xml" is a prefix from the start. Read with regular
    expressions, apart from the parser, for the simple tags of these tests."""
    elements: set[str] = set()
    attributes: set[str] = set()
    prefixes = {"xml"}
    for tag in _START_TAG.finditer(data):
        element = tag[1].decode()
        elements.add(element)
        prefixes.update(element.split(":")[:-1])
        for match in _ATTRIBUTE.finditer(tag[2]):
            attribute = match[1].decode()
            attributes.add(attribute)
            if attribute.startswith("xmlns:"):
                prefixes.add(attribute.removeprefix("xmlns:"))
            else:
                prefixes.update(attribute.split(":")[:-1])
    kept = [*elements, *attributes, *prefixes]
    return len(kept) - 1, sum(map(len, kept)) - len("xml")


def test_our_header_and_a_message_keep_names_as_counted_here() -> None:
    # stream:stream; xmlns, xmlns:stream, from, to, version; the prefix stream
    assert names_kept(HEADER) == (7, 49)
    # message; xmlns:p, p:b, c; the prefix p; p:a
    assert names_kept(b"<message xmlns:p='urn:p' p:b='1' c='2'><p:a/></message>") == (6, 22)


def stanzas(names: list[bytes]) -> bytes:
    """Messages of an empty element for each of ``names``, 60 to a message."""
    return b"".join(
        b"<message>"
        + b"".join(b"<%s/>" % name for name in names[start : start + 60])
        + b"</message>"
        for start in range(0, len(names), 60)
    )


# Stanzas that name things in every way expat keeps: element and attribute names, with
# and without a prefix, namespace declarations and prefixes (5 names a stanza).
MIXED = b"".join(
    b"<message xmlns:q%d='urn:q' q%d:a='' b%d=''><q%d:c/></message>" % ((i,) * 4) for i in range(40)
)


def up_to(count: int) -> bytes:
    """A stream that makes expat keep exactly ``count`` names: MIXED, then messages of
    distinct element names."""
    start = HEADER + MIXED + b"<message/>"
    fill = [b"n%d" % i for i in range(count - names_kept(start)[0])]
    stream = start + stanzas(fill)
    assert names_kept(stream)[0] == count
    return stream


def splits(data: bytes) -> list[list[bytes]]:
    return [[data[i : i + size] for i in range(0, len(data), size)] for size in (1, 7, 4096)]


def count_stanzas(data: bytes) -> int:
    return data.count(b"</message>") + data.count(b"<message/>")


def test_the_names_of_a_stream_are_bounded_however_the_bytes_are_split() -> None:
    most = up_to(MAX_STREAM_NAMES)
    assert len(most) > CHECK_INTERVAL
    accepted = stanzas_of(most[len(HEADER) :])  # fed whole and byte by byte
    assert len(accepted) == count_stanzas(most)
    # Names met again cost nothing more: the same stanzas again and again.
    again = most + MIXED * 3 + stanzas([b"n%d" % i for i in range(100)]) * 3
    assert outcome([again])[1] is None
    # A name more, the stanza that brings it is refused: with names met before it, or
    # alone, after a stanza that met the bound exactly.
    refused = ("policy-violation", f"the stream has used over {MAX_STREAM_NAMES} distinct names")
    for over in (up_to(MAX_STREAM_NAMES + 1), most + b"<message><n999999/></message>"):
        whole = outcome([over])
        assert whole[1] == refused
        kinds = [type(event) for event in whole[0]]
        assert kinds == [StreamOpened] + [StanzaReceived] * (count_stanzas(over) - 1)
        for pieces in splits(over):
            assert outcome(pieces) == whole


def long_names(chars: int) -> list[bytes]:
    """Distinct element names of ``chars`` characters in all, each up to 1000 long."""
    names: list[bytes] = []
    while chars:
        length = min(chars, 1000)
        prefix = f"n{len(names)}_"
        names.append((prefix + "x" * (length - len(prefix))).encode())
        chars -= length
    return names


@pytest.mark.parametrize("excess", [0, 1])
def test_the_characters_of_a_streams_names_are_bounded_however_the_bytes_are_split(
    excess: int,
) -> None:
    start = HEADER + b"<message/>"
    stream = start + stanzas(long_names(MAX_STREAM_NAME_CHARS - names_kept(start)[1] + excess))
    count, chars = names_kept(stream)
    assert chars == MAX_STREAM_NAME_CHARS + excess
    assert count < MAX_STREAM_NAMES
    whole = outcome([stream])
    if excess:
        reason = f"the stream's distinct names are over {MAX_STREAM_NAME_CHARS} characters"
        assert whole[1] == ("policy-violation", reason)
        assert [type(event) for event in whole[0]] == [StreamOpened, StanzaReceived]
    else:
        assert whole[1] is None
        assert len(stanzas_of(stream[len(HEADER) :])) == 2  # fed whole and byte by byte
    for pieces in splits(stream):
        assert outcome(pieces) == whole


def conversation() -> bytes:
    """A stream of every kind of message libpurple, iChat and we send, many times."""
    ours = b"".join(
        chat_message("ann@annhost", "bob@bobhost", f"line {i}\nnext & last", chat_state=state)
        + chat_state_notice("ann@annhost", "bob@bobhost", state)
        for i in range(40)
        for state in ChatState
    )
    theirs = PIDGIN[len(LIBPURPLE_HEADER) : -len(END)] + ICHAT[ICHAT.index(b"<message") :]
    presence = b"<presence><show>away</show><status>out</status></presence>"
    return HEADER + ours + (theirs + presence) * 100 + END


def test_a_long_conversation_keeps_a_few_dozen_names(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = conversation()
    count, chars = names_kept(stream)
    assert count < MAX_STREAM_NAMES // 8
    assert chars < MAX_STREAM_NAME_CHARS // 16
    events, error = outcome([stream])
    assert error is None
    assert len(events) == 2 + count_stanzas(stream) + stream.count(b"</presence>")
    # The parser counts just what is counted here: the stream meets both bounds exactly.
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STREAM_NAMES", count)
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STREAM_NAME_CHARS", chars)
    assert outcome([stream]) == (events, None)
    for bound, value in (("NAMES", count - 1), ("NAME_CHARS", chars - 1)):
        with monkeypatch.context() as patch:
            patch.setattr(f"p2pchat.xmpp.parser.MAX_STREAM_{bound}", value)
            error = outcome([stream])[1]
            assert error is not None and error[0] == "policy-violation"


def flood_stanza(name: Callable[[int], bytes], index: int) -> bytes:
    """A message of 60 empty elements that bring names no stanza before brought."""
    return b"<message>" + b"".join(name(index * 60 + i) for i in range(60)) + b"</message>"


FLOODS: dict[str, tuple[Callable[[int], bytes], str]] = {
    "elements": (lambda i: b"<n%d/>" % i, f"over {MAX_STREAM_NAMES} distinct names"),
    "attributes": (lambda i: b"<m a%d=''/>" % i, f"over {MAX_STREAM_NAMES} distinct names"),
    # a declaration, its prefix and an element in it: 3 names in some 25 bytes
    "prefixes": (
        lambda i: b"<p%d:x xmlns:p%d='urn:a'/>" % (i, i),
        f"over {MAX_STREAM_NAMES} distinct names",
    ),
    # names of 200 characters of 3 bytes: the characters' bound comes first
    "wide": (
        lambda i: b"<%s%d/>" % ("中".encode() * 200, i),
        f"over {MAX_STREAM_NAME_CHARS} characters",
    ),
}

# What a stream may keep of the names it has met, besides what it held before: each
# name at most 256 bytes besides its characters (measured: about 70 in expat's table,
# 60 to 120 in the parser's set that counts it), its characters at most 4 bytes each in
# both; and 32 KiB for the sets' own tables and what expat holds of the current tag.
NAMES_KEPT = MAX_STREAM_NAMES * 256 + 2 * 4 * MAX_STREAM_NAME_CHARS + 32 * KIB


def kept_after_flood(name: Callable[[int], bytes], size: int, chunk: int) -> tuple[int, str, int]:
    """What a stream keeps after ``size`` bytes of ``flood_stanza``s fed in ``chunk``s
    (or up to its refusal), over what it held after its header; the reason it was
    refused ("" if not); the bytes it took."""
    pieces: list[bytes] = []
    total = 0
    while total + len(stanza := flood_stanza(name, len(pieces))) <= size:
        pieces.append(stanza)
        total += len(stanza)
    data = b"".join(pieces)
    parser = XmlStreamParser()
    parser.feed(HEADER)
    with traced() as memory:
        reason = ""
        try:
            for start in range(0, len(data), chunk):
                parser.feed(data[start : start + chunk])
        except XmlStreamError as error:
            assert error.code == "policy-violation"
            reason = error.reason
            error.events = ()  # the stanzas it came with are the caller's to keep or not
        return memory.now(), reason, parser.bytes_taken


@pytest.mark.parametrize("kind", FLOODS)
def test_a_flood_of_distinct_names_is_refused_keeping_little(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert NAMES_KEPT <= 256 * KIB
    name, match = FLOODS[kind]
    for chunk in (MB, 1000, 7):
        kept, reason, taken = kept_after_flood(name, MB, chunk)
        assert match in reason
        assert kept < NAMES_KEPT
        # refused at the name that passes the bound, long before the megabyte's end
        assert taken < len(HEADER) + 64 * KIB
    # Without the bound the stream takes the megabyte and keeps every name: MiBs.
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STREAM_NAMES", 100 * MB)
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STREAM_NAME_CHARS", 100 * MB)
    kept, reason, taken = kept_after_flood(name, MB, 64 * KIB)
    assert reason == ""
    assert taken > len(HEADER) + MB - 64 * KIB
    assert kept > 4 * NAMES_KEPT


def test_a_prefix_is_bounded_like_a_name() -> None:
    prefix = b"p" * (MAX_NAME_CHARS + 1)
    match = f"a namespace prefix is over {MAX_NAME_CHARS} characters"
    for stanza in (b"<message xmlns:%s='urn:a'/>", b"<%s:a xmlns:%s='urn:a'/>"):
        data = HEADER + stanza.replace(b"%s", prefix)
        assert outcome([data])[1] == ("policy-violation", match)
    longest = b"p" * (MAX_NAME_CHARS - len("urn:a a "))
    [message] = stanzas_of(b"<%s:a xmlns:%s='urn:a'/>" % (longest, longest))
    assert (message.name, message.namespace) == ("a", "urn:a")
