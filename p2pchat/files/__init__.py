"""Files, sans-IO: names from the network made safe, and content addressed by a hash
tree over fixed-size blocks so that every block is verified as it arrives. The trio
side will live in :mod:`p2pchat.node.files` (docs/protocol.md §16)."""
