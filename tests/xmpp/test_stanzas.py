"""Building what we send, and reading received messages as libpurple, iChat and
XEP-0071/XEP-0085 clients write them."""

from __future__ import annotations

import pytest

from p2pchat.xmpp.element import Element
from p2pchat.xmpp.events import StanzaReceived, StreamOpened
from p2pchat.xmpp.stanzas import (
    ChatState,
    ReceivedMessage,
    chat_message,
    chat_state_notice,
    flatten_xhtml,
    read_message,
    stream_close,
    stream_header,
)
from tests.xmpp.streams import END, events_of, stanzas_of


def read(stanza: bytes) -> ReceivedMessage | None:
    [element] = stanzas_of(stanza)
    return read_message(element)


def test_the_stream_header_is_the_one_libpurple_expects() -> None:
    assert stream_header("ann@host", "bob@host") == (
        b"<?xml version='1.0' encoding='UTF-8' ?><stream:stream xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' from='ann@host' to='bob@host' "
        b"version='1.0'>"
    )
    assert stream_header("ann@host", "bob@host", version=None).endswith(b" to='bob@host'>")
    assert stream_close() == b"</stream:stream>"


def test_the_stream_header_escapes_what_it_is_given() -> None:
    header = stream_header("a'nn@h<o>st", "bob\x00@host")
    [opened] = events_of(header)
    assert opened == StreamOpened(
        "a'nn@h<o>st",
        "bob\ufffd@host",
        "1.0",
        "jabber:client",
        (("from", "a'nn@h<o>st"), ("to", "bob\ufffd@host"), ("version", "1.0")),
    )


def test_a_chat_message_mirrors_its_body_in_xhtml_im_wrapped_for_libpurple() -> None:
    assert chat_message("ann@host", "bob@host", "Hi <Bob> & 'all'\nbye") == (
        b"<message to='bob@host' from='ann@host' type='chat'>"
        b"<body>Hi &lt;Bob&gt; &amp; 'all'\nbye</body>"
        b"<html xmlns='http://jabber.org/protocol/xhtml-im'>"
        b"<body xmlns='http://www.w3.org/1999/xhtml'>"
        b"<font>Hi &lt;Bob&gt; &amp; 'all'<br/>bye</font></body></html></message>"
    )


def test_a_chat_message_may_go_plain_with_a_chat_state_and_an_id() -> None:
    assert chat_message(
        "ann@host", "bob@host", "hi", xhtml=False, chat_state=ChatState.ACTIVE, message_id="m1"
    ) == (
        b"<message to='bob@host' from='ann@host' type='chat' id='m1'><body>hi</body>"
        b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )


def test_an_empty_body_is_still_a_body() -> None:
    message = read(chat_message("ann@host", "bob@host", "", xhtml=False))
    assert message is not None and message.body == ""


def test_a_chat_state_notice_has_no_body() -> None:
    notice = chat_state_notice("ann@host", "bob@host", ChatState.COMPOSING)
    assert notice == (
        b"<message to='bob@host' from='ann@host' type='chat'>"
        b"<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    assert read(notice) == ReceivedMessage(
        "ann@host", "bob@host", "chat", None, ChatState.COMPOSING
    )


def test_control_characters_go_out_as_replacement_characters() -> None:
    message = read(chat_message("ann@host", "bob@host", "bell\x07 nul\x00 \ud800 tab\t\r\n"))
    assert message is not None
    assert message.body == "bell\ufffd nul\ufffd \ufffd tab\t\r\n"


def test_our_message_reads_back_and_libpurple_finds_its_font() -> None:
    data = chat_message("ann@host", "bob@host", "one\ntwo", chat_state=ChatState.ACTIVE)
    [element] = stanzas_of(data)
    assert read_message(element) == ReceivedMessage(
        "ann@host", "bob@host", "chat", "one\ntwo", ChatState.ACTIVE
    )
    # libpurple looks up html, body and font by name alone, whatever their namespace.
    html = element.find("html")
    body = html.find("body") if html else None
    font = body.find("font") if body else None
    assert font is not None and flatten_xhtml(font) == "one\ntwo"


