"""Properties over many inputs: what we build reads back, the parser fails only with its
own error, and any split of the bytes gives the same events and the same error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from p2pchat.xmpp.element import Element, sanitize_xml_text, to_xml
from p2pchat.xmpp.events import StanzaReceived
from p2pchat.xmpp.namespaces import CLIENT_NS
from p2pchat.xmpp.stanzas import chat_message, read_message
from tests.xmpp.streams import END, HEADER, LIBPURPLE_HEADER, bytewise, outcome, stanzas_of
from tests.xmpp.test_libpurple import ICHAT, PIDGIN

# Any code point, lone surrogates included (they come from badly decoded file names).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
jids = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)


@given(from_jid=jids, to_jid=jids, body=any_text)
def test_any_text_round_trips_through_build_and_parse(
    from_jid: str, to_jid: str, body: str
) -> None:
    [stanza] = stanzas_of(chat_message(from_jid, to_jid, body))
    message = read_message(stanza)
    assert message is not None
    assert message.from_jid == sanitize_xml_text(from_jid)
    assert message.to_jid == sanitize_xml_text(to_jid)
    assert message.body == sanitize_xml_text(body)
    # and the XHTML mirror alone says the same, as a reader without <body> would see
    without_body = Element(stanza.name, stanza.namespace, stanza.attributes, stanza.content[1:])
    mirrored = read_message(without_body)
    assert mirrored is not None and mirrored.body == sanitize_xml_text(body)


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_.-]{0,6}", fullmatch=True).filter(
    lambda name: not name.lower().startswith("xml")
)
namespaces = st.sampled_from([CLIENT_NS, "", "urn:x", "http://jabber.org/protocol/chatstates"])


def element(children: st.SearchStrategy[Element]) -> st.SearchStrategy[Element]:
    return st.builds(
        lambda name, namespace, attributes, content: Element(
            name, namespace, tuple(attributes.items()), tuple(content)
        ),
        names,
        namespaces,
        st.dictionaries(names, any_text, max_size=4),
        st.lists(st.one_of(any_text, children), max_size=5),
    )


trees = st.recursive(element(st.nothing()), element, max_leaves=12)


def as_parsed(tree: Element) -> Element:
    """What the parser makes of ``tree`` written out: text sanitised, adjacent text
    merged, empty text gone."""
    content: list[Element | str] = []
    for item in tree.content:
        if isinstance(item, Element):
            content.append(as_parsed(item))
        elif item and content and isinstance(content[-1], str):
            content[-1] += sanitize_xml_text(item)
        elif item:
            content.append(sanitize_xml_text(item))
    attributes = tuple((key, sanitize_xml_text(value)) for key, value in tree.attributes)
    return Element(tree.name, tree.namespace, attributes, tuple(content))


@given(trees)
def test_any_tree_we_write_parses_back(tree: Element) -> None:
    assert stanzas_of(to_xml(tree, CLIENT_NS).encode()) == [as_parsed(tree)]


@given(st.lists(trees, max_size=4), st.lists(st.integers(1, 200), max_size=30))
def test_byte_at_a_time_and_any_split_equal_one_feed(
    stanzas: list[Element], sizes: list[int]
) -> None:
    data = HEADER + b"".join(to_xml(tree, CLIENT_NS).encode() for tree in stanzas) + END
    whole = outcome([data])
    assert whole[1] is None
    assert [type(event) for event in whole[0]].count(StanzaReceived) == len(stanzas)
    assert outcome(bytewise(data)) == whole
    assert outcome(split(data, sizes)) == whole


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    pieces, start = [], 0
    for size in sizes:
        pieces.append(data[start : start + size])
        start += size
    return [*pieces, data[start:]]


@given(st.binary(max_size=500), st.sampled_from([b"", HEADER, LIBPURPLE_HEADER]))
def test_any_bytes_fail_only_with_our_error_and_the_same_way_however_split(
    tail: bytes, header: bytes
) -> None:
    data = header + tail
    whole = outcome([data])  # outcome catches XmlStreamError only: anything else fails
    assert outcome(bytewise(data)) == whole


# What to put in place of a byte of a real stream: random bytes, or pieces of markup
# that move the parser into other states.
damage = st.one_of(
    st.binary(max_size=3),
    st.sampled_from(
        [b"<", b">", b"&", b"</", b"/>", b"<!--", b"-->", b"<?x?>", b"]]>", b"<![CDATA[",
         b"&#0;", b"&#x10FFFF;", b"&lt", b"\xc3\xa9", b"\xf0\x9f", b"'", b'"', b"=", b" ",
         b"xmlns:a='b'", b"a:b", b"</stream:stream>", b"<!DOCTYPE x>", b"<!ENTITY"]
    ),
)  # fmt: skip


@given(
    st.sampled_from([PIDGIN, ICHAT]),
    st.lists(st.tuples(st.integers(0, 2000), damage), min_size=1, max_size=4),
    st.lists(st.integers(1, 300), max_size=20),
)
def test_damaged_real_streams_fail_only_with_our_error_however_split(
    stream: bytes, edits: list[tuple[int, bytes]], sizes: list[int]
) -> None:
    data = bytearray(stream)
    for position, replacement in edits:
        at = position % len(data)
        data[at : at + 1] = replacement
    damaged = bytes(data)
    whole = outcome([damaged])
    assert outcome(bytewise(damaged)) == whole
    assert outcome(split(damaged, sizes)) == whole
