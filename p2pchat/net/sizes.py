"""How many bytes a wire message takes, estimated cheaply: queues are bounded by it."""

from __future__ import annotations

import dataclasses
from typing import Any

_FIELDS: dict[type, tuple[str, ...]] = {}
_SAMPLE = 16  # items looked at in a long sequence


def estimate_size(value: Any) -> int:
    """Roughly how many bytes ``value`` takes encoded (within a small factor), cheaply:
    a long sequence is judged by a sample of its items, so a 10,000-entry digest costs
    as much to weigh as a 16-entry one. Good enough to bound queues by bytes."""
    kind = type(value)
    if kind is bytes or kind is bytearray or kind is memoryview:
        return len(value) + 5
    if kind is str:
        return (len(value) if value.isascii() else len(value.encode())) + 5
    if kind is int:
        return 1 if -32 <= value < 128 else 9
    if kind is tuple or kind is list:
        count = len(value)
        if count <= _SAMPLE:
            return 5 + sum(estimate_size(item) for item in value)
        step = count // _SAMPLE
        sample = value[::step][:_SAMPLE]
        return 5 + count * sum(estimate_size(item) for item in sample) // len(sample)
    if kind is dict:
        return 5 + sum(estimate_size(k) + estimate_size(v) for k, v in value.items())
    names = _FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(kind):
            return 9  # a float, a boolean, nil
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return 3 + sum(len(name) + 1 + estimate_size(getattr(value, name)) for name in names)
