"""A test-only application message, registered in a type-id range no real message uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from p2pchat.wire.messages import wire_message

TEST_TYPE_ID = 60_001


@wire_message(TEST_TYPE_ID)
@dataclass(frozen=True, slots=True)
class Blob:
    TYPE_ID: ClassVar[int]
    data: bytes = b""
    seq: int = 0
