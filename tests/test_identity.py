from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.errors import HandshakeRefused, IdentityError
from p2pchat.identity import (
    Identity,
    decode_peer_id,
    encode_peer_id,
    fingerprint,
    load_or_create_identity,
    safety_number,
    verify_static_key_signature,
)
from p2pchat.profile import open_profile


@given(st.binary(min_size=32, max_size=32))
def test_peer_id_round_trips(key: bytes) -> None:
    text = encode_peer_id(key)
    assert len(text) == 52
    assert text == text.lower() and "=" not in text
    assert decode_peer_id(text) == key
    assert decode_peer_id(text.upper()) == key


@pytest.mark.parametrize(
    "text", ["", "abc", "1" * 52, "a" * 51, "a" * 53, "a" * 51 + "!", "a" * 51 + "b"]
)
def test_bad_peer_ids_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        decode_peer_id(text)


def test_fingerprint_is_short_and_stable() -> None:
    key = bytes(range(32))
    assert fingerprint(key) == fingerprint(key)
    assert len(fingerprint(key)) == 19 and fingerprint(key).count("-") == 3
    assert fingerprint(key) != fingerprint(bytes(32))


def test_safety_number_is_symmetric_and_pairwise() -> None:
    a, b, c = (Identity.generate().public_key for _ in range(3))
    number = safety_number(a, b)
    assert number == safety_number(b, a)
    groups = number.split(" ")
    assert len(groups) == 12 and all(len(g) == 5 and g.isdigit() for g in groups)
    assert number != safety_number(a, c)


def test_static_key_signature_binds_identity_to_noise_key() -> None:
    alice, mallory = Identity.generate(), Identity.generate()
    verify_static_key_signature(
        alice.public_key, alice.noise_static_public, alice.static_key_signature
    )
    with pytest.raises(HandshakeRefused):
        verify_static_key_signature(
            alice.public_key, mallory.noise_static_public, alice.static_key_signature
        )
    with pytest.raises(HandshakeRefused):
        verify_static_key_signature(
            mallory.public_key, alice.noise_static_public, alice.static_key_signature
        )


def test_identity_repr_hides_the_seed() -> None:
    identity = Identity.generate()
    assert identity.seed.hex() not in repr(identity)
    assert repr(identity.seed) not in repr(identity)


def test_key_file_is_created_private_and_reloaded(tmp_path: Path) -> None:
    home = tmp_path / "profile"
    profile = open_profile(home)
    assert profile.created
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "identity.key").stat().st_mode) == 0o600
    again = open_profile(home)
    assert not again.created
    assert again.identity.public_key == profile.identity.public_key


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"p2pchat-identity-v1\nnot base64!!\n",
        b"p2pchat-identity-v1\nAAAA\n",
        b"\xff\xfe\x00",
        b"other-header\n" + b"A" * 44 + b"\n",
    ],
)
def test_corrupt_key_file_is_an_error_and_never_overwritten(tmp_path: Path, content: bytes) -> None:
    tmp_path.chmod(0o700)
    key_file = tmp_path / "identity.key"
    key_file.write_bytes(content)
    with pytest.raises(IdentityError, match="corrupt"):
        load_or_create_identity(key_file)
    assert key_file.read_bytes() == content


def test_unreadable_key_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads any file whatever its mode, so the permission error is simulated.
    key_file = tmp_path / "identity.key"
    key_file.write_bytes(b"x")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(IdentityError, match=r"cannot read.*Permission denied"):
        load_or_create_identity(key_file)
    monkeypatch.undo()
    assert key_file.read_bytes() == b"x"


def test_key_directory_in_place_of_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "identity.key").mkdir()
    with pytest.raises(IdentityError, match="cannot read"):
        load_or_create_identity(tmp_path / "identity.key")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "p2pchat", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_id_command_json_and_text(tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    first = _cli("--home", home, "id", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert set(data) == {"id", "fingerprint", "nick"}
    assert decode_peer_id(data["id"])
    second = _cli("--home", home, "id")
    assert second.returncode == 0
    assert data["id"] in second.stdout and data["fingerprint"] in second.stdout


def test_home_from_environment(tmp_path: Path) -> None:
    env = {**os.environ, "P2PCHAT_HOME": str(tmp_path / "env-home")}
    result = _cli("id", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env-home" / "identity.key").exists()


def test_id_command_with_corrupt_key_explains_and_keeps_the_file(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    (home / "identity.key").write_bytes(b"broken")
    result = _cli("--home", str(home), "id")
    assert result.returncode == 1
    assert "corrupt" in result.stderr and "Traceback" not in result.stderr
    assert (home / "identity.key").read_bytes() == b"broken"


def test_bad_config_json_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    (home / "config.json").write_text("{nope")
    result = _cli("--home", str(home), "id")
    assert result.returncode == 1
    assert "config.json" in result.stderr and "Traceback" not in result.stderr


def test_profile_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = _cli("--home", str(tmp_path / "file"), "id")
    assert result.returncode == 1
    assert "is a file, not a directory" in result.stderr
