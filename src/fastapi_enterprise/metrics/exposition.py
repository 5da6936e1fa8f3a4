"""The ``/metrics`` endpoint: OpenMetrics or text, gzip, protected, multiprocess-aware.

- A scraper that asks for OpenMetrics (``Accept: application/openmetrics-text``, as
  Prometheus does when exemplars are enabled) gets it, exemplars included; everyone else
  gets the classic text format 0.0.4.
- The body is gzipped when the scraper accepts it.
- Access: a bearer token (compared in constant time, whatever the length of the
  candidate) and/or an IP allowlist (the client as resolved from trusted proxies). In
  production, with neither configured, only loopback may scrape: metrics are not public
  by default.
- ``GET`` and ``HEAD`` only: any other method is a 405 problem with ``Allow``.
- Under gunicorn or ``uvicorn --workers N`` with ``PROMETHEUS_MULTIPROC_DIR`` set, the
  scrape aggregates every worker's files, after dropping the live-gauge files of workers
  that died (the cleanup users otherwise write by hand).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from fastapi_enterprise.client_ip import client_address, parse_networks
from fastapi_enterprise.errors import problem_response
from fastapi_enterprise.metrics._prometheus import REGISTRY, CollectorRegistry, prometheus_client
from fastapi_enterprise.middleware.compression import accepts_gzip

Metric = prometheus_client.metrics_core.Metric

__all__ = ["CombinedRegistry", "MetricsEndpoint", "cleanup_dead_processes", "multiprocess_registry"]

_LIVE_GAUGE = re.compile(r"gauge_live[a-z]*_(\d+)\.db$")
_METHODS = ("GET", "HEAD")
_ALLOW = {"Allow": ", ".join(_METHODS)}
_LOOPBACK = parse_networks(("127.0.0.0/8", "::1"))


def cleanup_dead_processes(directory: str | os.PathLike[str]) -> list[int]:
    """Remove the live-gauge files of processes that no longer exist; return their PIDs.

    ``livesum``/``livemax``/... gauges must forget a dead worker, or its last
    in-progress count lingers in the sum forever. gunicorn's ``child_exit`` hook covers
    clean exits (see the docs); this covers workers that were killed.
    """
    dead: list[int] = []
    for path in Path(directory).glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE.search(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _alive(pid):
            prometheus_client.multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
            dead.append(pid)
    return sorted(set(dead))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker stays a zombie until its supervisor reaps it: it is dead all the
    # same (Linux tells us through /proc; elsewhere the signal check is all we have).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class CombinedRegistry:
    """Several registries exposed as one (the app's own and the global default)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        """Yield every metric of every registry, in order."""
        for registry in self.registries:
            yield from registry.collect()


def multiprocess_registry(directory: str | os.PathLike[str]) -> CollectorRegistry:
    """A registry that aggregates every process's metric files in ``directory``."""
    registry = CollectorRegistry()
    prometheus_client.multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry


class MetricsEndpoint:
    """An ASGI app serving the metrics of ``registry``.

    Args:
        registry: What to expose; the global registry by default. When
            ``PROMETHEUS_MULTIPROC_DIR`` is set, every process's files are aggregated
            instead.
        bearer_token: Require ``Authorization: Bearer <token>``; must not be empty.
        allow_ips: Addresses or CIDR networks allowed to scrape (IPv4-mapped IPv6
            entries stand for the IPv4 networks they carry, as clients are IPv4).
        require_protection: Refuse every scrape that is neither authenticated nor from
            an allowed address (production default: loopback only).

    Raises:
        ValueError: ``bearer_token`` is an empty string (which would protect nothing),
            or an ``allow_ips`` entry is not an address or network (the message gives
            its position, never its text).
    """

    def __init__(
        self,
        registry: CollectorRegistry | CombinedRegistry = REGISTRY,
        *,
        bearer_token: str | None = None,
        allow_ips: Iterable[str] = (),
        require_protection: bool = False,
    ) -> None:
        if bearer_token is not None and not bearer_token.strip():
            raise ValueError("bearer_token must not be empty; pass None for no token")
        self.registry = registry
        # Compared as digests: equal lengths, so the time taken says nothing about the token.
        self.token = _digest(bearer_token.strip().encode()) if bearer_token is not None else None
        try:
            networks = parse_networks(allow_ips)
        except ValueError as exc:  # names the entry by position, never its text
            raise ValueError(f"allow_ips {exc}") from None
        if require_protection and self.token is None and not networks:
            networks = _LOOPBACK
        self.networks = networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one scrape."""
        method = scope.get("method", "GET")
        if method not in _METHODS:
            detail = "Metrics are read with GET (or HEAD)."
            await problem_response(405, detail=detail, headers=_ALLOW)(scope, receive, send)
            return
        denied = self._denied(scope)
        if denied is not None:
            await denied(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", ())
        }
        registry: CollectorRegistry | CombinedRegistry = self.registry
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            cleanup_dead_processes(directory)
            registry = multiprocess_registry(directory)
        encoder, content_type = prometheus_client.exposition.choose_encoder(
            headers.get("accept", "")
        )
        body = encoder(registry)  # anything with collect() works
        response_headers = [(b"content-type", content_type.encode()), (b"vary", b"Accept-Encoding")]
        if accepts_gzip(headers.get("accept-encoding", "")):
            body = gzip.compress(body, compresslevel=6)
            response_headers.append((b"content-encoding", b"gzip"))
        response_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    def _denied(self, scope: Scope) -> Response | None:
        if self.token is None and not self.networks:
            return None
        if self.token is not None:
            for name, value in scope.get("headers", ()):
                if name.lower() == b"authorization":
                    scheme, _, credential = value.partition(b" ")
                    if scheme.lower() == b"bearer" and hmac.compare_digest(
                        _digest(credential.strip()), self.token
                    ):
                        return None
        if self.networks:
            peer = client_address(scope)
            try:
                address = ipaddress.ip_address(peer) if peer else None
            except ValueError:
                address = None
            if address is not None and any(address in network for network in self.networks):
                return None
        if self.token is not None:
            return problem_response(
                401, detail="Scraping needs a bearer token.", headers={"WWW-Authenticate": "Bearer"}
            )
        return problem_response(403, detail="This address may not scrape metrics.")
