"""Chat messages on the wire: out-of-range values are malformed, not crashes later on."""

from __future__ import annotations

import msgpack
import pytest

from p2pchat.errors import RemoteProtocolError
from p2pchat.wire.codec import Codec


@pytest.mark.parametrize(
    "body",
    [
        {"msg_id": bytes(16), "clock": 1, "time": 2**63, "text": "x"},
        {"msg_id": bytes(16), "clock": 2**64 - 1, "time": 0, "text": "x"},
        {"msg_id": bytes(15), "clock": 1, "time": 0, "text": "x"},
        {"msg_id": bytes(16), "clock": 1, "time": 0, "text": "x" * 4097},
    ],
)
def test_bad_chat_messages_are_remote_errors(body: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        Codec().decode(msgpack.packb([30, body], use_bin_type=True))


@pytest.mark.parametrize(
    "body",
    [
        {"state": "lost", "msg_ids": []},
        {"state": "read", "msg_ids": [bytes(3)]},
        {"state": "read", "msg_ids": [bytes(16)] * 257},
    ],
)
def test_bad_receipts_are_remote_errors(body: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        Codec().decode(msgpack.packb([31, body], use_bin_type=True))


def test_an_envelope_with_an_overlong_expiry_is_malformed() -> None:
    sealed = {
        "envelope_id": bytes(16),
        "sender": bytes(32),
        "recipient": bytes(32),
        "expires": 2**64 - 1,
        "box": b"",
        "signature": bytes(64),
    }
    with pytest.raises(RemoteProtocolError):
        Codec().decode(msgpack.packb([32, {"envelopes": [sealed]}], use_bin_type=True))