def test_the_xhtml_body_is_read_when_the_plain_body_is_missing() -> None:
    message = read(
        b"<message from='carol@host' type='chat'>"
        b"<html xmlns='http://jabber.org/protocol/xhtml-im'>"
        b"<body xmlns='http://www.w3.org/1999/xhtml'><p>Hi <em>there</em>,</p>"
        b"<p style='color:red'>line<br/>two &amp; <a href='http://x'>a link</a></p>"
        b"<ul><li>one</li><li>two</li></ul></body></html></message>"
    )
    assert message is not None
    assert message.body == "Hi there,\nline\ntwo & a link\none\ntwo"


def test_the_plain_body_wins_over_the_xhtml_one() -> None:
    message = read(
        b"<message><body>plain</body><html xmlns='http://jabber.org/protocol/xhtml-im'>"
        b"<body xmlns='http://www.w3.org/1999/xhtml'>rich</body></html></message>"
    )
    assert message is not None and message.body == "plain"


@pytest.mark.parametrize(
    "stanza",
    [
        b"<message><html xmlns='urn:not-xhtml'><body>x</body></html></message>",
        b"<message><html xmlns='http://jabber.org/protocol/xhtml-im'/></message>",
        b"<message><body xmlns='urn:other'>x</body></message>",
        b"<message/>",
    ],
)
def test_no_body_is_read_from_elsewhere(stanza: bytes) -> None:
    message = read(stanza)
    assert message is not None and message.body is None


def test_type_is_normal_when_absent() -> None:
    assert read(b"<message><body>x</body></message>") == ReceivedMessage(None, None, "normal", "x")


@pytest.mark.parametrize("state", list(ChatState))
def test_every_xep_0085_chat_state_is_read(state: ChatState) -> None:
    message = read(
        b"<message><%s xmlns='http://jabber.org/protocol/chatstates'/></message>"
        % state.value.encode()
    )
    assert message is not None and message.chat_state is state


def test_an_unknown_chat_state_is_skipped_for_a_known_one() -> None:
    message = read(
        b"<message><thinking xmlns='http://jabber.org/protocol/chatstates'/>"
        b"<paused xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    assert message is not None and message.chat_state is ChatState.PAUSED
    message = read(b"<message><paused/></message>")  # not in the chat states namespace
    assert message is not None and message.chat_state is None


@pytest.mark.parametrize(
    ("x", "state", "wants"),
    [
        (b"<composing/>", None, True),  # a request, sent with a message
        (b"<composing/><id>m1</id>", ChatState.COMPOSING, False),  # typing
        (b"<composing/><id/>", ChatState.COMPOSING, False),
        (b"<id>m1</id>", ChatState.PAUSED, False),  # stopped typing
        (b"<offline/><delivered/>", None, False),  # requests we do not serve
    ],
)
def test_old_jabber_x_event_notices(x: bytes, state: ChatState | None, wants: bool) -> None:
    message = read(b"<message><x xmlns='jabber:x:event'>%s</x></message>" % x)
    assert message is not None
    assert (message.chat_state, message.wants_composing_events) == (state, wants)


def test_xep_0085_wins_over_jabber_x_event() -> None:
    message = read(
        b"<message><x xmlns='jabber:x:event'><composing/><id>m1</id></x>"
        b"<gone xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    assert message is not None and message.chat_state is ChatState.GONE


@pytest.mark.parametrize(
    "stanza",
    [
        Element("presence", "jabber:client"),
        Element("iq", "jabber:client"),
        Element("message", "jabber:server"),
        Element("message", "http://etherx.jabber.org/streams"),
    ],
)
def test_only_messages_are_read(stanza: Element) -> None:
    assert read_message(stanza) is None


def test_a_message_without_namespace_is_read() -> None:
    [opened, stanza, _] = events_of(
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
        b"<message from='a@h'><body>x</body></message>" + END
    )
    assert isinstance(opened, StreamOpened) and opened.xmlns is None
    assert isinstance(stanza, StanzaReceived)
    assert read_message(stanza.element) == ReceivedMessage("a@h", None, "normal", "x")


def test_a_stream_sent_back_has_no_xml_declaration() -> None:
    """libpurple reports one on a stream it did not open as "extra content" and closes
    the connection (p2pchat/xmpp/stanzas.py, stream_header)."""
    back = stream_header("ann@annhost", "fred@finchhost", declaration=False)
    assert back.startswith(b"<stream:stream ")
    assert stream_header("ann@annhost", "fred@finchhost").endswith(back)
