"""XMPP link-local messaging (XEP-0174, "Bonjour" in Pidgin, finch and Adium), sans-IO.

``element``: our small immutable XML tree and how we write it. ``parser``: the bytes of
one inbound XML stream turned into ``events``, refusing anything an XMPP stream may not
carry (DTDs, entities, processing instructions, comments, invalid UTF-8: ``utf8``) and
anything beyond the bounds of ``limits``. ``stanzas``: the bytes we send, and received
messages read into plain records. ``namespaces``: the namespaces all of them use. No
module here does I/O: the bridge that owns the sockets and mDNS feeds them.
"""
