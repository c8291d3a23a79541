"""The command layer: every user action, once, as a typed call.

Sending, contacts and requests, blocking, verifying, presence, rooms, files, invite codes,
connecting, ping, history, search and the reads the front ends need (conversations, rooms,
members, the network checks). The JSON-lines API (:mod:`p2pchat.api.handler`) wraps
each command with argument parsing and turns its answer into JSON; the chat window
calls the commands directly; the command line reaches them through the API, over the
control socket or on a local node or store. So every front end does each thing the
same way, and the front ends need neither the store nor discovery: the values they
get back are re-exported here.

:class:`Commands` is built from one family per module (``people``, ``messages``,
``rooms``, ``network``, ``search``, ``notices``, ``files``, ``link_local``) over
:class:`~p2pchat.commands.base.CommandContext`. A command that cannot be carried out
raises :class:`CommandError` with a sentence for a person.
"""

from __future__ import annotations

from p2pchat.chat.rooms import Room
from p2pchat.commands.base import CommandError
from p2pchat.commands.files import FileCommands
from p2pchat.commands.link_local import LinkLocalCommands
from p2pchat.commands.messages import Delivery, MessageCommands
from p2pchat.commands.network import Connected, NetworkCommands, Peer, PingResult
from p2pchat.commands.networks import PrivateNetworkCommands
from p2pchat.commands.notices import NoticeCommands
from p2pchat.commands.people import PeopleCommands, Verification
from p2pchat.commands.rooms import JoinedRoom, Member, RoomCommands, RoomList
from p2pchat.commands.search import Found, SearchCommands
from p2pchat.discovery.doctor import Finding, Report
from p2pchat.discovery.known import Target
from p2pchat.node.node import Invitation
from p2pchat.store import (
    Contact,
    Conversation,
    FileTransfer,
    Notice,
    Request,
    RoomMessage,
    RoomRow,
    StoredMessage,
)
from p2pchat.store.link_local import LinkLocalRow
from p2pchat.wire.messages import RoomInvite


class Commands(
    PeopleCommands,
    MessageCommands,
    RoomCommands,
    NetworkCommands,
    PrivateNetworkCommands,
    SearchCommands,
    NoticeCommands,
    FileCommands,
    LinkLocalCommands,
):
    """Every command, on one profile's identity and store, and its node while one runs
    (:meth:`attach`)."""


__all__ = [
    "CommandError",
    "Commands",
    "Connected",
    "Contact",
    "Conversation",
    "Delivery",
    "FileTransfer",
    "Finding",
    "Found",
    "Invitation",
    "JoinedRoom",
    "LinkLocalRow",
    "Member",
    "Notice",
    "Peer",
    "PingResult",
    "Report",
    "Request",
    "Room",
    "RoomInvite",
    "RoomList",
    "RoomMessage",
    "RoomRow",
    "StoredMessage",
    "Target",
    "Verification",
]
