"""The XML namespaces of link-local XMPP, in one place."""

from __future__ import annotations

STREAMS_NS = "http://etherx.jabber.org/streams"  # <stream:stream>, <stream:error>
CLIENT_NS = "jabber:client"  # stanzas on a XEP-0174 stream
# XHTML-IM (XEP-0071): <html> in XHTML_IM_NS holds <body> elements in XHTML_NS.
# libpurple's Bonjour plugin puts <html> itself in XHTML_NS; we read both.
XHTML_IM_NS = "http://jabber.org/protocol/xhtml-im"
XHTML_NS = "http://www.w3.org/1999/xhtml"
CHATSTATES_NS = "http://jabber.org/protocol/chatstates"  # XEP-0085
EVENT_NS = "jabber:x:event"  # XEP-0022, obsolete, still sent by libpurple and iChat
