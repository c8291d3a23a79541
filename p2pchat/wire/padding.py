"""Padmé: the size a padded plaintext is sent at (docs/protocol.md §4.2), used by the
transport's records (padding/1) and by sealed envelopes (§13.4)."""

from __future__ import annotations

__all__ = ["padme"]


def padme(length: int) -> int:
    """Padmé (the PURBs paper's padding): ``length`` rounded up so that only its
    top log2(log2(length)) + 1 bits may be set — at most about 12 % more, and a
    plaintext's size says at most O(log log) bits about what it held."""
    if length < 2:
        return length
    exponent = length.bit_length() - 1  # floor(log2(length))
    mantissa_bits = exponent.bit_length()  # floor(log2(exponent)) + 1
    mask = (1 << (exponent - mantissa_bits)) - 1
    return (length + mask) & ~mask
