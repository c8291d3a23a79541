"""The stream parser on well-behaved streams, and on streams that break the stream
rules (not the resource bounds: test_parser_hostile.py)."""

from __future__ import annotations

import pytest

from p2pchat.errors import RemoteProtocolError
from p2pchat.xmpp.element import XML_NS, Element
from p2pchat.xmpp.events import StanzaReceived, StreamClosed, StreamOpened, XmlStreamError
from p2pchat.xmpp.parser import XmlStreamParser
from tests.xmpp.streams import END, HEADER, LIBPURPLE_HEADER, events_of, refusal, stanzas_of

STREAM_ATTRIBUTES = (("from", "ann@annhost"), ("to", "bob@bobhost"))


def test_a_stream_without_version_as_libpurple_sends_it() -> None:
    assert events_of(LIBPURPLE_HEADER + END) == [
        StreamOpened("ann@annhost", "bob@bobhost", None, "jabber:client", STREAM_ATTRIBUTES),
        StreamClosed(),
    ]


def test_a_stream_header_as_we_send_it() -> None:
    [opened] = events_of(HEADER)
    assert opened == StreamOpened(
        "ann@annhost",
        "bob@bobhost",
        "1.0",
        "jabber:client",
        (*STREAM_ATTRIBUTES, ("version", "1.0")),
    )


def test_stream_header_attributes_are_all_kept() -> None:
    [opened] = events_of(
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' id='s1'>"
    )
    assert opened == StreamOpened(
        None, None, None, None, ((f"{{{XML_NS}}}lang", "en"), ("id", "s1"))
    )


def test_stanzas_come_as_immutable_trees_with_namespaces_and_mixed_content() -> None:
    [message] = stanzas_of(
        b"<message to='bob@bobhost' type='chat'><body>a &lt;b&gt; &amp; &apos;c&apos; "
        b"&quot;d&quot; &#65;&#x263A;</body><x xmlns='urn:x' xmlns:p='urn:p'>"
        b"one <p:b p:attr='v'>two</p:b> three<![CDATA[ <raw> ]]></x></message>"
    )
    assert message == Element(
        "message",
        "jabber:client",
        (("to", "bob@bobhost"), ("type", "chat")),
        (
            Element("body", "jabber:client", content=("a <b> & 'c' \"d\" A☺",)),
            Element(
                "x",
                "urn:x",
                content=(
                    "one ",
                    Element("b", "urn:p", (("{urn:p}attr", "v"),), ("two",)),
                    " three <raw> ",
                ),
            ),
        ),
    )


def test_each_stanza_comes_when_its_end_tag_does() -> None:
    parser = XmlStreamParser()
    assert isinstance(parser.feed(HEADER)[0], StreamOpened)
    assert parser.feed(b"<presence/><message><body>hi</body></mess") == [
        StanzaReceived(Element("presence", "jabber:client"))
    ]
    [event] = parser.feed(b"age>")
    assert isinstance(event, StanzaReceived) and event.element.name == "message"
    assert parser.feed(END) == [StreamClosed()]
    assert parser.feed(b"") == []


def test_whitespace_between_stanzas_is_a_keepalive() -> None:
    assert (
        stanzas_of(b" \n\t\r<presence/>  \n  <presence/>\n")
        == [Element("presence", "jabber:client")] * 2
    )


def test_whitespace_inside_a_stanza_is_kept() -> None:
    [message] = stanzas_of(b"<message>\n  <body> two  spaces </body>\n</message>")
    assert message.content[0] == "\n  "
    assert message.children[0].text == " two  spaces "


def test_an_unclosed_stream_is_no_error_it_just_has_no_end() -> None:
    events = events_of(LIBPURPLE_HEADER + b"<message><body>hi</body></message><message><bo")
    assert [type(event) for event in events] == [StreamOpened, StanzaReceived]


def test_a_utf8_byte_order_mark_is_allowed() -> None:
    assert len(events_of(b"\xef\xbb\xbf" + HEADER)) == 1


