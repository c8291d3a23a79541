"""Parsing and printing ``HOST:PORT`` as users type them."""

from __future__ import annotations


def parse_host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """Parse ``host:port``, ``[v6]:port`` (or a bare host when ``default_port`` is given).

    Raises ValueError with a message fit to show the user.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty address; expected HOST:PORT")
    host: str
    port_text: str | None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"{text!r}: write IPv6 addresses as [ADDRESS]:PORT")
    else:
        host, port_text = text, None
    if not host:
        raise ValueError(f"{text!r}: missing host")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{text!r}: missing ':PORT'")
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


def format_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
