"""The stream parser against a hostile peer: entity tricks, DTDs, and every bound of
p2pchat/xmpp/limits.py pushed one past its edge and far beyond."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pchat.xmpp.events import StanzaReceived, StreamOpened, XmlStreamError
from p2pchat.xmpp.limits import (
    CHECK_INTERVAL,
    MAX_ATTRIBUTE_CHARS,
    MAX_ATTRIBUTES,
    MAX_DEPTH,
    MAX_NAME_CHARS,
    MAX_STANZA_BYTES,
    MAX_STANZA_TEXT,
    MAX_TOKEN_BYTES,
)
from p2pchat.xmpp.parser import XmlStreamParser
from tests.xmpp.streams import HEADER, outcome, refusal, stanzas_of

MB = 1024 * 1024
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
        (b"<message>" + b"<a/>" * (10 * MB // 4), f"a stanza is over {MAX_STANZA_BYTES} bytes"),
        (b"<message to='" + b"a" * (10 * MB), f"over {MAX_TOKEN_BYTES} bytes"),
        (b"<!--" + b"a" * (10 * MB), f"over {MAX_TOKEN_BYTES} bytes"),
    ],
    ids=["text", "elements", "attribute", "comment"],
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
    empty elements only (no text)."""
    filler = size - len(b"<message>") - len(b"<a/>")
    count, spaces = divmod(filler, 4)
    return b"<message>" + b"<a/>" * count + b"<a" + b" " * spaces + b"/></message>"


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


def test_what_came_before_a_refusal_is_kept() -> None:
    error = refusal(HEADER + b"<presence/>" + nested(MAX_DEPTH + 1), "policy-violation", "nested")
    assert [type(event) for event in error.events] == [StreamOpened, StanzaReceived]
