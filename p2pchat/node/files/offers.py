"""The rules for files offered to us (docs/protocol.md §16.3), apart from the downloads
that follow: how many offers may wait for our user's say, and whether a download can
start where the user wants the file."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from p2pchat.chat.gate import Relation
from p2pchat.node.files.disk import partial_path
from p2pchat.store import FileTransfer, Store

# Room kept free on the disk beyond the file itself, when a download starts.
SPARE_BYTES = 64 << 20
# The answer that says where an offer made to us stands, by its state.
ANSWER_FOR = {"offered": "received", "accepted": "accept", "declined": "decline",
              "done": "done", "cancelled": "cancel", "failed": "cancel"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class OfferLimits:
    """Offers waiting for our user's say: a peer cannot fill the list or the disk."""

    per_contact: int = 32
    per_stranger: int = 4
    in_all: int = 256
    max_size: int = 1 << 40  # 1 TiB: larger offers are declined at once
    # A contact's file up to this size is accepted without asking (0: never, the
    # default); a stranger's never is.
    auto_accept: int = 0


def refusal(store: Store, limits: OfferLimits, peer: bytes, relation: Relation, size: int) -> str:
    """Why an offer of ``size`` bytes from ``peer`` is declined at once ("" if kept)."""
    if size > limits.max_size:
        return f"too large: at most {limits.max_size} bytes"
    mine = store.count_transfers(outgoing=False, states=("offered",), peer=peer)
    share = limits.per_contact if relation is Relation.CONTACT else limits.per_stranger
    if mine >= share or store.count_transfers(outgoing=False, states=("offered",)) >= limits.in_all:
        return "too many offers waiting"
    return ""


def make_room(transfer: FileTransfer, folder: Path | None, save_to: Path | None) -> Path:
    """Check that ``transfer`` can be downloaded into ``folder`` (and saved at
    ``save_to``: a folder, or a new file's path) and make its empty partial file; its
    path. ValueError saying why not."""
    if transfer.outgoing or transfer.state != "offered":
        raise ValueError(f"offer {transfer.offer_id.hex()} is {transfer.state}, not waiting")
    if folder is None:
        raise ValueError("no downloads folder is set")
    if save_to is not None:
        target = save_to if save_to.is_dir() else save_to.parent
        if not target.is_dir():
            raise ValueError(f"no folder {target} to save it in")
        if not os.access(target, os.W_OK):
            raise ValueError(f"cannot write in {target}")
    part = partial_path(folder, transfer.offer_id)
    part.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(part.parent).free
    if free < transfer.size + SPARE_BYTES:
        raise ValueError(f"not enough space in {folder}: {transfer.size} bytes needed, {free} free")
    part.touch(mode=0o600)
    return part
