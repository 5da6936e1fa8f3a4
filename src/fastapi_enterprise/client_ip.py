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
- IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``, what a dual-stack listener reports
  for every IPv4 client) are reported as IPv4 wherever the client is read: by
  :func:`client_address`, the resolver and :func:`client_key`, which groups IPv6 clients by
  /64, since one subscriber usually holds a whole /64.

:class:`TrustedProxies` is the policy behind it: the parsed, normalised list of trusted
proxies, which settings, the deploy check and the resolver all validate through.
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
    "TrustedProxies",
    "client_address",
    "client_key",
    "get_client_info",
    "is_private_network",
    "parse_networks",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCOPE_KEY = "fastapi_enterprise.client"
_SCHEMES = frozenset({"http", "https"})
_MAX_CACHED_PEERS = 4096

# Where reverse proxies live when they are not on the public internet: RFC 1918, loopback,
# link-local, the shared address space of RFC 6598 (carrier-grade NAT, some cloud and VPN
# networks), and their IPv6 counterparts (loopback, unique local, link-local).
_PRIVATE_BLOCKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(block)
    for block in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)
_LOOPBACK_BLOCKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# Wider than this, a private range spans far more hosts than a proxy tier needs: any
# compromised host in it could forge client addresses.
_WIDE_PREFIX = {4: 16, 6: 48}


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

    An IPv4-mapped IPv6 address is keyed as the IPv4 address it carries (as a /64 they
    would all share ``::/64``). Cached: the same clients come back, and parsing an
    address costs more than the rest of a memory-storage check.
    """
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def client_address(scope: Scope) -> str | None:
    """The client's IP as the request reached the app: ``scope["client"]``'s host.

    Behind trusted proxies, ``ProxyHeadersMiddleware`` has already put the resolved
    client there; otherwise it is the socket peer. An IPv4-mapped IPv6 peer
    (``::ffff:192.0.2.1``, how a dual-stack listener reports IPv4 clients) is returned
    as IPv4. ``None`` when the server gave none.
    """
    client = scope.get("client")
    if not client:
        return None
    host: str = client[0]
    # Only mapped addresses hold both separators (or the hex form's prefix): one cheap
    # test for the other addresses, a cached parse for these.
    if ":" in host and ("." in host or host[:7].lower() == "::ffff:"):
        return _unmapped(host)
    return host


@functools.lru_cache(maxsize=4096)
def _unmapped(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return host


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse IP addresses and CIDR networks (host bits ignored, IPv4-mapped as IPv4).

    Raises:
        ValueError: An entry is not an address or network. The message gives the
            entry's position, never its text (it may come from the environment).
    """
    networks: list[IPNetwork] = []
    for position, entry in enumerate(entries, start=1):
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise ValueError(f"entry {position} is not an IP address or CIDR network") from None
        networks.append(_unmapped_network(network))
    return tuple(networks)


def is_private_network(network: IPNetwork) -> bool:
    """Whether every address of ``network`` is private.

    Private means RFC 1918, loopback, link-local, the RFC 6598 shared space, IPv6
    unique-local or link-local. Anything else reaches public address space.
    """
    return _within(network, _PRIVATE_BLOCKS)


def _within(network: IPNetwork, blocks: tuple[IPNetwork, ...]) -> bool:
    return any(
        network.subnet_of(block)  # type: ignore[arg-type]  # same version, checked first
        for block in blocks
        if block.version == network.version
    )


class TrustedProxies:
    """The reverse proxies whose forwarded headers are believed: a validated policy.

    Settings, the deploy check and :class:`ClientIPResolver` all build this one object,
    so an entry is parsed and judged in one place. IPv4-mapped IPv6 entries
    (``::ffff:10.0.0.0/104``) are stored as the IPv4 networks they carry, since peers are
    compared as IPv4.

    Args:
        entries: ``"*"`` (every peer) or IP addresses and CIDR networks
            (``10.0.0.0/8``, ``192.0.2.1``, ``fd00::/8``); host bits are ignored.

    Raises:
        ValueError: An entry is neither ``*`` nor an address or network. The message
            gives the entry's position, never its text.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        listed = list(entries)
        self.trust_all = any(entry.strip() == "*" for entry in listed)
        """``*`` was given: every peer is trusted."""
        # '*' stands in as a plain address, so an error's position counts every entry.
        parsed = parse_networks("127.0.0.1" if entry.strip() == "*" else entry for entry in listed)
        self.networks: tuple[IPNetwork, ...] = tuple(
            network for entry, network in zip(listed, parsed, strict=True) if entry.strip() != "*"
        )
        """The trusted networks (single addresses as /32 or /128)."""

    def __bool__(self) -> bool:
        return self.trust_all or bool(self.networks)

    def __contains__(self, address: IPAddress) -> bool:
        if self.trust_all:
            return True
        return any(address in network for network in self.networks)

    @property
    def universal(self) -> bool:
        """Whether every address is trusted: ``*``, ``0.0.0.0/0`` or ``::/0``."""
        return self.trust_all or any(network.prefixlen == 0 for network in self.networks)

    def public_networks(self) -> tuple[IPNetwork, ...]:
        """Networks that reach public address space, other than a universal ``/0``.

        A client anywhere in them may connect directly and forge its address and scheme,
        unless the server is reachable only through the proxies.
        """
        return tuple(
            network
            for network in self.networks
            if network.prefixlen > 0 and not is_private_network(network)
        )

    def wide_networks(self) -> tuple[IPNetwork, ...]:
        """Private networks wider than a /16 (IPv4) or /48 (IPv6), loopback excepted."""
        return tuple(
            network
            for network in self.networks
            if is_private_network(network)
            and network.prefixlen < _WIDE_PREFIX[network.version]
            and not _within(network, _LOOPBACK_BLOCKS)
        )


def _unmapped_network(network: IPNetwork) -> IPNetwork:
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


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
            are believed, or a ready :class:`TrustedProxies`. ``"*"`` trusts every peer:
            only for a server that is reachable exclusively through a proxy.
        max_hops: More ``X-Forwarded-For`` entries than this and the header is ignored.
        max_header_length: Longer forwarded headers are ignored without being parsed.
    """

    def __init__(
        self,
        trusted_proxies: Iterable[str] | TrustedProxies = (),
        *,
        max_hops: int = 20,
        max_header_length: int = 2048,
    ) -> None:
        proxies = (
            trusted_proxies
            if isinstance(trusted_proxies, TrustedProxies)
            else TrustedProxies(trusted_proxies)
        )
        self.proxies = proxies
        self.trust_all = proxies.trust_all
        self.networks: tuple[IPNetwork, ...] = proxies.networks
        self.max_hops = max_hops
        self.max_header_length = max_header_length
        self.trusts_anyone = bool(proxies)
        self._peers: dict[str, tuple[str | None, bool]] = {}

    def is_trusted(self, address: IPAddress) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return address in self.proxies

    def peer_is_trusted(self, scope: Scope) -> bool:
        """Whether the socket peer of ``scope`` is a trusted proxy."""
        return self._peer(client_address(scope))[1]

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
