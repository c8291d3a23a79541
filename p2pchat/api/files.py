"""The JSON-lines API's file commands (docs/api.md): ``send_file`` (to a person or a
room), ``files`` and the answers to an offer, ``file_accept``, ``file_decline`` and
``file_cancel``. Each parses its arguments, calls the command layer's file family
(:mod:`p2pchat.commands.files`) and writes the transfer as JSON.

A mixin of :class:`~p2pchat.api.handler.ApiHandler`, one family of commands per module as
:class:`~p2pchat.commands.Commands` is built; the handler's table maps each name here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2pchat.api.protocol import (
    ApiError,
    hex_id,
    int_arg,
    peer_arg,
    room_arg,
    str_arg,
    transfer_json,
)
from p2pchat.commands import Commands


class FileApi:
    """Files: offering one, listing offers and transfers, answering an offer."""

    actions: Commands

    async def send_file(self, command: dict[str, Any]) -> dict[str, Any]:
        path = str_arg(command, "path")
        if not path or "\0" in path:
            raise ApiError('"path" must name a file')
        if "room" in command:
            if "to" in command:
                raise ApiError('give "to" (a person) or "room", not both')
            transfer = await self.actions.share_file(room_arg(command), Path(path))
        else:
            transfer = await self.actions.send_file(peer_arg(command, "to"), Path(path))
        return {"file": transfer_json(transfer, 0)}

    async def files(self, command: dict[str, Any]) -> dict[str, Any]:
        if "offer" in command:
            rows = [self.actions.transfer(_offer_arg(command))]
        else:
            peer = peer_arg(command, "with") if "with" in command else None
            rows = self.actions.transfers(peer)[: int_arg(command, "limit", 100, 1, 10_000)]
        actions = self.actions
        return {"files": [transfer_json(t, actions.transferred(t), actions.uploaded(t.offer_id),
                                        actions.name_of(t.peer))
                          for t in rows]}  # fmt: skip

    async def file_accept(self, command: dict[str, Any]) -> dict[str, Any]:
        save_to = str_arg(command, "save_to", "")
        if "\0" in save_to:
            raise ApiError('"save_to" must be a folder or a new file\'s path')
        chosen = Path(save_to) if save_to else None
        transfer = self.actions.accept_file(_offer_arg(command), chosen)
        return {"file": transfer_json(transfer, self.actions.transferred(transfer))}

    async def file_decline(self, command: dict[str, Any]) -> dict[str, Any]:
        reason = str_arg(command, "reason", "")[:256]
        transfer = self.actions.decline_file(_offer_arg(command), reason)
        return {"file": transfer_json(transfer, 0)}

    async def file_cancel(self, command: dict[str, Any]) -> dict[str, Any]:
        reason = str_arg(command, "reason", "cancelled")[:256]
        transfer = self.actions.cancel_file(_offer_arg(command), reason)
        return {"file": transfer_json(transfer, self.actions.transferred(transfer))}


def _offer_arg(command: dict[str, Any]) -> bytes:
    return hex_id(str_arg(command, "offer"), "offer", "a file offer id")
