"""The wire format: message schema, msgpack codec and length framing."""

from p2pchat.wire.codec import Codec, UnknownMessage
from p2pchat.wire.framing import FrameDecoder, encode_frame

__all__ = ["Codec", "FrameDecoder", "UnknownMessage", "encode_frame"]