def test_a_stream_error_is_a_stanza_like_any_other() -> None:
    [error] = stanzas_of(
        b"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"</stream:error>"
    )
    assert (error.name, error.namespace) == ("error", "http://etherx.jabber.org/streams")


@pytest.mark.parametrize(
    ("stream", "code", "match"),
    [
        (b"<message/>", "invalid-namespace", "starts with <message> in namespace ''"),
        (
            b"<stream:stream xmlns:stream='jabber:client'>",
            "invalid-namespace",
            "not <stream> in http://etherx.jabber.org/streams",
        ),
        (b"<stream xmlns='jabber:client'>", "invalid-namespace", "namespace 'jabber:client'"),
        (
            b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>",
            "bad-format",
            "starts with <features>, not <stream>",
        ),
        (b"<stream:stream>", "not-well-formed", "unbound prefix"),
        (b"hello <stream:stream", "not-well-formed", "at byte 0: syntax error"),
        (b"<?xml version='1.0' encoding='ISO-8859-1'?>", "unsupported-encoding", "ISO-8859-1"),
    ],
)
def test_a_stream_must_start_with_stream_stream_in_the_streams_namespace(
    stream: bytes, code: str, match: str
) -> None:
    refusal(stream, code, match)


def test_text_outside_stanzas_is_refused() -> None:
    refusal(HEADER + b"  hello", "bad-format", "text outside any stanza")


@pytest.mark.parametrize(
    ("after", "match"),
    [
        (b"<message/>", "bytes after the end"),
        (b" ", "bytes after the end"),
        (b"\n", "bytes after the end"),
        (b"\xff", "bytes after the end"),
    ],
)
def test_nothing_may_follow_the_end_of_the_stream(after: bytes, match: str) -> None:
    error = refusal(HEADER + END + after, "not-well-formed", match)
    assert [type(event) for event in error.events] == [StreamOpened, StreamClosed]
    parser = XmlStreamParser()
    parser.feed(HEADER + END)
    with pytest.raises(XmlStreamError, match=match):
        parser.feed(after)


@pytest.mark.parametrize(
    ("stanza", "match"),
    [
        (b"<message></body></message>", "mismatched tag"),
        (b"<message a='1' a='2'/>", "duplicate attribute"),
        (b"<message xmlns:p='urn:p' p:a='1' xmlns:q='urn:p' q:a='2'/>", "duplicate attribute"),
        (b"<message><p:x/></message>", "unbound prefix"),
        (b"<message>&xxe;</message>", "undefined entity"),
        (b"<message>\x01</message>", "not well-formed"),
        (b"<message>&#1;</message>", "reference to invalid character number"),
        (b"<message>&#xFFFE;</message>", "reference to invalid character number"),
        (b"<message>\xef\xbf\xbf</message>", "not well-formed"),  # U+FFFF
        (b"<message><?xml version='1.0'?></message>", "XML or text declaration not at start"),
        (b"<message><!DOCTYPE x></message>", "invalid token"),
    ],
)
def test_xml_that_is_not_well_formed_is_refused(stanza: bytes, match: str) -> None:
    refusal(HEADER + stanza, "not-well-formed", match)


def test_the_error_says_where_and_keeps_what_came_before_it() -> None:
    error = refusal(HEADER + b"<presence/><message>\x01", "not-well-formed", "at byte")
    assert error.reason.startswith(f"not well-formed XML at byte {len(HEADER) + 20}:")
    assert [type(event) for event in error.events] == [StreamOpened, StanzaReceived]
    assert isinstance(error, RemoteProtocolError)


def test_after_an_error_the_parser_takes_nothing_more() -> None:
    parser = XmlStreamParser()
    with pytest.raises(XmlStreamError):
        parser.feed(HEADER + b"<message>\x01")
    taken = parser.bytes_taken
    for data in (b"</message>", b""):
        with pytest.raises(XmlStreamError, match="the stream already failed: not well-formed"):
            parser.feed(data)
    assert parser.bytes_taken == taken
