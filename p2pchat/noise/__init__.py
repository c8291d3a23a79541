"""The Noise Protocol Framework (revision 34), suite 25519_ChaChaPoly_BLAKE2b, on PyNaCl."""

from p2pchat.noise.cipherstate import CipherState
from p2pchat.noise.handshakestate import HandshakeState
from p2pchat.noise.patterns import UnsupportedProtocol, all_pattern_names, parse_protocol_name
from p2pchat.noise.symmetricstate import SymmetricState

__all__ = [
    "CipherState",
    "HandshakeState",
    "SymmetricState",
    "UnsupportedProtocol",
    "all_pattern_names",
    "parse_protocol_name",
]
