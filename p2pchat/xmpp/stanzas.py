"""What we send on a link-local XMPP stream, as bytes, and what a received message says.

Written to be read by libpurple's Bonjour plugin (Pidgin, finch, Adium) and by iChat /
Messages; read leniently, because each of them writes messages a little differently.
Every string we write goes through ``element.escape_*``, which replaces characters XML
1.0 cannot carry with U+FFFD (see ``sanitize_xml_text`` for why replace, not drop).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from p2pchat.xmpp.element import Element, escape_attribute, to_xml
from p2pchat.xmpp.namespaces import (
    CHATSTATES_NS,
    CLIENT_NS,
    EVENT_NS,
    STREAMS_NS,
    XHTML_IM_NS,
    XHTML_NS,
)

# XHTML elements that start a new line when flattened to text (besides <br/>).
_BLOCKS = frozenset({"p", "div", "li", "blockquote"})


class ChatState(enum.Enum):
    """XEP-0085 chat states: whether the peer is typing, stopped, away or gone."""

    ACTIVE = "active"
    COMPOSING = "composing"
    PAUSED = "paused"
    INACTIVE = "inactive"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A received ``<message>`` as plain values.

    ``type`` is "normal" when the stanza has none (RFC 6121 §5.2.2). ``body`` is None
    for a message without text (a typing notice). ``chat_state`` comes from XEP-0085,
    else from an old XEP-0022 notice. ``wants_composing_events`` is True when the
    sender asked for XEP-0022 typing notices (libpurple asks with every message).
    """

    from_jid: str | None
    to_jid: str | None
    type: str
    body: str | None
    chat_state: ChatState | None = None
    wants_composing_events: bool = False


def stream_header(
    from_jid: str, to_jid: str, *, version: str | None = "1.0", declaration: bool = True
) -> bytes:
    """Our ``<stream:stream>`` start tag, with the XML declaration before it.

    libpurple sends no version and ignores ours; XEP-0174 streams are XMPP 1.0 ones, so
    we say so unless told not to (``version=None``). ``declaration=False`` for the
    stream we send back on a connection the peer opened: libpurple's parser of the
    conversations it starts reports an XML declaration there as "extra content" and
    closes the connection ten seconds later (seen with finch 2.14).
    """
    version_attribute = "" if version is None else f" version='{escape_attribute(version)}'"
    return (
        ("<?xml version='1.0' encoding='UTF-8' ?>" if declaration else "")
        + f"<stream:stream xmlns='{CLIENT_NS}' xmlns:stream='{STREAMS_NS}'"
        f" from='{escape_attribute(from_jid)}' to='{escape_attribute(to_jid)}'"
        f"{version_attribute}>"
    ).encode()


def stream_close() -> bytes:
    return b"</stream:stream>"


def chat_message(
    from_jid: str,
    to_jid: str,
    body: str,
    *,
    xhtml: bool = True,
    chat_state: ChatState | None = None,
    message_id: str | None = None,
) -> bytes:
    """A ``type='chat'`` message with ``body`` as its text.

    With ``xhtml`` the text is mirrored in an XHTML-IM ``<html>`` element, as libpurple
    does: libpurple shows the text inside ``<html><body><font>`` when there is one, and
    otherwise shows the plain ``<body>`` *as HTML*, so a "<b>" our user typed would turn
    bold in Pidgin. The ``<font>`` wrapper is for libpurple; XEP-0071 readers, which do
    not know it, show its content (XEP-0071 §8). Line breaks become ``<br/>``.
    """
    content: list[Element | str] = [Element("body", CLIENT_NS, content=_text(body))]
    if xhtml:
        content.append(_xhtml_mirror(body))
    if chat_state is not None:
        content.append(Element(chat_state.value, CHATSTATES_NS))
    return _message(from_jid, to_jid, content, message_id)


def chat_state_notice(from_jid: str, to_jid: str, state: ChatState) -> bytes:
    """A message carrying only a XEP-0085 chat state (typing, paused, gone…)."""
    return _message(from_jid, to_jid, [Element(state.value, CHATSTATES_NS)], None)


def read_message(stanza: Element) -> ReceivedMessage | None:
    """``stanza`` as a :class:`ReceivedMessage`, or None if it is not a message."""
    if stanza.name != "message" or stanza.namespace not in (CLIENT_NS, ""):
        return None
    return ReceivedMessage(
        from_jid=stanza.get("from"),
        to_jid=stanza.get("to"),
        type=stanza.get("type") or "normal",
        body=_body(stanza),
        chat_state=_chat_state(stanza) or _legacy_state(stanza),
        wants_composing_events=_wants_composing_events(stanza),
    )


def flatten_xhtml(element: Element) -> str:
    """The text of an XHTML element in document order, markup dropped: ``<br/>`` as a
    newline, and a newline before a paragraph-like block that follows text."""
    parts: list[str] = []
    _flatten(element, parts)
    return "".join(parts)


def _message(
    from_jid: str, to_jid: str, content: list[Element | str], message_id: str | None
) -> bytes:
    attributes = [("to", to_jid), ("from", from_jid), ("type", "chat")]
    if message_id is not None:
        attributes.append(("id", message_id))
    message = Element("message", CLIENT_NS, tuple(attributes), tuple(content))
    return to_xml(message, parent_namespace=CLIENT_NS).encode()


def _text(text: str) -> tuple[str, ...]:
    return (text,) if text else ()


def _xhtml_mirror(body: str) -> Element:
    lines: list[Element | str] = []
    for index, line in enumerate(body.split("\n")):
        if index:
            lines.append(Element("br", XHTML_NS))
        lines.extend(_text(line))
    font = Element("font", XHTML_NS, content=tuple(lines))
    return Element("html", XHTML_IM_NS, content=(Element("body", XHTML_NS, content=(font,)),))


def _body(stanza: Element) -> str | None:
    body = stanza.find("body", stanza.namespace)
    if body is not None:
        return flatten_xhtml(body)  # plain text; a stray child element adds its text
    for html in stanza.children:
        if html.name == "html" and html.namespace in (XHTML_IM_NS, XHTML_NS):
            xhtml_body = html.find("body")
            return None if xhtml_body is None else flatten_xhtml(xhtml_body)
    return None


def _chat_state(stanza: Element) -> ChatState | None:
    for child in stanza.children:
        if child.namespace == CHATSTATES_NS:
            try:
                return ChatState(child.name)
            except ValueError:
                continue  # a state from a later revision: look for one we know
    return None


def _legacy_state(stanza: Element) -> ChatState | None:
    """XEP-0022: an ``<x>`` with an ``<id>`` is a notice, not a request; with
    ``<composing/>`` the sender is typing, without it the sender stopped, which
    XEP-0085 calls paused."""
    event = stanza.find("x", EVENT_NS)
    if event is None or event.find("id", EVENT_NS) is None:
        return None
    typing = event.find("composing", EVENT_NS) is not None
    return ChatState.COMPOSING if typing else ChatState.PAUSED


def _wants_composing_events(stanza: Element) -> bool:
    event = stanza.find("x", EVENT_NS)
    return (
        event is not None
        and event.find("id", EVENT_NS) is None
        and event.find("composing", EVENT_NS) is not None
    )


def _flatten(element: Element, parts: list[str]) -> None:
    for item in element.content:
        if isinstance(item, str):
            parts.append(item)
        elif item.name == "br":
            parts.append("\n")
        else:
            if item.name in _BLOCKS and parts and not parts[-1].endswith("\n"):
                parts.append("\n")
            _flatten(item, parts)
