"""A SOCKS5 client (RFC 1928, no authentication, CONNECT only): how the onion transport
asks Tor's SOCKS port for a stream to an onion address.

The exchange is a small state machine, :class:`Socks5Client`, fed bytes and answering
the bytes to send; it never reads past the proxy's reply, so whatever follows belongs
to the stream. :func:`open_via_socks5` runs it over a TCP connection to the proxy.

Tor answers an onion address it cannot reach with its extended codes (``ExtendedErrors``
on its SocksPort): each becomes a sentence a person can act on.
"""

from __future__ import annotations

import enum
import ipaddress

import trio

VERSION = 5
NO_AUTHENTICATION = 0
NO_ACCEPTABLE_METHOD = 0xFF
CONNECT = 1
ADDRESS_IPV4, ADDRESS_DOMAIN, ADDRESS_IPV6 = 1, 3, 4
MAX_DOMAIN = 255

# RFC 1928 §6, then Tor's extended codes for onion services (tor's SocksPort option
# ExtendedErrors), in words for the person whose contact did not answer.
REPLIES = {
    1: "the proxy failed",
    2: "the proxy's rules do not allow this connection",
    3: "the network is unreachable",
    4: "the host is unreachable",
    5: "the connection was refused",
    6: "the connection timed out",
    7: "the proxy does not support CONNECT",
    8: "the proxy does not support this address type",
    0xF0: "the onion service is not published now (its owner may be offline)",
    0xF1: "the onion service's descriptor is invalid",
    0xF2: "the onion service's introduction failed",
    0xF3: "the onion service's rendezvous failed",
    0xF4: "the onion service needs client authorization",
    0xF5: "the onion service refused our client authorization",
    0xF6: "the onion address is not valid",
    0xF7: "the onion service did not answer in time",
}


class Socks5Error(ConnectionError):
    """The proxy refused or failed the connection (``code``: its reply code, or None
    when it broke the protocol); ``str()`` says why in words. A ConnectionError, so
    that whoever handles a failed dial handles this one too."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0])


class _Stage(enum.Enum):
    METHOD = enum.auto()  # waiting for the method the proxy chose (2 bytes)
    HEAD = enum.auto()  # waiting for the reply's first 5 bytes (through the address's first)
    REST = enum.auto()  # waiting for the rest of the bound address and port
    DONE = enum.auto()


class Socks5Client:
    """One CONNECT through a SOCKS5 proxy, sans I/O: send :meth:`greeting`, then feed
    what the proxy answers to :meth:`feed` and send what it returns, until
    :attr:`done`. :attr:`wanted` says how many bytes the next step needs at least, so a
    caller can read exactly that much and nothing of the stream after the reply."""

    def __init__(self, host: str, port: int) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
        self._request = _connect_request(host, port)
        self._stage = _Stage.METHOD
        self._buffer = bytearray()
        self._rest = 0
        self.bound: tuple[str, int] | None = None  # the address the proxy says it used

    @staticmethod
    def greeting() -> bytes:
        return bytes([VERSION, 1, NO_AUTHENTICATION])

    @property
    def done(self) -> bool:
        return self._stage is _Stage.DONE

    @property
    def wanted(self) -> int:
        """Bytes the current step still needs (0 once done)."""
        need = {_Stage.METHOD: 2, _Stage.HEAD: 5, _Stage.REST: self._rest, _Stage.DONE: 0}
        return max(0, need[self._stage] - len(self._buffer))

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the proxy; return bytes to send it (maybe none). Raises
        Socks5Error when the proxy refuses, fails or breaks the protocol, ValueError
        if given bytes past the reply (they belong to the stream, never to us)."""
        if len(data) > self.wanted:
            raise ValueError("more bytes than the SOCKS5 reply holds: read at most .wanted")
        self._buffer += data
        out = b""
        while self._stage is not _Stage.DONE and self.wanted == 0:
            out += self._step()
        return out

    def _step(self) -> bytes:
        buffer = self._buffer
        if self._stage is _Stage.METHOD:
            version, method = buffer[0], buffer[1]
            if version != VERSION:
                raise Socks5Error(f"the proxy does not speak SOCKS5 (version {version})")
            if method != NO_AUTHENTICATION:
                reason = "the proxy wants authentication we do not have"
                raise Socks5Error(reason if method == NO_ACCEPTABLE_METHOD else
                                  f"the proxy chose an unknown method ({method})")  # fmt: skip
            del buffer[:2]
            self._stage = _Stage.HEAD
            return self._request
        if self._stage is _Stage.HEAD:
            version, code, reserved, kind, first = buffer[:5]
            if version != VERSION or reserved != 0:
                raise Socks5Error("the proxy's reply is malformed")
            if code != 0:
                raise Socks5Error(REPLIES.get(code, f"the proxy failed (code {code:#x})"), code)
            sizes = {ADDRESS_IPV4: 4, ADDRESS_IPV6: 16, ADDRESS_DOMAIN: 1 + first}
            if kind not in sizes:
                raise Socks5Error(f"the proxy's reply has an unknown address type ({kind})")
            self._rest = 4 + sizes[kind] + 2  # from the reply's start
            self._stage = _Stage.REST
            return b""
        kind = buffer[3]
        address = bytes(buffer[4 : self._rest - 2])
        port = int.from_bytes(buffer[self._rest - 2 : self._rest], "big")
        if kind == ADDRESS_DOMAIN:
            shown = address[1:].decode("ascii", errors="replace")
        else:
            shown = str(ipaddress.ip_address(address))
        self.bound = (shown, port)
        buffer.clear()
        self._stage = _Stage.DONE
        return b""


