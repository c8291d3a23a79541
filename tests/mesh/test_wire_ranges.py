"""Integer ranges of the mesh messages (docs/protocol.md §6): outside them a message is
malformed (bad-message), however deeply the number is nested; the bounds themselves pass."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from p2pchat.errors import RemoteProtocolError
from p2pchat.wire.codec import Codec

TOP = 2**63 - 1
OWNER = b"\x01" * 32


def record(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"owner": OWNER, "version": 1, "nick": "n", "status": "avail",
                              "status_text": "", "addresses": [], "protocol": 1,
                              "signature": bytes(64)}  # fmt: skip
    fields.update(changes)
    return fields


def claim(version: int) -> dict[str, Any]:
    return {"subject": OWNER, "version": version, "state": "suspect", "accuser": OWNER}


def digest(version: int) -> dict[str, Any]:
    return {"summary": bytes(16), "entries": [{"owner": OWNER, "version": version}]}


def decode(type_id: int, body: dict[str, Any]) -> Any:
    return Codec().decode(msgpack.packb([type_id, body], use_bin_type=True))


VALID = [
    (20, {"seq": 0}),
    (21, {"seq": TOP}),
    (22, {"seq": TOP, "target": OWNER}),
    (23, {"seq": 0, "target": OWNER}),
    (24, {"records": [record(version=1), record(version=TOP, protocol=65_535)]}),
    (24, {"claims": [claim(1), claim(TOP)]}),
    (28, digest(0)),
    (28, digest(TOP)),
]

MALFORMED = [
    (20, {"seq": -1}),
    (21, {"seq": TOP + 1}),
    (22, {"seq": 2**64 - 1, "target": OWNER}),
    (23, {"seq": -(2**63), "target": OWNER}),
    (20, {"seq": 1, "records": [record(version=0)]}),
    (24, {"records": [record(version=TOP + 1)]}),
    (24, {"records": [record(), record(protocol=0)]}),
    (24, {"records": [record(protocol=65_536)]}),
    (24, {"records": [{k: v for k, v in record().items() if k != "version"}]}),
    (24, {"claims": [claim(0)]}),
    (21, {"seq": 1, "claims": [claim(-5)]}),
    (28, digest(-1)),
    (28, digest(TOP + 1)),
    (28, {"summary": bytes(16), "entries": [{"owner": OWNER}]}),
]


@pytest.mark.parametrize(("type_id", "body"), VALID)
def test_numbers_at_the_bounds_decode(type_id: int, body: dict[str, Any]) -> None:
    decode(type_id, body)


@pytest.mark.parametrize(("type_id", "body"), MALFORMED)
def test_numbers_outside_the_bounds_are_bad_messages(type_id: int, body: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode(type_id, body)
    assert caught.value.code == "bad-message"
