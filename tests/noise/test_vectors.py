from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from p2pchat.noise.vectors import run_file

VECTORS = Path(__file__).parent / "cacophony.json"


def test_all_blake2b_chachapoly_25519_vectors_pass() -> None:
    result = run_file(VECTORS)
    assert result.failures == []
    assert result.passed == 59
    assert result.failed == 0
    assert result.skipped > 0  # other suites in the file are skipped, not failed


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
