"""Helpers of the XMPP tests: streams as libpurple and we write them, and ways to feed
a parser and see what came out."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from p2pchat.xmpp.element import Element
from p2pchat.xmpp.events import StanzaReceived, XmlEvent, XmlStreamError
from p2pchat.xmpp.parser import XmlStreamParser
from p2pchat.xmpp.stanzas import stream_header

# What libpurple's Bonjour plugin sends first: double quotes, a newline after the XML
# declaration, no version attribute.
LIBPURPLE_HEADER = (
    b'<?xml version="1.0" encoding="UTF-8" ?>\n'
    b'<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"'
    b' from="ann@annhost" to="bob@bobhost">'
)
HEADER = stream_header("ann@annhost", "bob@bobhost")
END = b"</stream:stream>"

Outcome = tuple[list[XmlEvent], tuple[str, str] | None]


def outcome(chunks: Iterable[bytes]) -> Outcome:
    """Every event a fresh parser reports for ``chunks`` fed in turn (those of a failed
    call included), and the (code, reason) of its error, if any."""
    parser = XmlStreamParser()
    events: list[XmlEvent] = []
    for chunk in chunks:
        try:
            events += parser.feed(chunk)
        except XmlStreamError as error:
            return events + list(error.events), (error.code, error.reason)
    return events, None


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def events_of(data: bytes) -> list[XmlEvent]:
    """The events of ``data``, checked to be the same fed whole and byte by byte."""
    whole = outcome([data])
    assert outcome(bytewise(data)) == whole
    events, error = whole
    assert error is None, error
    return events


def stanzas_of(data: bytes) -> list[Element]:
    """The stanzas of a stream ``data`` (a header is put before it)."""
    events = events_of(HEADER + data)
    return [event.element for event in events if isinstance(event, StanzaReceived)]


def refusal(data: bytes, code: str, match: str) -> XmlStreamError:
    """Feeding ``data`` whole fails with ``code`` and a reason matching ``match``, and
    byte by byte the same way."""
    parser = XmlStreamParser()
    with pytest.raises(XmlStreamError, match=match) as caught:
        parser.feed(data)
    assert caught.value.code == code
    assert outcome(bytewise(data))[1] == (code, caught.value.reason)
    return caught.value
