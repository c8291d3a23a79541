"""A private network's key, what derives from it, and its invite code (§17). Pure."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pchat.networks.keys import Network, network_code, parse_network_code

KEY = bytes(range(32))


def test_derived_values_differ_from_each_other_and_from_another_key() -> None:
    one, other = Network("home", KEY), Network("home", bytes(32))
    derived = [one.psk, one.announce_key, one.network_id]
    assert len({bytes(value) for value in derived}) == 3
    assert KEY not in derived
    for name in ("psk", "announce_key", "network_id", "service_type"):
        assert getattr(one, name) != getattr(other, name)
    assert Network("another name", KEY).service_type == one.service_type  # the key decides


def test_the_service_type_is_a_valid_dns_sd_name() -> None:
    service = Network("home", KEY).service_type
    label = service.split(".")[0]
    # RFC 6335: 1-15 letters, digits and hyphens, beginning with a letter.
    assert re.fullmatch(r"_[a-z][a-z0-9-]{0,14}", label), service
    assert service.endswith("._tcp.local.")


@given(st.binary(min_size=32, max_size=32), st.text(min_size=1, max_size=32))
def test_a_code_gives_back_the_network(key: bytes, name: str) -> None:
    if not name.strip() or not name.isprintable():
        return
    network = Network(name, key)
    assert parse_network_code(network_code(network)) == network


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("p2pchat:abc", "starts with"),
        ("p2pchat-network:!!!", "not base32"),
        ("p2pchat-network:aaaa", "wrong length"),
        ("p2pchat-network:" + "a" * 300, "too long"),
        ("p2pchat-network:" + "a" * 52 + "?name=%07bell", "control characters"),
    ],
)
def test_a_bad_code_says_what_is_wrong(code: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_network_code(code)


def test_names_and_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Network("home", b"short")
    with pytest.raises(ValueError, match="needs a name"):
        Network("  ", KEY)
    with pytest.raises(ValueError, match="at most 32"):
        Network("x" * 33, KEY)
