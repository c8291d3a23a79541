"""An incremental, hardened parser of one inbound XMPP XML stream (sans-IO).

``XmlStreamParser.feed(bytes)`` returns the events the bytes completed: the stream
header, each top-level stanza as an immutable :class:`Element`, the stream's end. Any
split of the same bytes gives the same events and the same error, because every check
either runs on a complete token or at fixed offsets of the stream (see ``feed``).

Anything RFC 6120 §11.1 forbids in a stream is refused, not ignored: a DOCTYPE (so no
entity can be declared: billion laughs and external entities cannot happen, and only
the five predefined entities and character references exist), processing instructions
(the XML declaration is not one) and comments; so are invalid UTF-8 and NUL (utf8.py).
Every resource a peer can make us hold is bounded (limits.py). The first fault raises
:class:`XmlStreamError`, and the parser refuses all input after it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import NoReturn
from xml.parsers import expat

from p2pchat.xmpp.element import OpenElement
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
    MAX_STREAM_NAME_CHARS,
    MAX_STREAM_NAMES,
    MAX_TOKEN_BYTES,
)
from p2pchat.xmpp.namespaces import STREAMS_NS
from p2pchat.xmpp.utf8 import Utf8Gate

_XML_WHITESPACE = " \t\r\n"
# A start tag, from its "<" to its ">" (which may also stand in a quoted value).
_START_TAG = re.compile(rb"""<(?:[^'">]|'[^']*'|"[^"]*")*>""")


class _State(enum.Enum):
    PROLOG = "before the stream header"
    OPEN = "inside the stream"
    CLOSED = "after the stream's end"
    FAILED = "failed"


class _StreamEnded(Exception):
    """Raised by the end handler of the stream element, to stop expat right there."""


class XmlStreamParser:
    """The parser of one inbound stream; feed it bytes as they arrive."""

    def __init__(self) -> None:
        # UTF-8 whatever the XML declaration says (XMPP allows nothing else, and the
        # declaration is checked below); names come as "namespace local prefix" (see
        # _split), the prefix only so that we can count what expat keeps (_keep). Not
        # interned: pyexpat would keep each distinct name, namespace and all, in a table
        # that lives as long as the stream, so varying local names in a long namespace
        # would grow it by 1 KB per 7 bytes sent. What a stanza's names hold is bounded
        # instead (MAX_STANZA_NAME_CHARS), and no Python string of them is kept after it
        # but the stream's distinct names as written (_keep, MAX_STREAM_NAMES).
        self._expat = expat.ParserCreate(encoding="UTF-8", namespace_separator=" ", intern=None)
        self._expat.namespace_prefixes = True
        self._expat.ordered_attributes = True
        self._expat.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        # Newer expat (2.6+) may defer parsing an unfinished token until much more data
        # arrives, which would hold a complete stanza back until the peer sends again.
        # We bound tokens ourselves (MAX_TOKEN_BYTES), so turn the deferral off.
        if hasattr(self._expat, "SetReparseDeferralEnabled"):
            self._expat.SetReparseDeferralEnabled(False)
        self._gate = Utf8Gate()
        self._install_handlers()
        self._state = _State.PROLOG
        self._stack: list[OpenElement] = []
        self._events: list[XmlEvent] = []
        self._declared = 0  # namespace declarations of the next start tag
        self._default_namespace: str | None = None
        self._stanza_start = 0  # byte offset of the open stanza's "<"
        self._stanza_text = 0  # characters of text in it so far
        self._stanza_elements = 0  # elements begun in it so far, itself included
        self._stanza_attributes = 0  # attributes of those elements
        self._stanza_names = 0  # characters of its elements' and attributes' names so far
        # What expat keeps of the names it has met, for the stream's whole life: one
        # entry per distinct element name, attribute name (namespace declarations'
        # included) and prefix, as written ("p:a", not "namespace a"), in three tables;
        # "xml" is in its table of prefixes from the start.
        self._element_names: set[str] = set()
        self._attribute_names: set[str] = set()
        self._prefixes = {"xml"}
        self._names_kept = 0  # entries expat added to those tables
        self._name_chars_kept = 0  # characters of those entries
        self._stream_end_at = 0  # byte offset of "</stream:stream>"
        self._stream_empty = False  # whether the stream came as "<stream:stream …/>"
        self._taken = 0
        self._failure: XmlStreamError | None = None

    @property
    def bytes_taken(self) -> int:
        """Bytes of the stream taken in so far; it stops taking at the first fault."""
        return self._taken

    def feed(self, data: bytes) -> list[XmlEvent]:
        """Parse ``data``, the next bytes of the stream; return the events completed.

        Raises :class:`XmlStreamError` at the first fault, and on every call after it.
        """
        if self._failure is not None:
            raise XmlStreamError(
                f"the stream already failed: {self._failure.reason}", code=self._failure.code
            )
        self._events = []
        try:
            view = memoryview(data)
            while view:
                if self._state is _State.CLOSED:
                    raise _malformed("bytes after the end of the stream")
                # Pieces end at multiples of CHECK_INTERVAL, where the checks run.
                room = CHECK_INTERVAL - self._taken % CHECK_INTERVAL
                piece, view = view[:room], view[room:]
                ended = self._take(bytes(piece))
                if self._taken % CHECK_INTERVAL == 0 and not ended:
                    self._check_progress()
        except XmlStreamError as error:
            self._state = _State.FAILED
            # Kept without its traceback (which holds ``data``) or its events.
            self._failure = XmlStreamError(error.reason, code=error.code)
            error.events, self._events = tuple(self._events), []
            raise
        # Not held past the call, so a stanza is held only as long as the caller does.
        events, self._events = self._events, []
        return events

    def _take(self, piece: bytes) -> bool:
        """Hand ``piece`` to expat, through the UTF-8 gate; True if the stream ended."""
        offset = self._taken - self._gate.held  # where what the gate admits starts
        self._taken += len(piece)
        good, fault = self._gate.admit(piece)
        try:
            self._expat.Parse(good, False)
        except _StreamEnded:
            if self._stream_empty:
                # Expat stopped right after "<stream:stream …/>", which ends with ">".
                end = self._stream_end_at - 1
            else:
                # Expat stopped at the stream's end tag, which has one ">", at its end.
                end = offset + good.index(b">", max(self._stream_end_at - offset, 0))
            if end + 1 < self._taken:
                raise _malformed("bytes after the end of the stream") from None
            return True
        except expat.ExpatError as error:
            message = expat.errors.messages[error.code]
            where = self._expat.ErrorByteIndex
            raise _malformed(f"not well-formed XML at byte {where}: {message}") from None
        if fault:
            raise _malformed(f"{fault} at byte {offset + len(good)}")
        return False

    def _check_progress(self) -> None:
        # Expat's byte index, between two parses, is the first byte it has not parsed:
        # the start of an unfinished token. Taken but unparsed is that token (and what
        # the UTF-8 gate holds, at most 3 bytes).
        parsed = max(self._expat.CurrentByteIndex, 0)
        if self._taken - parsed > MAX_TOKEN_BYTES:
            raise _too_big(f"a single tag or other markup is over {MAX_TOKEN_BYTES} bytes")
        if self._stack and parsed - self._stanza_start > MAX_STANZA_BYTES:
            raise _too_big(f"a stanza is over {MAX_STANZA_BYTES} bytes")

    def _install_handlers(self) -> None:
        parser = self._expat
        parser.XmlDeclHandler = self._on_declaration
        parser.StartNamespaceDeclHandler = self._on_namespace
        parser.StartElementHandler = self._on_start
        parser.EndElementHandler = self._on_end
        parser.CharacterDataHandler = self._on_text
        parser.StartDoctypeDeclHandler = _refuse("a DOCTYPE")
        parser.EntityDeclHandler = _refuse("an entity declaration")
        parser.ExternalEntityRefHandler = _refuse("an external entity")
        parser.SkippedEntityHandler = _refuse("an entity reference")
        parser.ProcessingInstructionHandler = _refuse("a processing instruction")
        parser.CommentHandler = _refuse("a comment")

    def _on_declaration(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.lower() not in ("utf-8", "utf8"):
            raise XmlStreamError(
                f"the stream declares encoding {encoding!r}; XMPP is UTF-8 only",
                code="unsupported-encoding",
            )

    def _on_namespace(self, prefix: str | None, uri: str | None) -> None:
        self._declared += 1
        if uri is not None and len(uri) > MAX_NAME_CHARS:
            raise _too_big(f"a namespace name is over {MAX_NAME_CHARS} characters")
        if uri is not None and " " in uri:  # expat 2.4.5 and later refuse it already
            raise _malformed("a namespace name holds a space")
        if prefix is not None and len(prefix) > MAX_NAME_CHARS:
            raise _too_big(f"a namespace prefix is over {MAX_NAME_CHARS} characters")
        if prefix is None:
            self._keep(self._attribute_names, "xmlns")
        else:
            self._keep(self._attribute_names, f"xmlns:{prefix}")
            self._keep(self._prefixes, prefix)
        if prefix is None and self._state is _State.PROLOG:
            self._default_namespace = uri

    def _on_start(self, expanded: str, flat: list[str]) -> None:
        namespace, name, prefix = _split(expanded)
        declared, self._declared = self._declared, 0
        if len(flat) // 2 + declared > MAX_ATTRIBUTES:
            raise _too_big(f"<{name}> has over {MAX_ATTRIBUTES} attributes")
        names = [_split(attribute) for attribute in flat[::2]]
        # Expat has added this tag's names to its tables already (_on_namespace counted
        # its declarations'): count them, the stream header's too. On a complete start
        # tag, as every count below, so the split of the bytes cannot matter.
        self._keep_name(self._element_names, name, prefix)
        for _, local, attribute_prefix in names:
            self._keep_name(self._attribute_names, local, attribute_prefix)
        if self._state is _State.PROLOG:
            self._open_stream(namespace, name, _attributes(names, flat[1::2]))
            return
        if not self._stack:
            self._stanza_start = self._expat.CurrentByteIndex
            self._stanza_text = 0
            self._stanza_elements = 0
            self._stanza_attributes = 0
            self._stanza_names = 0
        elif len(self._stack) >= MAX_DEPTH:
            raise _too_big(f"elements are nested over {MAX_DEPTH} deep")
        # Counted before the element and its attributes are kept.
        self._stanza_elements += 1
        if self._stanza_elements > MAX_STANZA_ELEMENTS:
            raise _too_big(f"a stanza has over {MAX_STANZA_ELEMENTS} elements")
        self._stanza_attributes += len(names)
        if self._stanza_attributes > MAX_STANZA_ATTRIBUTES:
            raise _too_big(f"a stanza has over {MAX_STANZA_ATTRIBUTES} attributes")
        self._stanza_names += _held(namespace, name) + sum(
            _held(attribute_namespace, local) for attribute_namespace, local, _ in names
        )
        if self._stanza_names > MAX_STANZA_NAME_CHARS:
            raise _too_big(f"a stanza's names are over {MAX_STANZA_NAME_CHARS} characters")
        self._stack.append(OpenElement(name, namespace, _attributes(names, flat[1::2])))

    def _keep_name(self, table: set[str], local: str, prefix: str) -> None:
        """Count a name as expat keeps it: as written, its prefix apart too."""
        if prefix:
            self._keep(table, f"{prefix}:{local}")
            self._keep(self._prefixes, prefix)
        else:
            self._keep(table, local)

    def _keep(self, table: set[str], name: str) -> None:
        """Count ``name`` in ``table``, which mirrors one of expat's, unless it is there
        already: expat keeps it until the stream ends, so the stream's are bounded."""
        if name in table:
            return
        table.add(name)
        self._names_kept += 1
        if self._names_kept > MAX_STREAM_NAMES:
            raise _too_big(f"the stream has used over {MAX_STREAM_NAMES} distinct names")
        self._name_chars_kept += len(name)
        if self._name_chars_kept > MAX_STREAM_NAME_CHARS:
            raise _too_big(
                f"the stream's distinct names are over {MAX_STREAM_NAME_CHARS} characters"
            )

    def _open_stream(
        self, namespace: str, name: str, attributes: tuple[tuple[str, str], ...]
    ) -> None:
        if namespace != STREAMS_NS:
            raise XmlStreamError(
                f"the stream starts with <{name}> in namespace {namespace!r}, "
                f"not <stream> in {STREAMS_NS}",
                code="invalid-namespace",
            )
        if name != "stream":
            raise XmlStreamError(
                f"the stream starts with <{name}>, not <stream>", code="bad-format"
            )
        # Expat holds the whole tag, and reports the end of an empty one after it.
        tag = _START_TAG.match(self._expat.GetInputContext() or b"")
        self._stream_empty = tag is not None and tag[0].endswith(b"/>")
        values = dict(attributes)
        self._state = _State.OPEN
        self._events.append(
            StreamOpened(
                from_jid=values.get("from"),
                to_jid=values.get("to"),
                version=values.get("version"),
                xmlns=self._default_namespace,
                attributes=attributes,
            )
        )

    def _on_end(self, expanded: str) -> None:
        if not self._stack:  # the stream's own end tag
            self._state = _State.CLOSED
            self._events.append(StreamClosed())
            self._stream_end_at = self._expat.CurrentByteIndex
            raise _StreamEnded
        if len(self._stack) == 1 and (
            self._expat.CurrentByteIndex - self._stanza_start > MAX_STANZA_BYTES
        ):
            raise _too_big(f"a stanza is over {MAX_STANZA_BYTES} bytes")
        element = self._stack.pop().close()
        if self._stack:
            self._stack[-1].add(element)
        else:
            self._events.append(StanzaReceived(element))

    def _on_text(self, data: str) -> None:
        if not self._stack:
            # Between stanzas only whitespace may come (keepalives).
            if data.strip(_XML_WHITESPACE):
                raise XmlStreamError("text outside any stanza", code="bad-format")
            return
        self._stanza_text += len(data)
        if self._stanza_text > MAX_STANZA_TEXT:
            raise _too_big(f"a stanza has over {MAX_STANZA_TEXT} characters of text")
        self._stack[-1].text.append(data)


def _split(expanded: str) -> tuple[str, str, str]:
    """("namespace", "local", "prefix") from expat's "namespace local prefix" (a
    prefixed name), "namespace local" (in the default namespace) or "local" (in none);
    "" for what is absent. Unambiguous, as no part may hold a space: local names and
    prefixes are XML names, and expat (2.4.5 and later) refuses a namespace name holding
    its separator, which _on_namespace checks too."""
    if len(expanded) > MAX_NAME_CHARS:
        raise _too_big(f"a name is over {MAX_NAME_CHARS} characters")
    namespace, _, rest = expanded.partition(" ")
    if not rest:
        return "", namespace, ""
    local, _, prefix = rest.partition(" ")
    return namespace, local, prefix


def _held(namespace: str, local: str) -> int:
    """The characters a name spends of MAX_STANZA_NAME_CHARS: those of "namespace local"
    (or "local" alone), as the parser holds it; the prefix is not held."""
    return len(namespace) + 1 + len(local) if namespace else len(local)


def _attributes(
    names: list[tuple[str, str, str]], values: list[str]
) -> tuple[tuple[str, str], ...]:
    """The attributes of a start tag, from its split names and their values, in
    document order."""
    return tuple(_attribute(name, value) for name, value in zip(names, values, strict=True))


def _attribute(name: tuple[str, str, str], value: str) -> tuple[str, str]:
    if len(value) > MAX_ATTRIBUTE_CHARS:
        raise _too_big(f"an attribute value is over {MAX_ATTRIBUTE_CHARS} characters")
    namespace, local, _ = name
    return (f"{{{namespace}}}{local}" if namespace else local), value


def _too_big(reason: str) -> XmlStreamError:
    return XmlStreamError(reason, code="policy-violation")


def _malformed(reason: str) -> XmlStreamError:
    return XmlStreamError(reason, code="not-well-formed")


def _refuse(what: str) -> Callable[..., NoReturn]:
    """A handler for a construct RFC 6120 §11.1 forbids, called with whatever expat
    reports of it."""

    def refuse(*_: object) -> NoReturn:
        raise XmlStreamError(f"{what} is not allowed in an XMPP stream", code="restricted-xml")

    return refuse
