"""The msgpack codec: wire dataclasses to bytes and back, strictly.

Encoding: a message is the msgpack array ``[type_id, {field_name: value, ...}]``.
Decoding checks every field against the schema (types, lengths, required fields)
and bounds the input before parsing it; anything wrong is a RemoteProtocolError.
Unknown fields are ignored and unknown type ids decode to :class:`UnknownMessage`,
so a newer peer can talk to an older one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from p2pchat.errors import LocalProtocolError, RemoteProtocolError
from p2pchat.wire.messages import MESSAGE_TYPES
from p2pchat.wire.padding import padme

# The largest message any peer must accept (docs/protocol.md §4.2, §9). Our largest is
# a MeshGossip of 256 records at their limits (~2.4 MB; typically ~64 KB), then an
# Envelopes of 64 sealed boxes (~1.4 MB); tests/wire/test_limits.py checks every type.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_STR_CHARS = 4096
DEFAULT_MAX_ITEMS = 1024
MAX_MAP_ENTRIES = 256

Checker = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message whose type id this version does not know; the session skips it."""

    TYPE_ID: ClassVar[int] = -1
    type_id: int


def _bad(field_path: str, problem: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"field {field_path!r} {problem}", code="bad-message")


def _check_int(path: str) -> Checker:
    def check(value: Any) -> Any:
        if type(value) is not int:
            raise _bad(path, f"must be an integer, got {type(value).__name__}")
        return value

    return check


def _check_bool(path: str) -> Checker:
    def check(value: Any) -> Any:
        if type(value) is not bool:
            raise _bad(path, f"must be a boolean, got {type(value).__name__}")
        return value

    return check


def _check_float(path: str) -> Checker:
    def check(value: Any) -> Any:
        if type(value) is float:
            return value
        if type(value) is int:
            return float(value)
        raise _bad(path, f"must be a number, got {type(value).__name__}")

    return check


def _check_sized(
    path: str,
    kind: type[str] | type[bytes],
    max_len: int | None,
    size: int | None,
    default_max: int | None,
) -> Checker:
    bound = max_len if max_len is not None else default_max
    kind_name = "bytes" if kind is bytes else "a string"

    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise _bad(path, f"must be {kind_name}, got {type(value).__name__}")
        if size is not None and len(value) != size:
            raise _bad(path, f"must have length {size}, has {len(value)}")
        if bound is not None and len(value) > bound:
            raise _bad(path, f"is longer than {bound}")
        return value

    return check


def _check_sequence(path: str, item: Checker, max_len: int | None) -> Checker:
    bound = max_len if max_len is not None else DEFAULT_MAX_ITEMS

    def check(value: Any) -> Any:
        if type(value) is not list:
            raise _bad(path, f"must be an array, got {type(value).__name__}")
        if len(value) > bound:
            raise _bad(path, f"has more than {bound} items")
        return tuple(item(element) for element in value)

    return check


def _check_optional(inner: Checker) -> Checker:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    check: Checker
    required: bool


