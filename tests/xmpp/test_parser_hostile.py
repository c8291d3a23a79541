"""The stream parser against a hostile peer: entity tricks, DTDs, and every bound of
p2pchat/xmpp/limits.py pushed one past its edge and far beyond."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from p2pchat.xmpp.element import Element, escape_text
from p2pchat.xmpp.events import (
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    XmlEvent,
    XmlStreamError,
)
from p2pchat.xmpp.limits import (
    CHECK_INTERVAL,
    MAX_ATTRIBUTE_CHARS,
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_NAME_CHARS,
    MAX_STANZA_ATTRIBUTES,
    MAX_STANZA_BYTES,
    MAX_STANZA_ELEMENTS,
    MAX_STANZA_NAME_CHARS,
    MAX_STANZA_TEXT,
    MAX_STREAM_NAMES,
    MAX_TOKEN_BYTES,
)
from p2pchat.xmpp.parser import XmlStreamParser
from p2pchat.xmpp.stanzas import ChatState, chat_message, read_message
from tests.xmpp.streams import HEADER, bytewise, events_of, outcome, refusal, stanzas_of
from tests.xmpp.tracing import traced

MB = 1024 * 1024
KIB = 1024
STREAM_START = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)


def billion_laughs() -> bytes:
    entities = [b'<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(b'<!ENTITY lol%d "%s">' % (level, b"&lol%d;" % (level - 1) * 10))
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE stream:stream [\n'
        + b"\n".join(entities)
        + b"\n]>\n"
        + STREAM_START
        + b"<message><body>&lol9;</body></message>"
    )


def test_billion_laughs_is_refused_at_its_doctype() -> None:
    error = refusal(billion_laughs(), "restricted-xml", "a DOCTYPE is not allowed")
    assert error.events == ()


def test_an_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0")
    for target in (b"file:///etc/passwd", secret.as_uri().encode()):
        stream = (
            b'<?xml version="1.0"?><!DOCTYPE stream:stream [<!ENTITY xxe SYSTEM "%s">]>' % target
            + STREAM_START
            + b"<message><body>&xxe;</body></message>"
        )
        refusal(stream, "restricted-xml", "a DOCTYPE is not allowed")


@pytest.mark.parametrize(
    "doctype",
    [
        b"<!DOCTYPE stream:stream>",
        b'<!DOCTYPE stream:stream SYSTEM "http://198.18.0.1/evil.dtd">',
        b'<!DOCTYPE stream:stream PUBLIC "-//EVIL//DTD//EN" "file:///etc/passwd">',
        b"<!DOCTYPE stream:stream []>",
        b'<!DOCTYPE stream:stream [<!ENTITY greeting "hello">]>',
        b'<!DOCTYPE stream:stream [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>',
        b'<!DOCTYPE stream:stream [<!ATTLIST message type CDATA "chat">]>',
        b"<!DOCTYPE stream:stream [<!ELEMENT message ANY>]>",
    ],
)
def test_a_doctype_of_any_kind_is_refused(doctype: bytes) -> None:
    for prolog in (b"", b"<?xml version='1.0'?>", b"<?xml version='1.0'?>\n"):
        refusal(prolog + doctype + STREAM_START, "restricted-xml", "a DOCTYPE is not allowed")


def test_a_doctype_inside_the_stream_is_not_even_xml() -> None:
    refusal(HEADER + billion_laughs(), "not-well-formed", "not well-formed")


@pytest.mark.parametrize(
    ("stream", "match"),
    [
        (b"<?xml-stylesheet href='x.xsl'?>" + STREAM_START, "a processing instruction"),
        (HEADER + b"<message><?php evil() ?></message>", "a processing instruction"),
        (b"<!-- hello -->" + STREAM_START, "a comment"),
        (HEADER + b"<!-- keepalive -->", "a comment"),
        (HEADER + b"<message><!-- hidden --></message>", "a comment"),
    ],
)
def test_processing_instructions_and_comments_are_refused(stream: bytes, match: str) -> None:
    refusal(stream, "restricted-xml", match)


def test_only_the_predefined_entities_and_character_references_exist() -> None:
    [message] = stanzas_of(b"<message>&lt;&gt;&amp;&apos;&quot;&#65;&#x1F389;</message>")
    assert message.text == "<>&'\"A🎉"
    refusal(HEADER + b"<message>&nbsp;</message>", "not-well-formed", "undefined entity")


# An empty element of 128 bytes, spaces in its tag: 64 KiB of them are 512 elements
# (within MAX_STANZA_ELEMENTS) and hold no text, so only the byte bound stops them.
PADDED = b"<a" + b" " * 124 + b"/>"


def refused_within(data: bytes, chunk: int) -> tuple[XmlStreamError, int]:
    """The error feeding ``data`` in pieces of ``chunk`` bytes, and how many bytes had
    been fed when it came."""
    parser = XmlStreamParser()
    fed = 0
    with pytest.raises(XmlStreamError) as caught:
        for start in range(0, len(data), chunk):
            fed += chunk
            parser.feed(data[start : start + chunk])
    return caught.value, fed


@pytest.mark.parametrize(
    ("stanza", "match"),
    [
        (b"<message><body>" + b"a" * (10 * MB), f"over {MAX_STANZA_TEXT} characters of text"),
        (b"<message>" + b"<a/>" * (10 * MB // 4), f"over {MAX_STANZA_ELEMENTS} elements"),
        (b"<message>" + PADDED * (10 * MB // 128), f"a stanza is over {MAX_STANZA_BYTES} bytes"),
        (b"<message to='" + b"a" * (10 * MB), f"over {MAX_TOKEN_BYTES} bytes"),
        (b"<!--" + b"a" * (10 * MB), f"over {MAX_TOKEN_BYTES} bytes"),
    ],
    ids=["text", "elements", "padded-elements", "attribute", "comment"],
)
def test_a_10_mb_stanza_is_refused_long_before_it_is_buffered(stanza: bytes, match: str) -> None:
    data = HEADER + stanza
    error, fed = refused_within(data, 64 * 1024)
    assert error.code == "policy-violation"
    assert match in error.reason
    assert fed < MB
    whole = XmlStreamParser()  # all 10 MB in one call: expat still sees only the start
    with pytest.raises(XmlStreamError, match=match):
        whole.feed(data)
    assert whole.bytes_taken <= len(HEADER) + MAX_STANZA_BYTES + CHECK_INTERVAL


def test_a_tag_trickled_byte_by_byte_is_refused_before_it_ends() -> None:
    data = HEADER + b"<message to='" + b"a" * (3 * MAX_TOKEN_BYTES) + b"'/>"
    parser = XmlStreamParser()
    with pytest.raises(XmlStreamError, match="single tag or other markup"):
        for index in range(len(data)):
            parser.feed(data[index : index + 1])
    assert parser.bytes_taken <= len(HEADER) + MAX_TOKEN_BYTES + CHECK_INTERVAL


@pytest.mark.parametrize("excess", [-1, 0, 1, 2, 100, CHECK_INTERVAL - 1, CHECK_INTERVAL])
def test_near_the_token_bound_the_outcome_does_not_depend_on_the_split(excess: int) -> None:
    start = HEADER + b"<presence/>" * 300 + b"<message to='"  # not aligned to the checks
    data = start + b"a" * (MAX_TOKEN_BYTES + excess) + b"'/>"
    whole = outcome([data])
    for size in (1, 3, 1000, CHECK_INTERVAL, 5000):
        assert outcome(data[i : i + size] for i in range(0, len(data), size)) == whole


def test_a_megabyte_of_keepalive_whitespace_is_fine() -> None:
    parser = XmlStreamParser()
    parser.feed(HEADER)
    for _ in range(16):
        assert parser.feed(b" \n" * 32 * 1024) == []
    [event] = parser.feed(b"<presence/>")
    assert isinstance(event, StanzaReceived)


def stanza_of_size(size: int) -> bytes:
    """A stanza of ``size`` bytes from its start tag's "<" to its end tag's "<", of
    empty elements only (no text), padded so they stay within MAX_STANZA_ELEMENTS."""
    filler = size - len(b"<message>") - 256  # the last element takes 256 to 383 bytes
    count, spaces = divmod(filler, len(PADDED))
    return b"<message>" + PADDED * count + b"<a" + b" " * (spaces + 252) + b"/></message>"


def test_a_stanza_may_have_exactly_the_byte_bound() -> None:
    assert len(stanzas_of(stanza_of_size(MAX_STANZA_BYTES))) == 1
    for chunk in (1000, 4096, 7):
        stanza = stanza_of_size(MAX_STANZA_BYTES + 1)
        data = HEADER + stanza
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        assert outcome(pieces)[1] == (
            "policy-violation",
            f"a stanza is over {MAX_STANZA_BYTES} bytes",
        )


def test_text_is_bounded_per_stanza_over_all_its_elements() -> None:
    half = b"a" * (MAX_STANZA_TEXT // 2)
    assert len(stanzas_of(b"<message><body>%s</body><x>%s</x></message>" % (half, half))) == 1
    refusal(
        HEADER + b"<message><body>%s</body><x>%s!</x></message>" % (half, half),
        "policy-violation",
        f"over {MAX_STANZA_TEXT} characters of text",
    )
    # characters, not bytes: each "é" is two bytes, the whole far over MAX_STANZA_TEXT
    wide = "é".encode() * (MAX_STANZA_TEXT - 100)
    assert len(stanzas_of(b"<message>%s</message>" % wide)) == 1


def nested(depth: int) -> bytes:
    return b"<message>" + b"<a>" * (depth - 1) + b"</a>" * (depth - 1) + b"</message>"


def test_nesting_is_bounded() -> None:
    assert len(stanzas_of(nested(MAX_DEPTH))) == 1
    refusal(HEADER + nested(MAX_DEPTH + 1), "policy-violation", f"over {MAX_DEPTH} deep")


def test_a_depth_bomb_is_refused_at_the_first_level_too_deep() -> None:
    parser = XmlStreamParser()
    with pytest.raises(XmlStreamError, match="nested over"):
        parser.feed(HEADER + b"<message>" + b"<a>" * 1_000_000)
    assert parser.bytes_taken <= len(HEADER) + CHECK_INTERVAL


def of_elements(count: int) -> bytes:
    """A stanza of ``count`` elements, itself included: a message of empty ones."""
    return b"<message>" + b"<a/>" * (count - 1) + b"</message>"


def mirrored(count: int) -> bytes:
    """A stanza of ``count`` elements at several depths: a message of line breaks, as
    libpurple and we write one (the XHTML-IM mirror of a text of many lines)."""
    return (
        b"<message><html xmlns='http://jabber.org/protocol/xhtml-im'>"
        b"<body xmlns='http://www.w3.org/1999/xhtml'><font>"
        + b"<br/>" * (count - 4)
        + b"</font></body></html></message>"
    )


@pytest.mark.parametrize("stanza", [of_elements, mirrored])
def test_elements_per_stanza_are_bounded_however_the_bytes_are_split(
    stanza: Callable[[int], bytes],
) -> None:
    [message] = stanzas_of(stanza(MAX_STANZA_ELEMENTS))  # fed whole and byte by byte
    assert sum(1 for _ in message.iter()) == MAX_STANZA_ELEMENTS
    data = HEADER + stanza(MAX_STANZA_ELEMENTS + 1)
    refused = ("policy-violation", f"a stanza has over {MAX_STANZA_ELEMENTS} elements")
    for size in (len(data), 1, 7, CHECK_INTERVAL):
        events, error = outcome(data[i : i + size] for i in range(0, len(data), size))
        assert error == refused
        assert [type(event) for event in events] == [StreamOpened]


def peak_while_feeding(
    parser: XmlStreamParser, pieces: Iterable[bytes]
) -> tuple[int, list[XmlEvent]]:
    """The most memory Python held at once, over what it held before, while ``parser``
    took ``pieces`` (up to its refusal, if it refuses), and the events it returned
    (which count in that memory too)."""
    with traced() as memory:
        events: list[XmlEvent] = []
        with contextlib.suppress(XmlStreamError):
            for piece in pieces:
                events += parser.feed(piece)
        return memory.peak(), events


# 64 KiB of the cheapest element there is, within MAX_STANZA_BYTES: 16,000 elements.
EMPTY_ELEMENTS = of_elements((MAX_STANZA_BYTES - len(b"<message>")) // len(b"<a/>") + 1)
# What the parser may hold of a stanza it refuses for its elements: each element held
# costs about 140 bytes (an OpenElement, its lists, the closed Element, its name), 256
# allowed; and 128 KiB for expat's buffers and the pieces handed to it.
ELEMENTS_HELD = MAX_STANZA_ELEMENTS * 256 + 128 * KIB


def test_64_kib_of_empty_elements_is_refused_holding_little(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ELEMENTS_HELD <= 512 * KIB
    for feeding in ([EMPTY_ELEMENTS], bytewise(EMPTY_ELEMENTS)):
        parser = XmlStreamParser()
        parser.feed(HEADER)
        peak, events = peak_while_feeding(parser, feeding)
        assert peak < ELEMENTS_HELD
        assert events == []
        with pytest.raises(XmlStreamError, match=f"over {MAX_STANZA_ELEMENTS} elements"):
            parser.feed(b"")
        # refused at the first element too many, its bytes hardly past the bound's
        assert parser.bytes_taken <= len(HEADER) + 4 * MAX_STANZA_ELEMENTS + CHECK_INTERVAL
    # Without the bound the same stanza is taken, all of it held at once: over 1 MiB.
    # (Its names, 15 characters an element, would also pass MAX_STANZA_NAME_CHARS.)
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STANZA_ELEMENTS", len(EMPTY_ELEMENTS))
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STANZA_NAME_CHARS", 100 * MB)
    parser = XmlStreamParser()
    parser.feed(HEADER)
    peak, events = peak_while_feeding(parser, [EMPTY_ELEMENTS])
    assert [type(event) for event in events] == [StanzaReceived]
    assert peak > max(MB, 2 * ELEMENTS_HELD)


def test_the_element_count_starts_again_with_each_stanza() -> None:
    full = of_elements(MAX_STANZA_ELEMENTS)
    assert len(stanzas_of(full + b" " + full + full)) == 3  # fed whole and byte by byte
    events, error = outcome(bytewise(HEADER + full + full + of_elements(MAX_STANZA_ELEMENTS + 1)))
    assert [type(event) for event in events] == [StreamOpened, StanzaReceived, StanzaReceived]
    assert error == ("policy-violation", f"a stanza has over {MAX_STANZA_ELEMENTS} elements")


def with_attributes(count: int, declarations: int = 0) -> bytes:
    attributes = b"".join(b" a%d='%d'" % (i, i) for i in range(count))
    namespaces = b"".join(b" xmlns:p%d='urn:%d'" % (i, i) for i in range(declarations))
    return b"<message" + attributes + namespaces + b"/>"


def test_attributes_per_element_are_bounded_namespace_declarations_included() -> None:
    assert len(stanzas_of(with_attributes(MAX_ATTRIBUTES))) == 1
    assert len(stanzas_of(with_attributes(MAX_ATTRIBUTES - 2, declarations=2))) == 1
    match = f"<message> has over {MAX_ATTRIBUTES} attributes"
    refusal(HEADER + with_attributes(MAX_ATTRIBUTES + 1), "policy-violation", match)
    refusal(HEADER + with_attributes(MAX_ATTRIBUTES - 1, 2), "policy-violation", match)


def of_attributes(count: int) -> bytes:
    """A message of ``count`` attributes, 31 to each empty element but the last ("a0=''"
    to "a30=''", as short as they come); the message itself has none."""
    per_element = MAX_ATTRIBUTES - 1
    full, rest = divmod(count, per_element)
    sizes = [per_element] * full + ([rest] if rest else [])
    elements = (b"<a%s/>" % b"".join(b" a%d=''" % i for i in range(size)) for size in sizes)
    return b"<message>" + b"".join(elements) + b"</message>"


def test_attributes_per_stanza_are_bounded_however_the_bytes_are_split() -> None:
    [message] = stanzas_of(of_attributes(MAX_STANZA_ATTRIBUTES))  # whole and byte by byte
    assert sum(len(element.attributes) for element in message.iter()) == MAX_STANZA_ATTRIBUTES
    data = HEADER + of_attributes(MAX_STANZA_ATTRIBUTES + 1)
    refused = ("policy-violation", f"a stanza has over {MAX_STANZA_ATTRIBUTES} attributes")
    for size in (len(data), 1, 7, CHECK_INTERVAL):
        events, error = outcome(data[i : i + size] for i in range(0, len(data), size))
        assert error == refused
        assert [type(event) for event in events] == [StreamOpened]
    # Each stanza has its own count.
    full = of_attributes(MAX_STANZA_ATTRIBUTES)
    assert len(stanzas_of(full + full + full)) == 3


# 64 KiB of the shortest attributes there are, within every other bound: 9,600
# attributes in 310 elements, 30,000 characters of names.
_ELEMENT = len(of_attributes(MAX_ATTRIBUTES - 1)) - len(of_attributes(0))
SHORT_ATTRIBUTES = of_attributes(
    (MAX_STANZA_BYTES - len(of_attributes(0))) // _ELEMENT * (MAX_ATTRIBUTES - 1)
)
# What the parser may hold of a stanza it refuses for its attributes: each attribute
# held costs about 120 bytes (its pair, its name, its share of expat's list), 192
# allowed; and 64 KiB for the few elements that carry them, expat's buffers and the
# pieces handed to it.
ATTRIBUTES_HELD = MAX_STANZA_ATTRIBUTES * 192 + 64 * KIB


def test_64_kib_of_short_attributes_is_refused_holding_little(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert len(SHORT_ATTRIBUTES) <= MAX_STANZA_BYTES
    assert SHORT_ATTRIBUTES.count(b"<") <= MAX_STANZA_ELEMENTS
    assert SHORT_ATTRIBUTES.count(b"=") > 9 * MAX_STANZA_ATTRIBUTES
    for feeding in ([SHORT_ATTRIBUTES], bytewise(SHORT_ATTRIBUTES)):
        parser = XmlStreamParser()
        parser.feed(HEADER)
        peak, events = peak_while_feeding(parser, feeding)
        assert peak < ATTRIBUTES_HELD
        assert events == []
        with pytest.raises(XmlStreamError, match=f"over {MAX_STANZA_ATTRIBUTES} attributes"):
            parser.feed(b"")
        # refused at the first attribute too many, its bytes hardly past the bound's
        limit = len(of_attributes(MAX_STANZA_ATTRIBUTES + MAX_ATTRIBUTES))
        assert parser.bytes_taken <= len(HEADER) + limit + CHECK_INTERVAL
    # Without the bound the same stanza is taken, all of it held at once: over 1 MiB.
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STANZA_ATTRIBUTES", 100 * MB)
    parser = XmlStreamParser()
    parser.feed(HEADER)
    peak, events = peak_while_feeding(parser, [SHORT_ATTRIBUTES])
    [event] = events
    assert isinstance(event, StanzaReceived)
    assert name_chars(event.element) < MAX_STANZA_NAME_CHARS // 2
    assert peak > 3 * ATTRIBUTES_HELD


def test_an_attribute_bomb_is_refused_without_reading_it_all() -> None:
    parser = XmlStreamParser()
    with pytest.raises(XmlStreamError) as caught:
        parser.feed(HEADER + with_attributes(200_000))
    assert caught.value.code == "policy-violation"
    assert parser.bytes_taken <= len(HEADER) + MAX_TOKEN_BYTES + CHECK_INTERVAL


def test_attribute_values_are_bounded_in_characters() -> None:
    longest = "é" * MAX_ATTRIBUTE_CHARS
    [message] = stanzas_of(b"<message to='%s'/>" % longest.encode())
    assert message.get("to") == longest
    refusal(
        HEADER + b"<message to='%s'/>" % (b"a" * (MAX_ATTRIBUTE_CHARS + 1)),
        "policy-violation",
        f"attribute value is over {MAX_ATTRIBUTE_CHARS} characters",
    )


def test_names_and_namespaces_are_bounded() -> None:
    long_name = b"n" * (MAX_NAME_CHARS + 1)
    match = f"over {MAX_NAME_CHARS} characters"
    refusal(HEADER + b"<%s/>" % long_name, "policy-violation", match)
    refusal(HEADER + b"<message %s='1'/>" % long_name, "policy-violation", match)
    refusal(HEADER + b"<message xmlns='urn:%s'/>" % long_name, "policy-violation", match)


def name_chars(stanza: Element) -> int:
    """What the names of ``stanza`` spend of MAX_STANZA_NAME_CHARS: each element's and
    each attribute's, as expat writes it ("namespace local", or "local" alone)."""
    total = 0
    for element in stanza.iter():
        namespace = len(element.namespace) + 1 if element.namespace else 0
        total += namespace + len(element.name)
        # "{namespace}local" is one character longer than "namespace local"
        total += sum(len(key) - key.startswith("{") for key, _ in element.attributes)
    return total


