"""A small immutable XML element tree, and how we write one as XML text.

The parser builds these from what a peer sends; the stanza builders build them for what
we send. Mixed content (``a <b>bold</b> word``) keeps its order, because XHTML-IM bodies
are read by flattening text in document order.

Attribute names are plain (``to``) or, for an attribute in a namespace, in Clark
notation (``{http://www.w3.org/XML/1998/namespace}lang``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from p2pchat.errors import LocalProtocolError

XML_NS = "http://www.w3.org/XML/1998/namespace"

# What XML 1.0 allows in a document: tab, newline, carriage return, and the rest of
# Unicode but surrogates, U+FFFE and U+FFFF (XML 1.0 §2.2, production [2]).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

REPLACEMENT = "\ufffd"

_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# Attribute values are normalised by every reader (XML 1.0 §3.3.3): a literal tab,
# newline or carriage return would come back as a space, so they go as references.
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "'": "&apos;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def sanitize_xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry replaced by U+FFFD.

    Replaced, not dropped: a control character or a lone surrogate (from a badly
    decoded file name, say) stands for *something*, and dropping it would silently
    join the words on either side ("a\\x00b" would read "ab"). U+FFFD is Unicode's own
    mark for "a character was here that could not be represented", which every chat
    client shows. No reference can carry these either (``&#0;`` is as forbidden as the
    character itself), so there is no way to send them at all.
    """
    return _NOT_XML_CHAR.sub(REPLACEMENT, text)


def escape_text(text: str) -> str:
    """``text`` sanitised and escaped for character data: ``&``, ``<`` and ``>`` as
    entities (``>`` too, so ``]]>`` can never appear), a carriage return as ``&#13;``
    (a literal one would be turned into a newline by the reader's line-end handling)."""
    return sanitize_xml_text(text).translate(_TEXT_ESCAPES)


def escape_attribute(value: str) -> str:
    """``value`` sanitised and escaped for an attribute in either kind of quotes."""
    return sanitize_xml_text(value).translate(_ATTRIBUTE_ESCAPES)


@dataclass(frozen=True, slots=True)
class Element:
    """One XML element: expanded name, attributes in document order, and content (text
    and child elements in document order, adjacent text always merged into one string,
    never an empty string)."""

    name: str
    namespace: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    content: tuple[Element | str, ...] = ()

    def get(self, attribute: str) -> str | None:
        """The value of ``attribute`` (plain or Clark name), or None when absent."""
        for key, value in self.attributes:
            if key == attribute:
                return value
        return None

    @property
    def children(self) -> tuple[Element, ...]:
        return tuple(item for item in self.content if isinstance(item, Element))

    @property
    def text(self) -> str:
        """The character data directly inside this element (not its children's)."""
        return "".join(item for item in self.content if isinstance(item, str))

    def find(self, name: str, namespace: str | None = None) -> Element | None:
        """The first child called ``name`` (in ``namespace``, unless None: any)."""
        for child in self.children:
            if child.name == name and (namespace is None or child.namespace == namespace):
                return child
        return None

    def iter(self) -> Iterator[Element]:
        """This element and every descendant, in document order."""
        yield self
        for child in self.children:
            yield from child.iter()


class OpenElement:
    """An element being built, whose end tag has not arrived yet (the parser's)."""

    __slots__ = ("attributes", "content", "name", "namespace", "text")

    def __init__(self, name: str, namespace: str, attributes: tuple[tuple[str, str], ...]):
        self.name, self.namespace, self.attributes = name, namespace, attributes
        self.content: list[Element | str] = []
        self.text: list[str] = []  # pieces of the current text run, joined once

    def add(self, child: Element) -> None:
        self._flush()
        self.content.append(child)

    def close(self) -> Element:
        self._flush()
        return Element(self.name, self.namespace, self.attributes, tuple(self.content))

    def _flush(self) -> None:
        if self.text:
            self.content.append("".join(self.text))
            self.text.clear()


def to_xml(element: Element, parent_namespace: str = "") -> str:
    """``element`` as XML text, declaring its namespace only where it differs from the
    one it sits in (``parent_namespace``: for a stanza, the stream's ``jabber:client``).

    Every namespace is written as a default namespace (``xmlns='…'``), never with a
    prefix, which is also how libpurple writes stanzas. Attributes may be plain or in
    the ``xml`` namespace (``xml:lang``); we never build others.
    """
    parts: list[str] = []
    _write(element, parent_namespace, parts)
    return "".join(parts)


def _write(element: Element, parent_namespace: str, parts: list[str]) -> None:
    parts.append(f"<{element.name}")
    if element.namespace != parent_namespace:
        parts.append(f" xmlns='{escape_attribute(element.namespace)}'")
    for key, value in element.attributes:
        parts.append(f" {_attribute_name(key)}='{escape_attribute(value)}'")
    if not element.content:
        parts.append("/>")
        return
    parts.append(">")
    for item in element.content:
        if isinstance(item, str):
            parts.append(escape_text(item))
        else:
            _write(item, element.namespace, parts)
    parts.append(f"</{element.name}>")


def _attribute_name(key: str) -> str:
    if not key.startswith("{"):
        return key
    namespace, _, local = key[1:].partition("}")
    if namespace != XML_NS:
        raise LocalProtocolError(f"cannot write attribute {key!r}: only xml: is supported")
    return f"xml:{local}"