class _StructSpec:
    """How to check and build one dataclass from a decoded msgpack map."""

    __slots__ = ("bytes_fields", "cls", "fields", "names")

    def __init__(self, cls: type[Any], path: str) -> None:
        hints = typing.get_type_hints(cls)
        self.cls = cls
        self.fields: list[_FieldSpec] = []
        for spec in dataclasses.fields(cls):
            checker = _compile(hints[spec.name], f"{path}.{spec.name}", spec.metadata)
            required = (
                spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
            )
            self.fields.append(_FieldSpec(spec.name, checker, required))
        self.names = tuple(field_spec.name for field_spec in self.fields)
        self.bytes_fields = tuple(
            name for name in self.names if hints[name] in (bytes, bytes | None)
        )

    def build(self, value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise _bad(path, f"must be a map, got {type(value).__name__}")
        arguments: dict[str, Any] = {}
        for field_spec in self.fields:
            if field_spec.name in value:
                arguments[field_spec.name] = field_spec.check(value[field_spec.name])
            elif field_spec.required:
                raise _bad(f"{path}.{field_spec.name}", "is required but missing")
        try:
            return self.cls(**arguments)
        except (TypeError, ValueError) as exc:  # a dataclass's own __post_init__ checks
            raise _bad(path, f"is invalid: {exc}") from exc


def _compile(hint: Any, path: str, metadata: Any) -> Checker:
    max_len = metadata.get("max_len") if metadata else None
    size = metadata.get("size") if metadata else None
    origin = typing.get_origin(hint)
    if hint is int:
        return _check_int(path)
    if hint is bool:
        return _check_bool(path)
    if hint is float:
        return _check_float(path)
    if hint is str:
        return _check_sized(path, str, max_len, size, DEFAULT_MAX_STR_CHARS)
    if hint is bytes:
        return _check_sized(path, bytes, max_len, size, None)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"{path}: only `X | None` unions are supported on the wire")
        return _check_optional(_compile(members[0], path, metadata))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{path}: use tuple[X, ...] for wire sequences")
        item_max_len = metadata.get("item_max_len") if metadata else None
        item_limits = {"max_len": item_max_len} if item_max_len is not None else {}
        return _check_sequence(path, _compile(args[0], f"{path}[]", item_limits), max_len)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        struct = _StructSpec(hint, path)
        return lambda value: struct.build(value, path)
    raise TypeError(f"{path}: type {hint!r} cannot go on the wire")


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _to_wire(obj: Any) -> Any:
    """msgpack ``default`` hook: nested dataclasses become maps."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
            raise LocalProtocolError(f"{type(obj).__name__} cannot be encoded for the wire")
        names = _FIELD_NAMES[type(obj)] = tuple(spec.name for spec in dataclasses.fields(obj))
    return {name: getattr(obj, name) for name in names}


def _body(message: Any) -> dict[str, Any]:
    """The fields of a registered wire message, by name, as the encoding carries them."""
    spec = _specs().get(getattr(message, "TYPE_ID", -1))
    if spec is None or spec.cls is not type(message):
        raise LocalProtocolError(f"{type(message).__name__} is not a registered wire message")
    return {name: getattr(message, name) for name in spec.names}


# One packer for the process: creating one per call costs more than packing a small message.
# Packing is synchronous and the codec is only used from the trio thread.
PAD_FIELD = "pad"  # reserved in every message: padding, ignored as unknown (§5)
_pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True, default=_to_wire).pack


LARGE_BYTES = 8192  # byte strings this long are passed by reference in encode_pieces
# ... of these types (a bytearray: a file block read in place, p2pchat/node/files/disk.py).
_BYTES = (bytes, bytearray)


def _map_header(entries: int) -> bytes:
    if entries < 16:
        return bytes((0x80 | entries,))
    return b"\xde" + entries.to_bytes(2, "big")


def _bin_header(size: int) -> bytes:
    if size < 0x100:
        return b"\xc4" + bytes((size,))
    if size < 0x10000:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def _refuse_ext(code: int, data: bytes) -> Any:
    raise RemoteProtocolError(f"msgpack extension type {code} is not allowed", code="bad-message")


_compiled: dict[int, _StructSpec] = {}


def _specs() -> dict[int, _StructSpec]:
    """The compiled schema, shared by every codec; extended when new types register."""
    if len(_compiled) != len(MESSAGE_TYPES):
        for type_id, cls in MESSAGE_TYPES.items():
            if type_id not in _compiled:
                _compiled[type_id] = _StructSpec(cls, cls.__name__)
    return _compiled


def signed_fields(message: Any, *, omit: str | frozenset[str] = "signature") -> bytes:
    """The canonical bytes a signature covers: every field but those in ``omit``, in
    declaration order, as one msgpack array (arrays, unlike maps, have one encoding)."""
    spec = _specs().get(getattr(message, "TYPE_ID", -1))
    if spec is None or spec.cls is not type(message):
        raise LocalProtocolError(f"{type(message).__name__} is not a registered wire message")
    left_out = frozenset((omit,)) if isinstance(omit, str) else omit
    return _pack([getattr(message, name) for name in spec.names if name not in left_out])


class Codec:
    """Encodes and decodes the messages registered in :mod:`p2pchat.wire.messages`.

    Cheap to create: the schema is compiled once per process and shared.
    """

    __slots__ = ("max_message_bytes",)

    def __init__(self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes

    def encode(self, message: Any) -> bytes:
        body = _body(message)  # first: it refuses what is not a wire message
        return self._within_limit(message, _pack([message.TYPE_ID, body]))

    def encode_padded(self, message: Any, overhead: int = 0) -> bytes:
        """:meth:`encode`, with a ``pad`` field of zero bytes (§5: no message has a field
        of that name, and unknown fields are ignored) so that the encoding plus
        ``overhead`` bytes is a Padmé size (§4.2), or up to 2 bytes over where the
        field's length header grows. What a sealed envelope's box holds (§13.4): a relay
        then sees a size class, not the length of the text."""
        body = _body(message)
        body[PAD_FIELD] = b""
        bare = len(_pack([message.TYPE_ID, body]))
        target = padme(bare + overhead) - overhead
        body[PAD_FIELD] = bytes(target - bare)
        encoded: bytes = _pack([message.TYPE_ID, body])
        over = len(encoded) - target  # the bin header grew: take it off the filler
        if over > 0 and target - bare > over:
            body[PAD_FIELD] = bytes(target - bare - over)
            encoded = _pack([message.TYPE_ID, body])
        return self._within_limit(message, encoded)

    def _within_limit(self, message: Any, encoded: bytes) -> bytes:
        if len(encoded) > self.max_message_bytes:
            raise LocalProtocolError(
                f"{type(message).__name__} encodes to {len(encoded)} bytes, over the "
                f"{self.max_message_bytes}-byte limit"
            )
        return encoded

    def encode_pieces(self, message: Any) -> list[bytes | memoryview]:
        """Like :meth:`encode`, as pieces whose concatenation is the encoding.

        Byte strings of at least LARGE_BYTES are not copied: they appear as their own
        piece, referenced, right after a piece ending in their msgpack bin header. A
        sender that copies pieces straight into its frames saves two copies of every
        large payload.
        """
        spec = _specs().get(getattr(message, "TYPE_ID", -1))
        if spec is None or spec.cls is not type(message):
            raise LocalProtocolError(f"{type(message).__name__} is not a registered wire message")
        if not any(
            type(value := getattr(message, name)) in _BYTES and len(value) >= LARGE_BYTES
            for name in spec.bytes_fields
        ):
            return [self.encode(message)]
        pieces: list[bytes | memoryview] = []
        head = bytearray(b"\x92")
        head += _pack(message.TYPE_ID)
        head += _map_header(len(spec.names))
        total = 0
        for name in spec.names:
            value = getattr(message, name)
            head += _pack(name)
            if type(value) in _BYTES and len(value) >= LARGE_BYTES:
                head += _bin_header(len(value))
                pieces += (bytes(head), value)
                total += len(head) + len(value)
                head.clear()
            else:
                head += _pack(value)
        pieces.append(bytes(head))
        total += len(head)
        if total > self.max_message_bytes:
            raise LocalProtocolError(
                f"{type(message).__name__} encodes to {total} bytes, over the "
                f"{self.max_message_bytes}-byte limit"
            )
        return pieces

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """Decode one message; RemoteProtocolError for anything the schema does not allow."""
        if len(data) > self.max_message_bytes:
            raise RemoteProtocolError(
                f"message of {len(data)} bytes exceeds the {self.max_message_bytes}-byte limit",
                code="too-large",
            )
        try:
            top = msgpack.unpackb(
                data,
                raw=False,
                use_list=True,
                strict_map_key=True,
                ext_hook=_refuse_ext,
                max_str_len=self.max_message_bytes,
                max_bin_len=self.max_message_bytes,
                max_array_len=DEFAULT_MAX_ITEMS * 64,
                max_map_len=MAX_MAP_ENTRIES,
                max_ext_len=0,
            )
        except RemoteProtocolError:
            raise
        except Exception as exc:  # msgpack raises a zoo of types for bad input
            raise RemoteProtocolError(f"undecodable message: {exc}", code="bad-message") from exc
        if type(top) is not list or len(top) != 2 or type(top[0]) is not int:
            raise RemoteProtocolError(
                "a message must be the array [type_id, body]", code="bad-message"
            )
        type_id, body = top
        spec = _specs().get(type_id)
        if spec is None:
            if type(body) is not dict:
                raise RemoteProtocolError("a message body must be a map", code="bad-message")
            return UnknownMessage(type_id)
        return spec.build(body, spec.cls.__name__)
