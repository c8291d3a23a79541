from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from p2pchat.noise import HandshakeState
from p2pchat.noise.vectors import run_file

# A copy of the public cacophony vectors (the same bytes as the shared cacophony.txt).
VECTORS = Path(__file__).parent / "cacophony.json"
SUITE = "_25519_ChaChaPoly_BLAKE2b"


def supported_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS.read_text())["vectors"]
    return [v for v in vectors if v["protocol_name"].endswith(SUITE)]


def test_all_blake2b_chachapoly_25519_vectors_pass() -> None:
    total = len(json.loads(VECTORS.read_text())["vectors"])
    supported = supported_vectors()
    result = run_file(VECTORS)
    assert result.failures == []
    assert result.passed == len(supported) == 59
    assert result.failed == 0
    assert result.skipped == total - len(supported)  # other suites only
    # psk vectors run too, so a psk regression cannot hide behind a skip
    assert result.psk_passed == sum("psk" in v["protocol_name"] for v in supported) == 21


def side(vector: dict[str, Any], prefix: str, *, defer_psks: bool) -> HandshakeState:
    def key(name: str) -> bytes | None:
        return bytes.fromhex(vector[name]) if name in vector else None

    return HandshakeState(
        vector["protocol_name"],
        initiator=prefix == "init",
        prologue=bytes.fromhex(vector[f"{prefix}_prologue"]),
        s=key(f"{prefix}_static"),
        e=key(f"{prefix}_ephemeral"),
        rs=key(f"{prefix}_remote_static"),
        psks=() if defer_psks else psks_of(vector, prefix),
        defer_psks=defer_psks,
    )


def psks_of(vector: dict[str, Any], prefix: str) -> list[bytes]:
    return [bytes.fromhex(psk) for psk in vector[f"{prefix}_psks"]]


def test_psk_vectors_reproduce_when_the_responder_sets_its_psk_late() -> None:
    vectors = [v for v in supported_vectors() if "psk" in v["protocol_name"]]
    assert len(vectors) == 21
    for vector in vectors:
        initiator = side(vector, "init", defer_psks=False)
        responder = side(vector, "resp", defer_psks=True)
        first_psk = next(i for i, m in enumerate(responder.pattern.messages) if "psk" in m)
        for index, message in enumerate(vector["messages"][: len(initiator.pattern.messages)]):
            if index == first_psk:
                responder.set_psks(psks_of(vector, "resp"))
            sender, receiver = (
                (initiator, responder) if initiator.is_my_turn else (responder, initiator)
            )
            ciphertext = sender.write_message(bytes.fromhex(message["payload"]))
            assert ciphertext.hex() == message["ciphertext"], vector["protocol_name"]
            receiver.read_message(ciphertext)
        assert responder.handshake_hash.hex() == vector["handshake_hash"]


def run_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pchat.noise.vectors", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_reports_the_summary_and_succeeds() -> None:
    result = run_cli(VECTORS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("59 passed, 0 failed, ")


def test_cli_fails_on_a_corrupted_vector(tmp_path: Path) -> None:
    document = json.loads(VECTORS.read_text())
    ours = [
        v for v in document["vectors"] if v["protocol_name"].endswith("25519_ChaChaPoly_BLAKE2b")
    ]
    broken = dict(ours[10])
    first = broken["messages"][0]
    flipped = ("0" if first["ciphertext"][0] != "0" else "1") + first["ciphertext"][1:]
    broken["messages"] = [{**first, "ciphertext": flipped}, *broken["messages"][1:]]
    path = tmp_path / "vectors.json"
    path.write_text(json.dumps({"vectors": [ours[0], broken]}))
    result = run_cli(path)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "1 passed, 1 failed, 0 skipped"
    assert lines[0].startswith("FAIL #1 " + broken["protocol_name"])


def test_cli_fails_on_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    path.write_text("{not json")
    result = run_cli(path)
    assert result.returncode == 1
    assert "cannot read vectors" in result.stderr


def test_a_wrong_handshake_hash_fails(tmp_path: Path) -> None:
    document = json.loads(VECTORS.read_text())
    vector = next(
        v for v in document["vectors"] if v["protocol_name"] == "Noise_XX_25519_ChaChaPoly_BLAKE2b"
    )
    vector = {**vector, "handshake_hash": "00" * 64}
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"vectors": [vector]}))
    result = run_file(path)
    assert result.failed == 1 and "handshake hash" in result.failures[0]
