"""Dialling known places (remembered addresses, static peers, invites) and proving who answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import groupby

import trio

from p2pchat.chat.names import line_id
from p2pchat.discovery.known import Target
from p2pchat.discovery.verify import POLICY_CODES
from p2pchat.errors import ConnectionClosed
from p2pchat.identity import Identity, decode_peer_id
from p2pchat.net.connection import ConnectionConfig
from p2pchat.net.server import open_secure_connection
from p2pchat.net.transports import ONION_TIMEOUT
from p2pchat.session.core import Authorizer
from p2pchat.tor.onion import is_onion

log = logging.getLogger("p2pchat.discovery")

DIAL_TIMEOUT = 5.0
ONION_TRIES = 3  # handshakes through Tor a busy responder closed early, at most
# Refusals by local policy (either side's): the peer is there, but one of the two will
# not talk to the other; dialling again changes nothing until someone changes a list.

# report(event_name, human_text, **json_fields) — the same reporter the mDNS watcher uses.
Reporter = Callable[..., None]
# on_verified(peer_id, address, nick) — e.g. KnownPeers.remember
OnVerified = Callable[[str, str, str | None], None]


async def probe(
    target: Target,
    identity: Identity,
    authorize: Authorizer | None = None,
    *,
    config: ConnectionConfig | None = None,
) -> tuple[str | None, str]:
    """Handshake with ``target``: (proven peer id, detail). ConnectionClosed for a spoof
    or a refusal. A code's token goes along (only to the identity the code names).

    One Ping after the handshake: the responder judges us on handshake message 3, which
    completes the handshake on our side before its verdict can reach us, so a session
    that answers is one it admitted (a code's token redeemed, say). ``config``: the
    node's own, so that the peer sees the features we offer even on this short session
    (it may keep it as its link with us)."""
    expected = decode_peer_id(target.peer_id) if target.peer_id else None
    # Through Tor, the stream alone may take most of a minute (net/transports.py).
    within = ONION_TIMEOUT + DIAL_TIMEOUT if is_onion(target.host) else DIAL_TIMEOUT
    with trio.fail_after(within):
        async with open_secure_connection(
            target.host,
            target.port,
            identity,
            expected_peer=expected,
            authorize=authorize,
            invite=target.invite if expected is not None else b"",
            config=config,
        ) as connection:
            peer_id = connection.peer_id
            await connection.ping()
            await connection.aclose("bye", "identity check done")
    return peer_id, "handshake proved the id"


async def _probe_again_through_tor(
    target: Target,
    identity: Identity,
    authorize: Authorizer | None,
    config: ConnectionConfig | None,
) -> str | None:
    """:func:`probe`; through Tor, a handshake the peer closed before it was done is
    tried again (ONION_TRIES in all): every handshake through an onion service comes
    from its tor, and shares one address's slots there, which a flood of strangers
    churns (net/handshakes.py); ours may have been pushed out before its first bytes
    were read. (On the LAN the same close means a node that hides from us, §10.2.)"""
    for attempt in range(ONION_TRIES):
        try:
            peer_id, _ = await probe(target, identity, authorize, config=config)
            return peer_id
        except ConnectionClosed as closed:
            if closed.code != "eof" or not is_onion(target.host) or attempt + 1 == ONION_TRIES:
                raise
            log.debug("%s closed our handshake; trying again", target.address)
    raise AssertionError("unreachable")


async def dial_all(
    targets: list[Target],
    identity: Identity,
    report: Reporter,
    on_verified: OnVerified,
    *,
    authorize: Authorizer | None = None,
    config: ConnectionConfig | None = None,
) -> None:
    """Try every target at once; for targets of one peer, its addresses in order.

    ``authorize`` is our own policy, asked about whoever answers (a stranger in
    contacts-only mode is refused: reported ``refused``)."""
    async with trio.open_nursery() as nursery:
        for key, group in groupby(targets, key=lambda t: t.peer_id or t.address):
            nursery.start_soon(
                _dial_peer, key, list(group), identity, report, on_verified, authorize, config
            )


async def _dial_peer(
    key: str,
    targets: list[Target],
    identity: Identity,
    report: Reporter,
    on_verified: OnVerified,
    authorize: Authorizer | None,
    config: ConnectionConfig | None,
) -> None:
    failures = []
    spoofed = False
    for target in targets:
        try:
            peer_id = await _probe_again_through_tor(target, identity, authorize, config)
        except ConnectionClosed as closed:
            if closed.code == "unexpected-identity":
                spoofed = True
                report("spoof", f"warning: {target.address} is not {target.peer_id} ({closed})",
                       id=target.peer_id, address=target.address, detail=str(closed))  # fmt: skip
                continue
            if closed.code in POLICY_CODES:
                who = "it refused us" if closed.by_peer else "we refused it"
                report("refused", f"refused: {key} at {target.address}: {who} ({closed})",
                       id=target.peer_id, address=target.address, code=closed.code,
                       by_peer=closed.by_peer, detail=str(closed))  # fmt: skip
                return  # the same answer at its other addresses
            failures.append(f"{target.address}: {closed}")
            continue
        except OSError as error:
            # Through Tor the proxy says why in words (net/socks5.py): "the onion
            # service is not published now (its owner may be offline)".
            why = getattr(error, "strerror", None) or str(error)
            failures.append(f"{target.address}: could not connect" + (f" ({why})" if why else ""))
            continue
        except trio.TooSlowError:
            failures.append(f"{target.address}: timed out")
            continue
        assert peer_id is not None
        on_verified(peer_id, target.address, target.nick)
        name = f"{target.nick} ({line_id(peer_id)})" if target.nick else line_id(peer_id)
        report(
            "verified",
            f"proven: {name} at {target.address} ({target.source})",
            id=peer_id,
            nick=target.nick,
            status=None,
            addresses=[target.address],
            verified=True,
            via=target.source,
        )
        return
    if spoofed and not failures:
        return  # already reported as a spoof
    log.info("could not reach %s: %s", key, "; ".join(failures))
    report(
        "unreachable",
        f"unreachable: {key} ({'; '.join(failures)})",
        id=targets[0].peer_id,
        addresses=[t.address for t in targets],
        detail="; ".join(failures),
    )
