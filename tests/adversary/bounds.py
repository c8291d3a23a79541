"""The bounds the adversary suite asserts, and where each comes from.

The tests assert them and ``bench/adversary.py`` prints them beside the figures, so
both always say the same thing.
"""

from __future__ import annotations

from p2pchat.net.connection import ConnectionConfig
from tests.adversary.memory import MIB

# --- a peer that never reads (issue 12, "Backpressure everywhere") -------------------

HIGH_WATER = ConnectionConfig().high_water_bytes  # a session's outgoing queue: 1 MiB
LARGEST_SENT = MIB  # the largest message these attacks send (a 1 MiB Ping)
# What one flooding session may make the node hold once it stops reading at the high
# water mark: the outgoing queue, the message being reassembled (and its decoded copy),
# and the read buffers (a 256 KiB bulk buffer, a 128 KiB read): 4 MiB in all.
PER_SESSION = HIGH_WATER + 2 * LARGEST_SENT + MIB
# Python's allocator keeps freed arenas, and the first use of a code path (a refusal, a
# log line, a Close) allocates once. The same measurement without a flood (a session
# opened, a contact served) grows the daemon by < 0.1 MiB: the slack is for the fixes.
ALLOCATOR_SLACK = 16 * MIB


def flood_growth_bound(sessions: int) -> int:
    """The most a flood from ``sessions`` sessions that never read may grow the node."""
    return sessions * PER_SESSION + ALLOCATOR_SLACK


CONTACT_WITHIN = 5.0  # a contact's message is delivered within this, whatever strangers do

# --- one stranger's gossip of fresh identities ("Membership that one stranger cannot
# inflate"): the issue's own targets --------------------------------------------------

SYBILS = 100_000
MAX_MEMBERS = 10_000
MAX_REACHING_NEIGHBOUR = 1_000
NEIGHBOUR_WINDOW = 10.0
GOSSIP_GROWTH = 64 * MIB

# --- session slots ("Session slots with priorities") ----------------------------------

STRANGERS = 300

# --- handshake slots -------------------------------------------------------------------

SILENT_SOCKETS = 64
REAL_HANDSHAKES = 10
HANDSHAKES_NEEDED = 9
HANDSHAKE_WITHIN = 2.0

# --- a contact's burst in the write of handshake message 3 ------------------------------

BURST = 300
