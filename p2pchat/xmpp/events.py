"""What the XML stream parser reports, and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass

from p2pchat.errors import RemoteProtocolError
from p2pchat.xmpp.element import Element


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer's ``<stream:stream>`` start tag. ``version`` is None when absent, as
    from libpurple (it never sends ``version='1.0'``); ``xmlns`` is the stream's default
    (content) namespace, ``jabber:client`` on a link-local stream. ``attributes`` holds
    every attribute, the ones above included (``xml:lang`` in Clark notation)."""

    from_jid: str | None
    to_jid: str | None
    version: str | None
    xmlns: str | None
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StanzaReceived:
    """One complete top-level element of the stream: a message, presence, iq, or a
    stream-level element such as ``<stream:error>``."""

    element: Element


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The peer's ``</stream:stream>``: nothing may follow it."""


XmlEvent = StreamOpened | StanzaReceived | StreamClosed


class XmlStreamError(RemoteProtocolError):
    """The peer's XML stream broke a rule; the parser takes no more input after it.

    ``code`` is the RFC 6120 stream error condition that fits (``not-well-formed``,
    ``restricted-xml``, ``policy-violation``, ``invalid-namespace``, ``bad-format``,
    ``unsupported-encoding``), so the bridge can send it back as ``<stream:error>``;
    ``reason`` (also ``str(error)``) says in words what was wrong. ``events`` holds what
    the failed ``feed`` call had completed before the fault, in order: a caller may
    still deliver the messages that came before the garbage.
    """

    def __init__(self, reason: str, *, code: str, events: tuple[XmlEvent, ...] = ()) -> None:
        super().__init__(reason, code=code)
        self.reason = reason
        self.events = events
