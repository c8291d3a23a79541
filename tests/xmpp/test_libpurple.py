"""Whole conversations as Pidgin / Adium (libpurple's Bonjour plugin) and iChat write
them, written from libpurple's bonjour/jabber.c: a stream header with double quotes, a
newline after the XML declaration and no version; each message with a plain body, an
XHTML mirror whose <html> is (wrongly) in the XHTML namespace with a <font> inside, and
a jabber:x:event request for typing notices; the bare end tag, then the socket closes.
"""

from __future__ import annotations

from p2pchat.xmpp.events import StanzaReceived, StreamClosed, StreamOpened
from p2pchat.xmpp.stanzas import ChatState, ReceivedMessage, flatten_xhtml, read_message
from tests.xmpp.streams import LIBPURPLE_HEADER, events_of, outcome

PIDGIN = (
    LIBPURPLE_HEADER + b"<message to='bob@bobhost' from='ann@annhost' type='chat'>"
    b"<body>Hello Bob &amp; all</body>"
    b"<html xmlns='http://www.w3.org/1999/xhtml'><body>"
    b"<font>Hello <b>Bob</b> &amp; all</font></body></html>"
    b"<x xmlns='jabber:x:event'><composing/></x></message>"
    b"<message to='bob@bobhost' from='ann@annhost' type='chat'>"
    b"<body>I &lt;3 XMPP\nsecond line</body>"
    b"<html xmlns='http://www.w3.org/1999/xhtml'><body>"
    b"<font>I &lt;3 XMPP<br/>second line</font></body></html>"
    b"<x xmlns='jabber:x:event'><composing/></x></message>"
    b"</stream:stream>"
)

ICHAT = (
    b"<?xml version='1.0' encoding='UTF-8'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='bob@bobhost' from='carol@carolhost' version='1.0'>"
    b"<message to='bob@bobhost' from='carol@carolhost' type='chat' id='iChat_5A1B2C3D'>"
    b"<body>hi from iChat</body><html xmlns='http://www.w3.org/1999/xhtml'>"
    b"<body ichatballooncolor='#7BB5EE' ichattextcolor='#000000'>"
    b"<font face='Helvetica' ABSZ='12' color='#000000'>hi from iChat</font></body></html>"
    b"<x xmlns='jabber:x:event'><composing/></x></message>"
    b"<message to='bob@bobhost' from='carol@carolhost' type='chat'>"
    b"<x xmlns='jabber:x:event'><composing/><id>iChat_5A1B2C3D</id></x></message>"
    b"<message to='bob@bobhost' from='carol@carolhost' type='chat'>"
    b"<x xmlns='jabber:x:event'><id>iChat_5A1B2C3D</id></x></message>"
)


def messages(data: bytes) -> list[ReceivedMessage | None]:
    return [
        read_message(event.element)
        for event in events_of(data)
        if isinstance(event, StanzaReceived)
    ]


def test_a_pidgin_conversation() -> None:
    events = events_of(PIDGIN)
    assert events[0] == StreamOpened(
        "ann@annhost",
        "bob@bobhost",
        None,
        "jabber:client",
        (("from", "ann@annhost"), ("to", "bob@bobhost")),
    )
    assert events[-1] == StreamClosed()
    first = ReceivedMessage(
        "ann@annhost", "bob@bobhost", "chat", "Hello Bob & all", wants_composing_events=True
    )
    second = ReceivedMessage(
        "ann@annhost", "bob@bobhost", "chat", "I <3 XMPP\nsecond line", wants_composing_events=True
    )
    assert messages(PIDGIN) == [first, second]


def test_pidgins_xhtml_mirror_says_the_same_as_its_body() -> None:
    for event in events_of(PIDGIN):
        if isinstance(event, StanzaReceived):
            body, html = event.element.children[:2]
            xhtml_body = html.find("body")
            assert xhtml_body is not None
            assert flatten_xhtml(xhtml_body) == flatten_xhtml(body)


def test_pidgin_read_as_tcp_delivers_it() -> None:
    whole = outcome([PIDGIN])
    for size in (1, 2, 3, 7, 64, 4096):
        assert outcome(PIDGIN[i : i + size] for i in range(0, len(PIDGIN), size)) == whole


def test_an_ichat_conversation_with_typing_notices() -> None:
    assert messages(ICHAT) == [
        ReceivedMessage(
            "carol@carolhost", "bob@bobhost", "chat", "hi from iChat", wants_composing_events=True
        ),
        ReceivedMessage("carol@carolhost", "bob@bobhost", "chat", None, ChatState.COMPOSING),
        ReceivedMessage("carol@carolhost", "bob@bobhost", "chat", None, ChatState.PAUSED),
    ]
