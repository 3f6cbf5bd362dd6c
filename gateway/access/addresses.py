"""Where a request comes from: this machine, or which client address (as the server saw it,
through the proxies it trusts: `LMB_TRUSTED_PROXIES`)."""

from __future__ import annotations

import ipaddress

from starlette.requests import HTTPConnection

#: Headers a proxy adds: a request that carries one came from beyond this machine, whatever
#: address it came from (a reverse proxy on the same host publishes a loopback gateway).
_FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")
#: An IPv6 client is its /64: one machine has all of it.
_V6_CLIENT_BITS = 64


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve anywhere
        return False


def is_local(conn: HTTPConnection) -> bool:
    """Whether a request comes from this machine itself, not through a proxy."""
    client = conn.client.host if conn.client else ""
    return is_loopback(client) and not any(h in conn.headers for h in _FORWARDED)


def client_of(conn: HTTPConnection) -> str:
    """Who a request counts as: its address, an IPv6 one by its /64."""
    host = conn.client.host if conn.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/{_V6_CLIENT_BITS}", strict=False))
    return str(address)
