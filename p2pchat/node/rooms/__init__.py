"""The room service: rooms (p2pchat.chat.rooms) over the room broadcast (mesh.plumtree).

One :class:`~p2pchat.mesh.plumtree.Broadcast` per joined room, over the room's joined
members that are online or connected. Membership changes (invitations, key updates,
leaving) travel pairwise over the encrypted sessions; room messages are sealed with the
room key, signed by their author, and carried by the broadcast among members only.
Every message is judged before the broadcast takes it (a refused one is neither
stored, shown, cached nor passed on), and stored before it is shown.

Neighbours: a few of the joined members that are online, chosen by the room overlay
(mesh/room_overlay.py: each member's ring neighbours on two hash rings keyed by the
room id, at most 4 up to the 256-member limit). The broadcast prunes redundant links
into a tree, so a message costs about one payload and one or two announcements per
member, whatever the room's size. docs/protocol.md §14 and §15 are the rulebook.

The parts, each in its module: service.py (the face: commands, inputs, sessions and
presence, the run loop), state.py (what the parts share), membership.py (changes to
the rooms we are in), invitations.py (rooms we are invited to), outbox.py (pairwise
sends that wait for the link), broadcast.py (the trees, judging and parking room
messages) and storing.py (storing them, or holding them while the disk is full).
"""

from p2pchat.node.rooms.broadcast import PARK_SECONDS, REFUSAL_BURST, REFUSAL_RATE
from p2pchat.node.rooms.invitations import MAX_PENDING_INVITES
from p2pchat.node.rooms.membership import MAX_INVITE_SENDS
from p2pchat.node.rooms.outbox import PAIRWISE_RETRY
from p2pchat.node.rooms.service import ROOM_WIRE, RoomService
from p2pchat.node.rooms.state import LOG_INTERVAL, MAX_PARKED

__all__ = [
    "LOG_INTERVAL",
    "MAX_INVITE_SENDS",
    "MAX_PARKED",
    "MAX_PENDING_INVITES",
    "PAIRWISE_RETRY",
    "PARK_SECONDS",
    "REFUSAL_BURST",
    "REFUSAL_RATE",
    "ROOM_WIRE",
    "RoomService",
]
