"""What OpenTelemetry costs a request: off, on, and with the collector stalled or dead.

Two measurements, both in process (the ASGI app called directly, as benchmarks/inprocess.py
does), with the log pipeline writing real JSON lines to /dev/null:

1. CPU per request, paired and interleaved (process CPU time, so the log writer and the
   span exporter threads count; each repetition runs every app once in rotating order; the
   cost of an app is the median of its paired differences to bare FastAPI):
   - bare FastAPI;
   - the full ``install()`` stack with telemetry off, and the same stack with the trace-ID
     lookups the correlation added patched out: their difference is what telemetry costs
     when it is off;
   - bare FastAPI with its own telemetry exporting spans (FastAPI's cost alone);
   - the full stack with ``otel`` on, exporting to a local OTLP receiver.
2. Per-request latency of the full stack with ``otel`` on while the receiver is healthy,
   stalled (it accepts the export and never answers) or dead (nothing listens):
   p50/p99/max and the requests that failed, rounds interleaved.

Run: ``python -m benchmarks.telemetry`` (``--smoke``: a few requests, correctness only).
Writes benchmarks/results/telemetry.md. Nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import time
from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from tests.otlp_receiver import OTLPReceiver, start_receiver, stop_receiver

from benchmarks.inprocess import PAYLOAD, paired, scope
from fastapi_enterprise import EnterpriseSettings, configure_logging, install

ROOT = Path(__file__).resolve().parent.parent
WITHOUT_LOOKUPS = "install(), telemetry off, trace-ID lookups patched out"
HEADERS = [(b"host", b"bench"), (b"accept-encoding", b"gzip")]
NEVER_LIMITED = {"default": "1000000/minute"}
# The modules whose trace-ID lookup the correlation added to the request path.
LOOKUPS = (
    "fastapi_enterprise.log_config",
    "fastapi_enterprise.metrics.middleware",
    "fastapi_enterprise.middleware.request_id",
)


def small_app(app: FastAPI) -> FastAPI:
    @app.get("/small")
    async def small() -> dict[str, Any]:
        return PAYLOAD

    return app


def stack(otel: dict[str, Any] | None = None) -> tuple[FastAPI, EnterpriseSettings]:
    settings = EnterpriseSettings(
        environment="test",
        metrics={"enabled": True},
        rate_limit=NEVER_LIMITED,
        otel=otel or {},
    )
    app = small_app(FastAPI(**settings.fastapi_kwargs()))
    install(app, settings)
    return app, settings


def fastapi_native(receiver: OTLPReceiver) -> tuple[FastAPI, TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces", timeout=2))
    )
    app = FastAPI(telemetry={"tracer_provider": provider, "metrics": False, "logs": False})
    return small_app(app), provider


@contextmanager
def lookups_removed() -> Iterator[None]:
    """Patch the correlation's trace-ID lookups out of the request path, then restore them."""
    modules = [importlib.import_module(name) for name in LOOKUPS]
    saved = [getattr(module, "get_trace_ids") for module in modules]  # noqa: B009
    for module in modules:
        setattr(module, "get_trace_ids", lambda: None)  # noqa: B010
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            setattr(module, "get_trace_ids", original)  # noqa: B010


