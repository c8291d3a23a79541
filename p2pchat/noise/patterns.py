"""Noise handshake patterns as data, and protocol-name parsing (spec rev 34, §7, §9, §10).

Names may carry psk modifiers (§9.2), several joined by ``+`` as in ``XXpsk0+psk3``:
``psk0`` puts a ``psk`` token first in message 1, ``pskN`` last in message N.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from p2pchat.errors import LocalProtocolError


class UnsupportedProtocol(LocalProtocolError):
    """A protocol name this engine does not implement (another DH, cipher, hash or modifier)."""


# name: (initiator pre-message, responder pre-message, messages). Messages alternate
# initiator -> responder, responder -> initiator, starting with the initiator.
# Written exactly as in the specification's pattern listings.
_PATTERN_TEXT: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # one-way (§7.4)
    "N": ("", "s", ("e, es",)),
    "K": ("s", "s", ("e, es, ss",)),
    "X": ("", "s", ("e, es, s, ss",)),
    # fundamental interactive (§7.5)
    "NN": ("", "", ("e", "e, ee")),
    "NK": ("", "s", ("e, es", "e, ee")),
    "NX": ("", "", ("e", "e, ee, s, es")),
    "KN": ("s", "", ("e", "e, ee, se")),
    "KK": ("s", "s", ("e, es, ss", "e, ee, se")),
    "KX": ("s", "", ("e", "e, ee, se, s, es")),
    "XN": ("", "", ("e", "e, ee", "s, se")),
    "XK": ("", "s", ("e, es", "e, ee", "s, se")),
    "XX": ("", "", ("e", "e, ee, s, es", "s, se")),
    "IN": ("", "", ("e, s", "e, ee, se")),
    "IK": ("", "s", ("e, es, s, ss", "e, ee, se")),
    "IX": ("", "", ("e, s", "e, ee, se, s, es")),
    # deferred (§18.2)
    "NK1": ("", "s", ("e", "e, ee, es")),
    "NX1": ("", "", ("e", "e, ee, s", "es")),
    "X1N": ("", "", ("e", "e, ee", "s", "se")),
    "X1K": ("", "s", ("e, es", "e, ee", "s", "se")),
    "XK1": ("", "s", ("e", "e, ee, es", "s, se")),
    "X1K1": ("", "s", ("e", "e, ee, es", "s", "se")),
    "X1X": ("", "", ("e", "e, ee, s, es", "s", "se")),
    "XX1": ("", "", ("e", "e, ee, s", "es, s, se")),
    "X1X1": ("", "", ("e", "e, ee, s", "es, s", "se")),
    "K1N": ("s", "", ("e", "e, ee", "se")),
    "K1K": ("s", "s", ("e, es", "e, ee", "se")),
    "KK1": ("s", "s", ("e", "e, ee, se, es")),
    "K1K1": ("s", "s", ("e", "e, ee, es", "se")),
    "K1X": ("s", "", ("e", "e, ee, s, es", "se")),
    "KX1": ("s", "", ("e", "e, ee, se, s", "es")),
    "K1X1": ("s", "", ("e", "e, ee, s", "se, es")),
    "I1N": ("", "", ("e, s", "e, ee", "se")),
    "I1K": ("", "s", ("e, es, s", "e, ee", "se")),
    "IK1": ("", "s", ("e, s", "e, ee, se, es")),
    "I1K1": ("", "s", ("e, s", "e, ee, es", "se")),
    "I1X": ("", "", ("e, s", "e, ee, s, es", "se")),
    "IX1": ("", "", ("e, s", "e, ee, se, s", "es")),
    "I1X1": ("", "", ("e, s", "e, ee, s", "se, es")),
}

ONE_WAY = frozenset({"N", "K", "X"})
SUPPORTED_SUITE = ("25519", "ChaChaPoly", "BLAKE2b")


def _tokens(text: str) -> tuple[str, ...]:
    return tuple(token.strip() for token in text.split(",") if token.strip())


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    name: str
    initiator_pre: tuple[str, ...]
    responder_pre: tuple[str, ...]
    messages: tuple[tuple[str, ...], ...]
    psk_count: int

    @property
    def one_way(self) -> bool:
        return self.name in ONE_WAY


def pattern(base: str, modifiers: tuple[str, ...] = ()) -> HandshakePattern:
    """The pattern ``base`` with ``modifiers`` (``psk0``, ``psk2``, ...) applied per §9.2."""
    if base not in _PATTERN_TEXT:
        raise UnsupportedProtocol(f"unknown handshake pattern {base!r}")
    initiator_pre, responder_pre, messages_text = _PATTERN_TEXT[base]
    messages = [list(_tokens(message)) for message in messages_text]
    psk_count = 0
    for modifier in modifiers:
        match = re.fullmatch(r"psk(0|[1-9][0-9]*)", modifier)
        if match is None:
            raise UnsupportedProtocol(f"unsupported pattern modifier {modifier!r}")
        position = int(match.group(1))
        if position == 0:
            messages[0].insert(0, "psk")
        elif position <= len(messages):
            messages[position - 1].append("psk")
        else:
            raise UnsupportedProtocol(f"{modifier} is beyond the last message of {base}")
        psk_count += 1
    return HandshakePattern(
        name=base,
        initiator_pre=_tokens(initiator_pre),
        responder_pre=_tokens(responder_pre),
        messages=tuple(tuple(message) for message in messages),
        psk_count=psk_count,
    )


def all_pattern_names() -> tuple[str, ...]:
    return tuple(_PATTERN_TEXT)


@dataclass(frozen=True, slots=True)
class ProtocolName:
    pattern: HandshakePattern
    dh: str
    cipher: str
    hash: str


def parse_protocol_name(name: str) -> ProtocolName:
    """Parse ``Noise_<pattern><modifiers>_<dh>_<cipher>_<hash>``."""
    parts = name.split("_")
    if len(parts) != 5 or parts[0] != "Noise":
        raise UnsupportedProtocol(f"not a Noise protocol name: {name!r}")
    match = re.fullmatch(r"([NKXI]1?[NKX]?1?)([a-z][a-z0-9+]*)?", parts[1])
    if match is None:
        raise UnsupportedProtocol(f"cannot parse the pattern in {name!r}")
    base, modifier_text = match.group(1), match.group(2) or ""
    if (parts[2], parts[3], parts[4]) != SUPPORTED_SUITE:
        raise UnsupportedProtocol(f"only the 25519_ChaChaPoly_BLAKE2b suite is implemented: {name}")
    modifiers = tuple(modifier_text.split("+")) if modifier_text else ()
    return ProtocolName(pattern(base, modifiers), parts[2], parts[3], parts[4])