def _connect_request(host: str, port: int) -> bytes:
    """CONNECT to ``host`` (an IP address, or a name the proxy resolves: an onion
    address never leaves Tor as a DNS query)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna") if not host.isascii() else host.encode()
        if not 0 < len(name) <= MAX_DOMAIN:
            raise ValueError(f"a host name of {len(name)} bytes cannot go through SOCKS5") from None
        target = bytes([ADDRESS_DOMAIN, len(name)]) + name
    else:
        kind = ADDRESS_IPV4 if address.version == 4 else ADDRESS_IPV6
        target = bytes([kind]) + address.packed
    return bytes([VERSION, CONNECT, 0]) + target + port.to_bytes(2, "big")


async def open_via_socks5(
    proxy: tuple[str, int], host: str, port: int, *, timeout: float, first: bytes = b""
) -> trio.SocketStream:
    """A TCP stream to ``host:port`` through the SOCKS5 proxy at ``proxy``, within
    ``timeout`` seconds; Socks5Error saying why not (the proxy unreachable too).

    ``first``: bytes for ``host``, sent right behind the CONNECT request, before the
    proxy's reply (tor takes such "optimistic data" and delivers it with the stream):
    an onion service then gets them the moment its connection opens, not one circuit
    round trip later (~56 ms here), so the node behind it never sees our handshake as
    a silent one (net/handshakes.py), and the handshake is a round trip shorter."""
    client = Socks5Client(host, port)
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(*proxy)
    except (OSError, trio.TooSlowError) as error:
        why = getattr(error, "strerror", None) or str(error) or "no answer"
        raise Socks5Error(f"cannot reach the SOCKS proxy at {proxy[0]}:{proxy[1]}: {why}") from None
    try:
        with trio.fail_after(timeout):
            await stream.send_all(client.greeting())
            while not client.done:
                data = await stream.receive_some(client.wanted)
                if not data:
                    raise Socks5Error("the proxy closed the connection")
                answer = client.feed(data)
                if answer:  # the CONNECT request: the only answer without authentication
                    await stream.send_all(answer + first)
                    first = b""
    except BaseException as error:
        await trio.aclose_forcefully(stream)
        if isinstance(error, trio.TooSlowError):
            raise Socks5Error(f"no answer through the proxy in {timeout:g} s") from None
        if isinstance(error, trio.BrokenResourceError | OSError) and not isinstance(
            error, Socks5Error
        ):
            raise Socks5Error(f"the proxy connection broke: {error}") from None
        raise
    return stream
