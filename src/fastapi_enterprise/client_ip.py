"""The client IP and scheme resolver: the one place that decides who is calling, and how.

Rate limits, logs and metrics all need the client's address; behind a reverse proxy the
socket peer is the proxy, and the client is in ``X-Forwarded-For``, a header any client
can also forge. The rules:

- headers are believed only when the socket peer is a trusted proxy (IPs or CIDRs);
- ``X-Forwarded-For`` is walked right to left, and the first hop that is not a trusted
  proxy is the client (so a forged left-most entry is never chosen while a real hop
  follows it);
- every hop is validated with :mod:`ipaddress`; garbage, an over-long header or too
  many hops make the resolver fall back to the socket peer, with bounded work;
- ``X-Forwarded-Proto`` (or RFC 7239 ``Forwarded: proto=``) sets the scheme, again only
  from a trusted peer;
- IPv4-mapped IPv6 addresses are reported as IPv4, and :func:`client_key` groups IPv6
  clients by /64, since one subscriber usually holds a whole /64.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import Scope

__all__ = [
    "ClientIPResolver",
    "ClientInfo",
    "client_address",
    "client_key",
    "get_client_info",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCOPE_KEY = "fastapi_enterprise.client"
_SCHEMES = frozenset({"http", "https"})
_MAX_CACHED_PEERS = 4096


@dataclass(frozen=True)
class ClientInfo:
    """Who is calling: the resolved client address and the scheme it used."""

    ip: str | None
    """Client IP (IPv4-mapped addresses as IPv4), or ``None`` when the server gave none."""

    scheme: str
    """``https`` or ``http`` (``wss``/``ws`` for WebSockets) as the client used it."""

    peer: str | None
    """The socket peer (the nearest proxy when behind one)."""

    via_proxy: bool
    """Whether forwarded headers from a trusted proxy decided the result."""


@functools.lru_cache(maxsize=4096)
def client_key(ip: str | None) -> str:
    """Return the rate-limit key of an address: IPv4 as is, IPv6 grouped by its /64.

    Cached: the same clients come back, and parsing an address costs more than the rest
    of a memory-storage check.
    """
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def client_address(scope: Scope) -> str | None:
    """The client's IP as the request reached the app: ``scope["client"]``'s host.

    Behind trusted proxies, ``ProxyHeadersMiddleware`` has already put the resolved
    client there; otherwise it is the socket peer. ``None`` when the server gave none.
    """
    client = scope.get("client")
    return client[0] if client else None


def get_client_info(scope: Scope) -> ClientInfo | None:
    """Return the :class:`ClientInfo` that ``ProxyHeadersMiddleware`` resolved, if any.

    ``None`` when no trusted proxy is configured: then ``scope["client"]`` is the client.
    """
    info = scope.get(_SCOPE_KEY)
    return info if isinstance(info, ClientInfo) else None


class ClientIPResolver:
    """Resolve the client of a request from its socket peer and forwarded headers.

    Args:
        trusted_proxies: Addresses or CIDR networks of proxies whose forwarded headers
            are believed. ``"*"`` trusts every peer: only for a server that is reachable
            exclusively through a proxy.
        max_hops: More ``X-Forwarded-For`` entries than this and the header is ignored.
        max_header_length: Longer forwarded headers are ignored without being parsed.
    """

    def __init__(
        self,
        trusted_proxies: Iterable[str] = (),
        *,
        max_hops: int = 20,
        max_header_length: int = 2048,
    ) -> None:
        proxies = list(trusted_proxies)
        self.trust_all = "*" in proxies
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(proxy, strict=False) for proxy in proxies if proxy != "*"
        )
        self.max_hops = max_hops
        self.max_header_length = max_header_length
        self.trusts_anyone = self.trust_all or bool(self.networks)
        self._peers: dict[str, tuple[str | None, bool]] = {}

    def is_trusted(self, address: IPAddress) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        if self.trust_all:
            return True
        return any(address in network for network in self.networks)

    def resolve(self, scope: Scope) -> ClientInfo:
        """Resolve the client of an HTTP or WebSocket ``scope``."""
        peer_text = client_address(scope)
        scheme: str = scope.get("scheme", "http")
        peer_ip, trusted = self._peer(peer_text)
        if not trusted:
            return ClientInfo(peer_ip, scheme, peer_ip, via_proxy=False)

        forwarded_for, forwarded_proto, forwarded = self._headers(scope)
        if forwarded_for is None and forwarded is not None:
            forwarded_for, forwarded_proto = _from_rfc7239(forwarded, self.max_hops)
        if forwarded_for is None:
            if forwarded_proto is None:
                return ClientInfo(peer_ip, scheme, peer_ip, via_proxy=False)
            # A TLS terminator may set only the scheme: the peer stays the client.
            scheme = _pick_scheme(forwarded_proto, -1, 0, scheme)
            return ClientInfo(peer_ip, scheme, peer_ip, via_proxy=True)
        hops = forwarded_for.split(",")
        if len(hops) > self.max_hops:
            return ClientInfo(peer_ip, scheme, peer_ip, via_proxy=False)
        client_ip, index = self._walk(hops)
        if client_ip is None:
            return ClientInfo(peer_ip, scheme, peer_ip, via_proxy=False)
        if forwarded_proto is not None:
            scheme = _pick_scheme(forwarded_proto, index, len(hops), scheme)
        return ClientInfo(client_ip, scheme, peer_ip, via_proxy=True)

    def _peer(self, peer_text: str | None) -> tuple[str | None, bool]:
        """Normalised peer address and whether it is trusted; cached, peers repeat."""
        if peer_text is None:
            return None, False
        cached = self._peers.get(peer_text)
        if cached is None:
            peer = _parse(peer_text)
            trusted = peer is not None and self.trusts_anyone and self.is_trusted(peer)
            cached = (str(peer) if peer is not None else peer_text, trusted)
            if len(self._peers) < _MAX_CACHED_PEERS:
                self._peers[peer_text] = cached
        return cached

    def _headers(self, scope: Scope) -> tuple[str | None, str | None, str | None]:
        found: dict[bytes, list[bytes]] = {}
        for name, value in scope.get("headers", ()):
            lowered = name.lower()
            if lowered in (b"x-forwarded-for", b"x-forwarded-proto", b"forwarded"):
                found.setdefault(lowered, []).append(value)
        return tuple(  # type: ignore[return-value]
            self._join(found.get(name))
            for name in (b"x-forwarded-for", b"x-forwarded-proto", b"forwarded")
        )

    def _join(self, values: list[bytes] | None) -> str | None:
        if not values:
            return None
        # Several header lines mean one comma-separated list (RFC 9110 section 5.3).
        joined = b",".join(values)
        if len(joined) > self.max_header_length:
            return None
        return joined.decode("latin-1")

    def _walk(self, hops: list[str]) -> tuple[str | None, int]:
        """Right to left: the first untrusted hop is the client; any garbage: give up."""
        address: IPAddress | None = None
        for index in range(len(hops) - 1, -1, -1):
            address = _parse(hops[index].strip())
            if address is None:
                return None, -1
            if not self.is_trusted(address):
                return str(address), index
        # Every hop is a trusted proxy: the left-most is as far as the chain goes.
        return (str(address), 0) if address is not None else (None, -1)


def _parse(text: str) -> IPAddress | None:
    """Parse an address as proxies write it: bare, ``[v6]``, ``v4:port`` or ``[v6]:port``."""
    if not text or len(text) > 64:
        return None
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _pick_scheme(protos: str, index: int, hop_count: int, default: str) -> str:
    values = [value.strip().lower() for value in protos.split(",")]
    # When every hop appended its view, the entry at the client's index is what the
    # client used; otherwise the nearest proxy's (right-most) view is the safe choice.
    value = values[index] if len(values) == hop_count and index >= 0 else values[-1]
    if value not in _SCHEMES:
        return default
    if default in ("ws", "wss"):
        return "wss" if value == "https" else "ws"
    return value


def _from_rfc7239(header: str, max_hops: int) -> tuple[str | None, str | None]:
    """Turn ``Forwarded: for=1.2.3.4;proto=https, for="[::1]"`` into XFF/XFP lists."""
    elements = header.split(",")
    if len(elements) > max_hops:
        return None, None
    hops: list[str] = []
    protos: list[str] = []
    for element in elements:
        pairs = {}
        for pair in element.split(";"):
            key, _, value = pair.strip().partition("=")
            pairs[key.lower()] = value.strip().strip('"')
        if "for" not in pairs:
            return None, None
        hops.append(pairs["for"])
        protos.append(pairs.get("proto", ""))
    proto = ",".join(protos) if any(protos) else None
    return ",".join(hops), proto