async def latencies(app: Any, requests: int) -> tuple[list[float], int]:
    """Each request's wall time in microseconds, and how many did not answer 200."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    times: list[float] = []
    for _ in range(requests):
        start = time.perf_counter()
        await app(scope(HEADERS), receive, send)
        times.append((time.perf_counter() - start) * 1e6)
    return times, sum(status != 200 for status in statuses) + requests - len(statuses)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--latency-requests", type=int, default=4000)
    parser.add_argument("--latency-rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a few requests: correctness only")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.repetitions = 50, 2
        args.latency_requests, args.latency_rounds = 50, 1
    output = args.output or ROOT / "benchmarks/results" / (
        "telemetry-smoke.md" if args.smoke else "telemetry.md"
    )

    with ExitStack() as cleanup:
        devnull = cleanup.enter_context(open(os.devnull, "w"))
        handle = configure_logging(EnterpriseSettings(environment="production"), stream=devnull)
        cleanup.callback(handle.stop)
        healthy = start_receiver()
        cleanup.callback(stop_receiver, healthy)
        stalled = start_receiver()
        stalled.stall_limit = 3600
        stalled.stall()
        cleanup.callback(stop_receiver, stalled)

        otel = {"enabled": True, "timeout": 2, "logs": False}
        bare = small_app(FastAPI())
        off, _ = stack()
        native, native_provider = fastapi_native(healthy)
        cleanup.callback(native_provider.shutdown)
        on, on_settings = stack({**otel, "endpoint": healthy.url})
        cleanup.callback(on_settings.telemetry().shutdown)
        apps: list[tuple[str, Any]] = [
            ("bare FastAPI", bare),
            ("install(), telemetry off", off),
            (WITHOUT_LOOKUPS, off),
            ("bare FastAPI, its own telemetry exporting spans", native),
            ("install(), otel on, exporting spans", on),
        ]

        def settle() -> None:
            handle.flush(timeout=10)
            native_provider.force_flush()
            on_settings.telemetry().force_flush()

        rows = paired(
            apps,
            args.requests,
            args.repetitions,
            settle,
            around={WITHOUT_LOOKUPS: lookups_removed},
        )

        receivers: dict[str, str] = {
            "healthy": healthy.url,
            "stalled (never answers)": stalled.url,
            # Port 9 (discard) on loopback: nothing listens, the export is refused.
            "dead (connection refused)": "http://127.0.0.1:9",
        }
        traced: dict[str, tuple[Any, EnterpriseSettings]] = {
            name: stack({**otel, "endpoint": url}) for name, url in receivers.items()
        }
        for _, settings in traced.values():
            cleanup.callback(settings.telemetry().shutdown)
        samples: dict[str, list[float]] = {name: [] for name in traced}
        failed: dict[str, int] = dict.fromkeys(traced, 0)
        for round_ in range(args.latency_rounds):
            names = list(traced)
            turn = round_ % len(names)
            for name in names[turn:] + names[:turn]:
                times, bad = asyncio.run(latencies(traced[name][0], args.latency_requests))
                samples[name] += times
                failed[name] += bad
        spans = len(healthy.spans())
        load = os.getloadavg()
        stalled.release()

    lines = [
        "# OpenTelemetry: cost per request",
        "",
        f"Load average during the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        f" ({os.cpu_count()} cores). Spans the healthy receiver decoded: {spans}.",
        "",
        f"## CPU per request (paired, interleaved; median of {args.repetitions}"
        f" x {args.requests} requests)",
        "",
        "| app | CPU us/request | minus bare (paired median) | ratio to bare |",
        "|---|---:|---:|---:|",
    ]
    base = rows[0][1]
    lines += [
        f"| {name} | {value:.1f} | {extra:+.1f} | {value / base:.2f} |"
        for name, value, extra in rows
    ]
    off_cost = rows[1][2] - rows[2][2]
    lines += [
        "",
        f"Telemetry off minus the same stack without the trace-ID lookups: {off_cost:+.1f} us"
        " per request (the two rows' paired medians).",
        "",
        f"## Latency with the collector healthy, stalled or dead ({args.latency_rounds}"
        f" interleaved rounds x {args.latency_requests} requests, wall time)",
        "",
        "| collector | p50 us | p99 us | max us | requests not answered 200 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, times in samples.items():
        lines.append(
            f"| {name} | {percentile(times, 0.5):.0f} | {percentile(times, 0.99):.0f}"
            f" | {max(times):.0f} | {failed[name]} |"
        )
    report = "\n".join(lines) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    print(report)
    if any(failed.values()) or spans == 0:
        raise SystemExit("a request failed or no span reached the healthy receiver")


if __name__ == "__main__":
    main()
