"""The XMPP link-local bridge of a node (XEP-0174): bridge.py runs it, streams.py is one
connection. The XML itself is p2pchat.xmpp's."""