# A namespace that makes every name in it over 1000 characters, in 1000 characters of
# ASCII or of 4-byte UTF-8 (which Python holds in 4 bytes a character too).
LONG_NAMESPACES = ["urn:" + "x" * 996, "\U0001d569" * 1000]


def long_names(namespace: str, elements: int) -> bytes:
    """A message declaring ``namespace`` once, as p, then ``elements`` empty elements in
    it, each with as many attributes in it as allowed: 32 names of over 1000 characters
    for each 280 bytes."""
    attributes = b"".join(b" p:b%d=''" % i for i in range(MAX_ATTRIBUTES - 1))
    element = b"<p:a" + attributes + b"/>"
    return b"<message xmlns:p='%s'>" % namespace.encode() + element * elements + b"</message>"


def within_other_bounds(namespace: str) -> bytes:
    """As many elements of ``long_names`` as the byte bound lets through."""
    element = len(long_names("", 1)) - len(long_names("", 0))
    stanza = long_names(namespace, (MAX_STANZA_BYTES - len(long_names(namespace, 0))) // element)
    elements = stanza.count(b"<p:a")
    assert len(stanza) <= MAX_STANZA_BYTES and elements + 1 <= MAX_STANZA_ELEMENTS
    return stanza


# What the parser may hold of a stanza it refuses for its names: the names kept, 4 bytes
# a character at worst; the names of the start tag being read, which expat and then
# pyexpat write out in full before the parser can count them; and 256 KiB for the
# objects that hold them, expat's buffers and the pieces handed to it.
NAMES_HELD = 4 * (MAX_STANZA_NAME_CHARS + 2 * MAX_ATTRIBUTES * MAX_NAME_CHARS) + 256 * KIB


@pytest.mark.parametrize("namespace", LONG_NAMESPACES, ids=["ascii", "astral"])
def test_names_in_a_long_namespace_are_refused_holding_little(
    namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stanza = within_other_bounds(namespace)
    match = f"a stanza's names are over {MAX_STANZA_NAME_CHARS} characters"
    for feeding in ([stanza], bytewise(stanza)):
        parser = XmlStreamParser()
        parser.feed(HEADER)
        peak, events = peak_while_feeding(parser, feeding)
        assert peak < NAMES_HELD
        assert events == []
        with pytest.raises(XmlStreamError, match=match) as caught:
            parser.feed(b"")
        assert caught.value.code == "policy-violation"
        # refused at the element that passes the bound: the third
        assert parser.bytes_taken <= len(HEADER) + len(long_names(namespace, 3)) + CHECK_INTERVAL
    # Without the bound the same stanza is taken, all of it held at once: MiBs of names.
    # (Its 7,000 attributes would pass MAX_STANZA_ATTRIBUTES too.)
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STANZA_NAME_CHARS", 100 * MB)
    monkeypatch.setattr("p2pchat.xmpp.parser.MAX_STANZA_ATTRIBUTES", 100 * MB)
    parser = XmlStreamParser()
    parser.feed(HEADER)
    peak, events = peak_while_feeding(parser, [stanza])
    assert [type(event) for event in events] == [StanzaReceived]
    assert peak > 4 * NAMES_HELD


# Stanzas of 60 distinct names, as many as MAX_STREAM_NAMES lets one stream have
# (besides the 10 of the header, <message> and the prefix p: test_parser_names.py).
DISTINCT_STANZAS = (MAX_STREAM_NAMES - 10) // 60


def retained_after_distinct_names(namespace: str) -> int:
    """The memory a stream keeps after DISTINCT_STANZAS stanzas of 60 names each in
    ``namespace``, no two alike, over what it held before them."""
    parser = XmlStreamParser()
    parser.feed(HEADER)
    with traced() as memory:
        for i in range(DISTINCT_STANZAS):
            elements = b"".join(b"<p:n%d_%d/>" % (i, j) for j in range(60))
            stanza = b"<message xmlns:p='%s'>%s</message>" % (namespace.encode(), elements)
            assert [type(event) for event in parser.feed(stanza)] == [StanzaReceived]
        return memory.now()


def test_a_stream_keeps_no_names_of_its_past_stanzas_but_expats_own() -> None:
    # Expat keeps each distinct name as written ("p:n1_2", some 70 bytes with its
    # entry), whatever its namespace, and the parser counts it (as many again; bounded
    # by MAX_STREAM_NAMES: test_parser_names.py); pyexpat's table would keep
    # "urn:xxx… n1_2" too, 1 KB a name.
    assert DISTINCT_STANZAS * 60 >= 480
    short = retained_after_distinct_names("urn:a")
    assert short < DISTINCT_STANZAS * 60 * 256
    assert retained_after_distinct_names(LONG_NAMESPACES[0]) < short + 64 * KIB


def named(chars: int) -> bytes:
    """A message whose names spend exactly ``chars`` characters (over 2000): elements of
    1002 in a long namespace, then one with an attribute name making up the rest."""
    message, element = len("jabber:client message"), len("jabber:client x")
    count, rest = divmod(chars - message - element - 1, 1002)
    return (
        b"<message xmlns:p='%s'>" % LONG_NAMESPACES[0].encode()
        + b"<p:a/>" * count
        + b"<x %s=''/>" % (b"n" * (rest + 1))
        + b"</message>"
    )


def test_the_name_bound_is_met_exactly_however_the_bytes_are_split() -> None:
    [message] = stanzas_of(named(MAX_STANZA_NAME_CHARS))  # fed whole and byte by byte
    assert name_chars(message) == MAX_STANZA_NAME_CHARS
    data = HEADER + named(MAX_STANZA_NAME_CHARS + 1)
    refused = ("policy-violation", f"a stanza's names are over {MAX_STANZA_NAME_CHARS} characters")
    for size in (len(data), 1, 7, CHECK_INTERVAL):
        events, error = outcome(data[i : i + size] for i in range(0, len(data), size))
        assert error == refused
        assert [type(event) for event in events] == [StreamOpened]


def test_the_name_count_starts_again_with_each_stanza() -> None:
    full = named(MAX_STANZA_NAME_CHARS)
    assert len(stanzas_of(full + b" " + full + full)) == 3  # fed whole and byte by byte
    data = HEADER + full + full + named(MAX_STANZA_NAME_CHARS + 1)
    events, error = outcome(bytewise(data))
    assert [type(event) for event in events] == [StreamOpened, StanzaReceived, StanzaReceived]
    assert error == (
        "policy-violation",
        f"a stanza's names are over {MAX_STANZA_NAME_CHARS} characters",
    )


def lines_for(elements: int, others: int) -> str:
    """A text of 16,000 characters or more, in as many short lines as make a message of
    ``elements`` when mirrored with one <br/> per line break besides ``others``."""
    return "\n".join(f"line {index:04d} is ok" for index in range(elements - others + 1))


def as_libpurple_writes(text: str) -> bytes:
    """A message as libpurple writes one (see test_libpurple.py), ``text`` mirrored."""
    xhtml = escape_text(text).replace("\n", "<br/>")
    return (
        b"<message to='bob@bobhost' from='ann@annhost' type='chat'>"
        b"<body>%s</body><html xmlns='http://www.w3.org/1999/xhtml'><body><font>%s"
        b"</font></body></html><x xmlns='jabber:x:event'><composing/></x></message>"
        % (escape_text(text).encode(), xhtml.encode())
    )


def as_we_write(text: str) -> bytes:
    return chat_message("ann@annhost", "bob@bobhost", text, chat_state=ChatState.ACTIVE)


@pytest.mark.parametrize(
    ("write", "others"), [(as_libpurple_writes, 7), (as_we_write, 6)], ids=["libpurple", "ours"]
)
def test_a_long_message_of_many_lines_spends_under_half_the_name_bound(
    write: Callable[[str], bytes], others: int
) -> None:
    text = lines_for(MAX_STANZA_ELEMENTS, others)
    assert len(text) >= 16_000
    [message] = stanzas_of(write(text))  # fed whole and byte by byte
    assert sum(1 for _ in message.iter()) == MAX_STANZA_ELEMENTS
    received = read_message(message)
    assert received is not None and received.body == text
    assert name_chars(message) < MAX_STANZA_NAME_CHARS // 2


@pytest.mark.parametrize(
    "bad",
    [
        b"\x80",  # a continuation byte alone
        b"\xc0\xaf",  # "/" spelled in two bytes (overlong)
        b"\xe0\x80\xaf",  # the same in three
        b"\xed\xa0\x80",  # a UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
        b"\xf8\x88\x80\x80\x80",  # a five-byte form
        b"\xfe",
        b"\xff",
        b"\xe2\x82x",  # a sequence cut short
    ],
)
def test_invalid_utf8_is_refused_wherever_it_is(bad: bytes) -> None:
    for before, after in [
        (b"", STREAM_START),
        (HEADER + b"<message><body>ok ", b"</body></message>"),
        (HEADER + b"<message to='", b"'/>"),
        (HEADER + b"<mess", b"age/>"),
    ]:
        refusal(before + bad + after, "not-well-formed", f"invalid UTF-8 at byte {len(before)}")


def test_invalid_utf8_split_across_feeds_is_found_where_it_starts() -> None:
    assert outcome([HEADER + b"<message>\xe2", b"\x82", b"(</message>"])[1] == (
        "not-well-formed",
        f"invalid UTF-8 at byte {len(HEADER) + 9}",
    )


def test_a_utf16_stream_is_refused() -> None:
    refusal("<stream:stream>".encode("utf-16"), "not-well-formed", "invalid UTF-8 at byte 0")
    refusal(b"<?xml version='1.0' encoding='UTF-16'?>", "unsupported-encoding", "UTF-8 only")


def test_a_stream_may_end_in_its_own_start_tag_and_nothing_may_follow() -> None:
    # Expat reports the end of "<stream:stream …/>" after its ">", not at its "<".
    for empty in (HEADER[:-1] + b"/>", HEADER[:-1] + b" a='>/'/>"):
        assert [type(event) for event in events_of(empty)] == [StreamOpened, StreamClosed]
        for after in (b" ", b"<", b"</x>", b"</stream:stream>"):
            refusal(empty + after, "not-well-formed", "bytes after the end of the stream")


def test_what_came_before_a_refusal_is_kept() -> None:
    error = refusal(HEADER + b"<presence/>" + nested(MAX_DEPTH + 1), "policy-violation", "nested")
    assert [type(event) for event in error.events] == [StreamOpened, StanzaReceived]
