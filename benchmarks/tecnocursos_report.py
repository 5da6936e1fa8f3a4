"""The TecnoCursos benchmark's report: the tables of ``benchmarks.tecnocursos``'s runs."""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone

from benchmarks.server import package_version
from benchmarks.tecnocursos_workload import MIX, ZIPF_EXPONENT, Shape

Results = dict[str, list[dict[str, float]]]
"""Per configuration, one dict of measurements per round."""

Routes = dict[str, dict[str, list[float]]]
"""Per configuration, the milliseconds in the app of each ``METHOD route``."""


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile ``share`` (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share / 100 * len(ordered)) - 1))]


def hit_rates(runs: list[dict[str, float]]) -> dict[str, float]:
    """Hits / lookups per cache and over all (``all``), summed over the runs."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for measured in runs:
        for key, value in measured.items():
            match = re.fullmatch(r"cache_(\w+)_(hit|miss)", key)
            if match:
                for cache in (match.group(1), "all"):
                    totals[cache][0] += value if match.group(2) == "hit" else 0.0
                    totals[cache][1] += value
    return {cache: hits / lookups for cache, (hits, lookups) in totals.items() if lookups}


def failed_answers(runs: list[dict[str, float]], prefix: str = "") -> str:
    """The failed answers of ``runs`` by status or socket error, with their share."""
    failed: dict[str, float] = defaultdict(float)
    for measured in runs:
        for key, value in measured.items():
            if key.startswith(f"{prefix}status_"):
                failed[key.rpartition("_")[2]] += value
            elif key.startswith(f"{prefix}socket_") and key != f"{prefix}socket_errors":
                failed[f"socket {key.rpartition('_')[2]} errors"] += value
    requests = sum(r[f"{prefix}requests"] for r in runs)
    return (
        ", ".join(
            f"{count:.0f} x {what} ({count / requests:.2%})" for what, count in failed.items()
        )
        or "none"
    )


def _row(name: str, connections: int, runs: list[dict[str, float]], prefix: str, rest: str) -> str:
    """One table row: req/s median (min-max), p50/p95/p99 medians, answers that failed."""
    rps = [r[f"{prefix}rps"] for r in runs]
    cells = [name, str(connections)]
    cells.append(f"{statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f})")
    cells += [
        f"{statistics.median(r[f'{prefix}{key}'] for r in runs):.1f}"
        for key in ("p50", "p95", "p99")
    ]
    cells.append(failed_answers(runs, prefix))
    return "| " + " | ".join(cells) + f" | {rest} |"


def report(
    results: Results,
    routes: Routes,
    shape: Shape,
    args: argparse.Namespace,
    *,
    app: str,
    packages: Sequence[str],
) -> str:
    """The markdown report: settings, the table of runs, hit rates, time by route.

    Args:
        results: The measurements of each configuration, one dict per round.
        routes: Each configuration's time in the app by route (milliseconds).
        shape: What was seeded.
        args: The command line (durations, connections, plan).
        app: How the app was configured, one sentence.
        packages: The distributions whose versions the report names.
    """
    mix = ", ".join(f"{kind} {share}%" for kind, share in MIX.items())
    lines = [
        f"# TecnoCursos benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{args.rounds} round(s) per configuration, interleaved: {args.duration:g} s with "
        f"{args.connections} connections after a {args.warmup:g} s warm-up (the server "
        "saturated: its latencies include queueing; the CPU and hit rates are this run's), "
        f"then {args.light_duration:g} s with {args.light_connections} "
        f"(requests {'one at a time' if args.light_connections == 1 else 'few at a time'}: "
        "little queueing). uvicorn (httptools, uvloop, 1 worker) on CPU 0, wrk on CPU 1: "
        "the load generator shares this machine, and PostgreSQL and Redis run unpinned "
        f"beside them. Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; load average at the end "
        + "/".join(f"{load:.1f}" for load in os.getloadavg())
        + " (1/5/15 min).",
        "",
        f"App: {app}",
        "",
        f"Data: {shape.instructors} instructors, {shape.students} students, "
        f"{shape.instructors * shape.projects_per_instructor} projects (about 70% public) "
        f"of {shape.scenes_per_project} scenes. Workload: {args.plan} requests from seed "
        f"{args.seed}, replayed in a loop: {mix}; projects drawn with Zipf weights "
        f"(exponent {ZIPF_EXPONENT:g}).",
        "",
        "Versions: " + ", ".join(f"{name} {package_version(name)}" for name in packages),
        "",
        "| configuration | connections | req/s median (min-max) | p50 ms | p95 ms | p99 ms "
        "| failed answers | server CPU us/req | cache hit rate |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, runs in results.items():
        rate = hit_rates(runs).get("all", float("nan"))
        cpu = statistics.median(r["cpu_us"] for r in runs)
        lines.append(_row(name, args.connections, runs, "", f"{cpu:.0f} | {rate:.1%}"))
        if args.light_duration > 0:
            lines.append(_row(name, args.light_connections, runs, "light_", " | "))
    caches = sorted({cache for runs in results.values() for cache in hit_rates(runs)} - {"all"})
    lines += [
        "",
        "| cache hit rate | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for cache in caches:
        cells = [f"{hit_rates(runs).get(cache, float('nan')):.1%}" for runs in results.values()]
        lines.append(f"| {cache} | " + " | ".join(cells) + " |")
    connections = args.light_connections if args.light_duration > 0 else args.connections
    alone = "; one request at a time, so each is what it costs alone" if connections == 1 else ""
    for name, durations in routes.items():
        total = sum(len(values) for values in durations.values())
        lines += [
            "",
            f"Time in the app by route, {name}, {connections} connection(s) (the access "
            f"line's `duration_ms`, every round's requests together{alone}):",
            "",
            "| request | share | p50 ms | p95 ms | p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| `{route}` | {len(values) / total:.1%} | "
            + " | ".join(f"{percentile(values, share):.1f}" for share in (50, 95, 99))
            + " |"
            for route, values in sorted(durations.items(), key=lambda item: -len(item[1]))
        ]
    lines.append("")
    return "\n".join(lines)
