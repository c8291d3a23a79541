"""Run Noise test vectors in the cacophony JSON format.

    python -m p2pchat.noise.vectors FILE

Prints one line per failing vector and a last line ``N passed, M failed, K skipped``;
exits 1 if any vector failed or the file is unusable. Vectors for suites this engine
does not implement are skipped; psk vectors (fields ``init_psks``/``resp_psks``) run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pchat.errors import P2PChatError
from p2pchat.noise.cipherstate import CipherState
from p2pchat.noise.handshakestate import HandshakeState
from p2pchat.noise.patterns import UnsupportedProtocol, parse_protocol_name


@dataclass
class Result:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    psk_passed: int = 0  # of passed, those with psk modifiers
    failures: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


class VectorFailure(Exception):
    pass


def _hex(vector: dict[str, Any], key: str) -> bytes | None:
    value = vector.get(key)
    return bytes.fromhex(value) if isinstance(value, str) else None


def _side(vector: dict[str, Any], prefix: str, initiator: bool) -> HandshakeState:
    return HandshakeState(
        vector["protocol_name"],
        initiator=initiator,
        prologue=_hex(vector, f"{prefix}_prologue") or b"",
        s=_hex(vector, f"{prefix}_static"),
        e=_hex(vector, f"{prefix}_ephemeral"),
        rs=_hex(vector, f"{prefix}_remote_static"),
        re=_hex(vector, f"{prefix}_remote_ephemeral"),
        psks=[bytes.fromhex(p) for p in vector.get(f"{prefix}_psks", [])],
    )


def run_vector(vector: dict[str, Any]) -> None:
    """Raise VectorFailure (or a P2PChatError) if the vector does not reproduce."""
    initiator = _side(vector, "init", True)
    responder = _side(vector, "resp", False)
    one_way = initiator.pattern.one_way
    transport: dict[bool, tuple[CipherState, CipherState]] = {}
    for index, message in enumerate(vector["messages"]):
        payload = bytes.fromhex(message["payload"])
        expected = bytes.fromhex(message["ciphertext"])
        from_initiator = one_way or index % 2 == 0
        if not initiator.is_finished:
            sender, receiver = (initiator, responder) if from_initiator else (responder, initiator)
            ciphertext = sender.write_message(payload)
            if ciphertext != expected:
                raise VectorFailure(f"message {index}: ciphertext differs")
            if receiver.read_message(ciphertext) != payload:
                raise VectorFailure(f"message {index}: decrypted payload differs")
            if initiator.is_finished:
                _check_hash(vector, initiator, responder)
                i_to_r, r_to_i = initiator.split()
                ri_to_r, rr_to_i = responder.split()
                transport = {True: (i_to_r, ri_to_r), False: (rr_to_i, r_to_i)}
            continue
        encryptor, decryptor = transport[from_initiator]
        ciphertext = encryptor.encrypt_with_ad(b"", payload)
        if ciphertext != expected:
            raise VectorFailure(f"transport message {index}: ciphertext differs")
        if decryptor.decrypt_with_ad(b"", ciphertext) != payload:
            raise VectorFailure(f"transport message {index}: decrypted payload differs")
    if not initiator.is_finished:
        raise VectorFailure("the vector ends before the handshake does")


def _check_hash(
    vector: dict[str, Any], initiator: HandshakeState, responder: HandshakeState
) -> None:
    if initiator.handshake_hash != responder.handshake_hash:
        raise VectorFailure("the two sides' handshake hashes differ")
    expected = _hex(vector, "handshake_hash")
    if expected is not None and initiator.handshake_hash != expected:
        raise VectorFailure("handshake hash differs from the vector")


def run_vectors(vectors: Sequence[dict[str, Any]]) -> Result:
    result = Result()
    for number, vector in enumerate(vectors):
        name = vector.get("protocol_name", f"vector #{number}") if isinstance(vector, dict) else ""
        try:
            protocol = parse_protocol_name(str(name))
        except UnsupportedProtocol:
            result.skipped += 1
            continue
        try:
            run_vector(vector)
        except (VectorFailure, P2PChatError, KeyError, ValueError, TypeError) as exc:
            result.failed += 1
            result.failures.append(f"FAIL #{number} {name}: {exc}")
        else:
            result.passed += 1
            if protocol.pattern.psk_count:
                result.psk_passed += 1
    return result


def run_file(path: str | Path) -> Result:
    """Run every vector in a cacophony-format file. Raises ValueError if it is unusable."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read vectors from {path}: {exc}") from exc
    vectors = document.get("vectors") if isinstance(document, dict) else None
    if not isinstance(vectors, list):
        raise ValueError(f"{path} has no 'vectors' array")
    return run_vectors(vectors)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m p2pchat.noise.vectors FILE", file=sys.stderr)
        return 2
    try:
        result = run_file(args[0])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in result.failures:
        print(line)
    print(result.summary)
    return 1 if result.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
