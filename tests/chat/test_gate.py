"""The contact-request gate: strangers get one small request, within rate limits."""

from __future__ import annotations

from p2pchat.chat.gate import ContactGate, GateLimits, Relation, Verdict

STRANGER = b"s" * 32


def judge(
    gate: ContactGate,
    *,
    peer: bytes = STRANGER,
    relation: Relation = Relation.STRANGER,
    address: str = "198.18.0.9",
    chars: int = 10,
    request_messages: int | None = None,
    pending: int = 0,
    now: int = 0,
) -> Verdict:
    return gate.judge(
        peer=peer,
        relation=relation,
        address=address,
        text_chars=chars,
        request_messages=request_messages,
        pending_requests=pending,
        now_ms=now,
    )


def test_contacts_pass_and_blocked_are_refused() -> None:
    gate = ContactGate()
    for _ in range(1000):
        assert judge(gate, relation=Relation.CONTACT) is Verdict.ADMIT
    assert judge(gate, relation=Relation.BLOCKED) is Verdict.REFUSE
    assert gate.held == 0


def test_a_stranger_gets_a_small_request() -> None:
    gate = ContactGate(GateLimits(request_messages=3, request_chars=100))
    assert judge(gate) is Verdict.REQUEST
    assert judge(gate, request_messages=1) is Verdict.REQUEST
    assert judge(gate, request_messages=2) is Verdict.REQUEST
    assert judge(gate, request_messages=3) is Verdict.HOLD  # the request is full
    assert judge(gate, peer=b"t" * 32, chars=101) is Verdict.ANNOUNCE  # too long: waits
    assert gate.held == 1


def test_pending_requests_are_capped() -> None:
    gate = ContactGate(GateLimits(max_requests=5))
    assert judge(gate, pending=4) is Verdict.REQUEST
    assert judge(gate, peer=b"t" * 32, pending=5) is Verdict.HOLD
    # an existing request is not a new one: the cap does not apply to it
    assert judge(gate, request_messages=1, pending=5) is Verdict.REQUEST


def test_rate_per_identity_refills_over_time() -> None:
    gate = ContactGate(GateLimits(identity_rate=1.0, identity_burst=2, request_messages=100))
    assert judge(gate, request_messages=0, now=0) is Verdict.REQUEST
    assert judge(gate, request_messages=0, now=0) is Verdict.REQUEST
    assert judge(gate, request_messages=0, now=0) is Verdict.HOLD
    assert judge(gate, request_messages=0, now=999) is Verdict.HOLD
    assert judge(gate, request_messages=0, now=2000) is Verdict.REQUEST


def test_new_requests_per_address_are_limited() -> None:
    gate = ContactGate(GateLimits(address_burst=3, address_rate=0.0))
    verdicts = [judge(gate, peer=bytes([i]) * 32) for i in range(10)]
    assert verdicts.count(Verdict.REQUEST) == 3
    # another address is not affected
    assert judge(gate, peer=b"x" * 32, address="198.18.0.10") is Verdict.REQUEST


def test_memory_stays_bounded_under_a_flood_of_identities() -> None:
    gate = ContactGate(GateLimits(tracked=100))
    for i in range(10_000):
        judge(gate, peer=i.to_bytes(32, "big"), address=f"198.18.{i % 250}.{i % 7}", now=i)
    assert gate.tracked() <= 200


def test_a_long_first_message_opens_the_request_and_waits() -> None:
    gate = ContactGate(GateLimits(request_chars=100))
    assert judge(gate, chars=101) is Verdict.ANNOUNCE
    assert judge(gate, chars=101, request_messages=0) is Verdict.HOLD  # announced already
    assert judge(gate, chars=50, request_messages=0) is Verdict.REQUEST
