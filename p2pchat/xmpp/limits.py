"""The bounds of one inbound XML stream: what a peer can make the parser hold.

A stranger on the LAN can push against each; tests/xmpp/test_parser_hostile.py does.
"""

from __future__ import annotations

# Elements nested in one stanza, the stanza itself being 1. A message with an XHTML-IM
# body needs about 6; 16 leaves room for formatting and extensions, while each level
# costs a Python frame in whoever walks the tree.
MAX_DEPTH = 16
# Elements in one stanza, the stanza itself being 1 (as for MAX_DEPTH), at any depth. A
# chat message has about 10 (body, its XHTML-IM mirror, a typing notice), plus one
# <br/> per line break in the mirror, which libpurple and we both write: so 256 would
# refuse, and close the stream over, a paste of 250 lines. 1024 fits a 64 KiB message
# whose lines average 29 characters or more (a line costs twice its length and 6 bytes).
# Without this bound 64 KiB of "<a/>" is 16,000 elements held as Python objects, 2.2 MiB
# per stream; with it about 150 KiB (each element costs 130 to 1,200 bytes held, the
# most when in a long namespace).
MAX_STANZA_ELEMENTS = 1024
# Bytes of one stanza, from its start tag's "<" to its end tag's "<", counted on the
# input as it arrives, so a larger one is refused within one check interval after
# passing the bound, long before it would be buffered whole. A chat message is a few
# KiB at most (p2pchat's own text bound is 4096 characters).
MAX_STANZA_BYTES = 64 * 1024
# Characters of text in one stanza, all its elements together; a body of 4096 wide
# characters, mirrored in XHTML-IM, fits many times over.
MAX_STANZA_TEXT = 32 * 1024
# Attributes of one element, namespace declarations included.
MAX_ATTRIBUTES = 32
# Attributes of one stanza, all its elements together (namespace declarations are not
# counted: nothing of them is held past their start tag). A chat message has 3 to 9
# (iChat's); XHTML-IM puts one or two on a <span>, <a> or <img> and none on a <br/>,
# so even a message of MAX_STANZA_ELEMENTS has few. Each attribute held costs about 120
# bytes (its pair and its name) however short its name, and MAX_ATTRIBUTES and
# MAX_STANZA_ELEMENTS together allow 32,000 while MAX_STANZA_NAME_CHARS counts only
# characters: without this bound 64 KiB of " a1=''" (31 to an element) is 9,600
# attributes and 30,000 characters of names, which held 1.1 MiB at once per stream, 70
# MiB over 64 streams. With it a stanza's attributes hold at most about 120 KiB; that
# stanza, refused, 130 KiB.
MAX_STANZA_ATTRIBUTES = 1024
# Characters of one attribute value, and of one name (with its namespace and prefix), or
# prefix. A JID a link-local client uses is user@host; 1024 covers any real one.
MAX_ATTRIBUTE_CHARS = 1024
MAX_NAME_CHARS = 1024
# Characters of the names in one stanza, all together: each element's and each
# attribute's, with its namespace, as often as it occurs. Expat writes every name out
# with its namespace, so a peer that declares a 1000-character namespace once makes each
# "<p:a/>" (6 bytes) and each " p:b=''" (7 bytes) after it a new string of 1 KB: 60 KiB
# of them held 7.6 MiB (26 MiB if the namespace's characters take 4 bytes), 490 MiB over
# 64 streams, within every other bound. A message in the usual namespaces spends 15 to
# 50 characters an element ("http://www.w3.org/1999/xhtml br" is 31), so
# MAX_STANZA_ELEMENTS of them fit twice over; with this bound a stanza's names hold at
# most 256 KiB (4 bytes a character, at worst); the example above then holds 150 KiB.
# Sharing repeated names would not do instead: a peer varies the local part, and the
# table would need a bound of its own (pyexpat's, kept for the stream's life, is off).
MAX_STANZA_NAME_CHARS = 64 * 1024
# Distinct names of one stream, and their characters together. Expat keeps every
# element name, attribute name (namespace declarations' too: "xmlns:p") and prefix it
# meets, as written ("p:a", not "namespace a"), in tables that live as long as the
# stream, which may be for ever while the peer talks; neither expat nor pyexpat can
# turn that off. Each costs about 70 bytes besides its characters, so 1 MB of "<n1/>",
# "<n2/>"... spread over stanzas, within every bound above, kept 6 to 7 MiB per stream,
# and more with every stanza. A client's vocabulary is small: libpurple, iChat and we
# together use 30 names of 175 characters (the longest iChat's "ichatballooncolor");
# 512 names and 8 Ki characters (16 a name) leave room for all of XHTML-IM and many
# extensions. Expat's copies and the parser's own (by which it tells a name met before
# from a new one) then hold at most about 220 KiB; measured, 100 KiB. A stream that
# passes either bound is refused as for any other, and the peer may open a new one.
# (A new expat parser for each stanza would drop the tables, but it would have to be
# told the stream's namespaces and byte offsets again, and costs more than counting.)
MAX_STREAM_NAMES = 512
MAX_STREAM_NAME_CHARS = 8 * 1024
# Bytes of one unfinished token (a tag, a reference) that expat holds. Expat parses a
# token only once it is complete and scans it again from its start on every feed, so a
# peer trickling a huge tag byte by byte would cost us quadratic time; this keeps that
# to a few tens of milliseconds. Real tags are a few hundred bytes; a tag with many
# long attributes can meet this bound before MAX_ATTRIBUTES or MAX_ATTRIBUTE_CHARS.
MAX_TOKEN_BYTES = 8 * 1024
# The bounds above that depend on how far the input has been parsed are checked each
# time the stream passes a multiple of this offset: the same offsets however the bytes
# arrive, so the outcome never depends on the split. Expat is never handed more than
# this at once, so a 10 MB feed is not buffered either.
CHECK_INTERVAL = 4 * 1024
