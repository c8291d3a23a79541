"""The element tree and how we write XML: escaping, sanitising, namespaces."""

from __future__ import annotations

import pytest

from p2pchat.errors import LocalProtocolError
from p2pchat.xmpp.element import (
    XML_NS,
    Element,
    escape_attribute,
    escape_text,
    sanitize_xml_text,
    to_xml,
)


@pytest.mark.parametrize(
    ("text", "sanitized"),
    [
        ("plain text, ünïcødé, ☺ and 🎉", "plain text, ünïcødé, ☺ and 🎉"),
        ("tab\tnewline\ncarriage\r", "tab\tnewline\ncarriage\r"),  # the three allowed
        ("nul\x00bell\x07esc\x1b", "nul\ufffdbell\ufffdesc\ufffd"),
        ("lone \ud800 surrogate \udfff", "lone \ufffd surrogate \ufffd"),
        ("noncharacters \ufffe\uffff", "noncharacters \ufffd\ufffd"),
        ("C1 \x85\x9f stay (XML 1.0 allows them)", "C1 \x85\x9f stay (XML 1.0 allows them)"),
    ],
)  # fmt: skip
def test_characters_xml_cannot_carry_are_replaced_not_dropped(text: str, sanitized: str) -> None:
    assert sanitize_xml_text(text) == sanitized


def test_text_escapes_markup_and_keeps_carriage_returns() -> None:
    assert escape_text("a < b && c > d ]]> e\r\n") == (
        "a &lt; b &amp;&amp; c &gt; d ]]&gt; e&#13;\n"
    )


def test_attribute_escapes_both_quotes_and_whitespace_a_reader_would_normalise() -> None:
    assert escape_attribute('it\'s "q" <&>\t\n\r') == (
        "it&apos;s &quot;q&quot; &lt;&amp;&gt;&#9;&#10;&#13;"
    )
    assert escape_attribute("bad\x00") == "bad\ufffd"


def test_namespaces_are_declared_only_where_they_change() -> None:
    message = Element(
        "message",
        "jabber:client",
        (("to", "bob@host"), (f"{{{XML_NS}}}lang", "en")),
        (
            Element("body", "jabber:client", content=("hi",)),
            Element("active", "http://jabber.org/protocol/chatstates"),
        ),
    )
    assert to_xml(message, "jabber:client") == (
        "<message to='bob@host' xml:lang='en'><body>hi</body>"
        "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
    assert to_xml(Element("x", "urn:a", content=(Element("y", "urn:a"),))) == (
        "<x xmlns='urn:a'><y/></x>"
    )


def test_only_xml_namespaced_attributes_can_be_written() -> None:
    with pytest.raises(LocalProtocolError, match="only xml:"):
        to_xml(Element("x", attributes=(("{urn:other}a", "1"),)))


def test_accessors_keep_document_order_of_mixed_content() -> None:
    bold = Element("b", "urn:x", content=("bold",))
    paragraph = Element(
        "p", "urn:x", (("class", "c"),), ("one ", bold, " two", Element("b", "urn:y"))
    )
    assert paragraph.get("class") == "c"
    assert paragraph.get("missing") is None
    assert paragraph.text == "one  two"
    assert paragraph.children == (bold, Element("b", "urn:y"))
    assert paragraph.find("b") is bold
    assert paragraph.find("b", "urn:y") == Element("b", "urn:y")
    assert paragraph.find("i") is None
    assert [element.name for element in paragraph.iter()] == ["p", "b", "b"]
