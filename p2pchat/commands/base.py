"""What every family of commands shares: the one error type, the identity, the store,
the node when one runs, and the one naming rule applied to what they know.

A command is one user action (or one read a front end needs) with typed arguments and
a typed answer. The chat rules' refusals (``ValueError``) and the store's or the disk's
failures (:class:`~p2pchat.errors.P2PChatError`) leave a command as a
:class:`CommandError` caused by them, so a front end catches one type and still finds
the disk's fault code through :func:`~p2pchat.diskfaults.disk_fault`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from p2pchat.chat.names import person_name
from p2pchat.errors import P2PChatError
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.node.chat import ChatService
from p2pchat.node.events import Presence
from p2pchat.node.node import Node
from p2pchat.node.rooms import RoomService
from p2pchat.store import Store

NO_NODE = "no node is running for this profile: start p2pchat daemon"
NO_STORE = "this node runs without a message store"


class CommandError(P2PChatError):
    """A user action that cannot be carried out; ``str()`` is a sentence for a person
    (a P2PChatError, so a command line that meets one prints it and exits).

    ``fault``: the action failed (the store or the disk refused it, nothing was done:
    it may be tried again), as opposed to being refused by a rule or a bad argument.
    """

    def __init__(self, message: str, *, fault: bool = False) -> None:
        super().__init__(message)
        self.fault = fault


@contextmanager
def readable_errors() -> Iterator[None]:
    """Turn a chat rule's refusal or a store failure into a CommandError (caused by it)."""
    try:
        yield
    except CommandError:
        raise
    except ValueError as error:
        raise CommandError(str(error)) from error
    except P2PChatError as error:
        raise CommandError(str(error), fault=True) from error


class CommandContext:
    """The state every command family works on. ``node`` is None when no node runs for
    the profile: the commands that need one say so; the others work on the store."""

    def __init__(self, identity: Identity, store: Store, node: Node | None = None) -> None:
        self.identity = identity
        self._store = store
        self.node = node

    @property
    def me(self) -> bytes:
        return self.identity.public_key

    def attach(self, node: Node | None) -> None:
        """The node that now runs for the profile (None: it stopped)."""
        self.node = node

    # ------------------------------------------------------------------ naming

    def presence(self, peer: bytes) -> Presence | None:
        """How ``peer`` looks on the mesh now, if a node runs and knows it."""
        if self.node is None or self.node.mesh is None:
            return None
        return self.node.presence_of(encode_peer_id(peer))

    def name_of(self, peer: bytes) -> str:
        """What to call ``peer`` (chat/names.py), or "" when only its id is known."""
        with readable_errors():
            contact = self._store.contact(peer)
            presence = self.presence(peer)
            request = self._store.request(peer) if presence is None else None
        nick = presence.nick if presence else self.room_nick(peer)
        return person_name(
            contact_name=contact.name if contact else "",
            nick=nick,
            request_nick=request.nick if request else "",
        )

    def room_nick(self, peer: bytes) -> str:
        """The nick ``peer``'s latest room message carried, if a node runs and one came
        (a fellow room member we see no presence of)."""
        rooms = None if self.node is None else self.node.rooms
        return "" if rooms is None else rooms.nick_of(peer)

    # ------------------------------------------------------------------ requirements

    def require_node(self) -> Node:
        if self.node is None:
            raise CommandError(NO_NODE)
        return self.node

    def _chat(self) -> ChatService:
        chat = self.require_node().chat
        if chat is None:
            raise CommandError(NO_STORE)
        return chat

    def _running_chat(self) -> ChatService | None:
        """The node's chat service, or None to work on the store alone."""
        return self.node.chat if self.node is not None else None

    def _rooms(self) -> RoomService:
        rooms = self.require_node().rooms
        if rooms is None:
            raise CommandError(NO_STORE)
        return rooms
