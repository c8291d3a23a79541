"""The JSON-lines API's commands about the network (docs/api.md): ``peers`` (p2pchat's
and, while the bridge runs, XMPP link-local ones), ``networks_reload``, and reaching
peers: ``invite``, ``connect`` and ``ping``. Each parses its arguments, calls the command
layer's network family (:mod:`p2pchat.commands.network`) and writes the answer as JSON.

A mixin of :class:`~p2pchat.api.handler.ApiHandler`, one family of commands per module as
:class:`~p2pchat.commands.Commands` is built; the handler's table maps each name here.
"""

from __future__ import annotations

from typing import Any

from p2pchat.api.link_local import LinkLocalApi
from p2pchat.api.protocol import ApiError, int_arg, milliseconds, peer_arg, str_arg
from p2pchat.commands import CommandError, Commands, Peer
from p2pchat.identity import Identity, encode_peer_id
from p2pchat.wire.messages import MAX_PING_DATA

MAX_PINGS = 10  # per ping command: within the peer's Ping rate (docs/protocol.md §6)


class NetworkApi:
    """Who is there, the private networks read again, invite codes, connecting, ping."""

    identity: Identity
    actions: Commands
    link_local: LinkLocalApi

    async def peers(self, command: dict[str, Any]) -> dict[str, Any]:
        ours = [_peer_json(peer) for peer in self.actions.peers()]
        return {"peers": ours + self.link_local.peers()}

    async def networks_reload(self, command: dict[str, Any]) -> dict[str, Any]:
        return {"networks": self.actions.reload_networks()}

    async def invite(self, command: dict[str, Any]) -> dict[str, Any]:
        invitation = self.actions.invite()
        return {
            "invite": invitation.code,
            "id": self.identity.peer_id,
            "addresses": invitation.addresses,
            "expires": invitation.expires,
        }

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        self.actions.require_node()
        target = str_arg(command, "target")
        try:
            targets = self.actions.parse_target(target)
        except CommandError as error:
            raise ApiError(f'"target": {error}') from None
        outcome = await self.actions.connect(targets)
        return {
            "state": outcome.state,
            "id": outcome.peer_id,
            "address": outcome.address,
            "detail": outcome.detail,
            **({"code": outcome.code} if outcome.code is not None else {}),
            "contact": outcome.contact,
        }

    async def tor(self, command: dict[str, Any]) -> dict[str, Any]:
        """Where the node's own tor stands (as its last ``tor`` event said), or
        ``"off"`` when the node runs without --tor."""
        node = self.actions.require_node()
        if node.onion is None:
            return {"state": "off", "progress": 0, "step": "", "address": "", "reason": ""}
        state = node.onion.state
        return {"state": state.state, "progress": state.progress, "step": state.step,
                "address": state.address, "reason": state.reason}  # fmt: skip

    async def ping(self, command: dict[str, Any]) -> dict[str, Any]:
        self.actions.require_node()
        peer = peer_arg(command, "id")
        count = int_arg(command, "count", 1, 1, MAX_PINGS)
        size = int_arg(command, "size", 0, 0, MAX_PING_DATA)
        result = await self.actions.ping(peer, count=count, size=size)
        rtts = [round(rtt * 1000, 3) for rtt in result.rtts]
        return {
            "id": encode_peer_id(peer),
            "address": result.address,
            "rtt_ms": rtts,
            "min_ms": min(rtts),
            "avg_ms": round(sum(rtts) / len(rtts), 3),
            "max_ms": max(rtts),
        }


def _peer_json(peer: Peer) -> dict[str, Any]:
    presence = peer.presence
    return {
        "id": encode_peer_id(presence.peer),
        "protocol": "p2pchat",
        "nick": presence.nick,
        "status": presence.status,
        "status_text": presence.status_text,
        "state": presence.state,
        "proven": presence.proven,
        "connected": peer.connected,
        "network": peer.network,
        "via": peer.via,
        "rtt_ms": milliseconds(peer.rtt),
    }
