"""Instructions per request of each stage, counted by valgrind: repeatable attribution.

CPU time (``benchmarks.inprocess``) is what a request costs, but one stage's share of it
is a difference of two noisy figures: on these machines a paired median still moves by
a few microseconds from run to run, as much as most single stages cost. The number of
instructions the interpreter executes does not move: ``valgrind --tool=callgrind``
counts them, the same for the same code and inputs whatever else the machine does. So
this harness attributes the stack's cost to its stages by instructions (full stack
minus the stack without that stage, each in its own process), while the CPU-time
harness stays the measure of the cost itself. Instructions are not time: the library's
interpreted Python runs fewer instructions per cycle than FastAPI's compiled
serialization, so a stage's share of the time is larger than its share of the
instructions (the performance page shows both).

Each variant runs twice under callgrind (``--requests`` and ``--requests`` + 1000
requests, after the same warm-up) and the difference, divided by 1000, is its cost per
request: start-up and warm-up cancel out. ``PYTHONHASHSEED`` is fixed so that dicts
are laid out alike in every run. Run: ``python -m benchmarks.instructions`` (about five
minutes on two cores; ``--smoke`` counts two variants on a few requests, to check the
harness, in about a minute).

Not a test: nothing here asserts on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
MEASURED = 1000
"""Requests between the two counts of a variant."""

_NEVER = {"default": "1000000/minute"}  # a limit that never trips
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "bare": ("bare FastAPI", None),
    "full": ("install(), full default stack", {"rate_limit": _NEVER}),
    "no_access_log": (
        "full, access log off",
        {"rate_limit": _NEVER, "logging": {"access_log": False}},
    ),
    "no_rate_limit": ("full, rate limit off", {"rate_limit": {"enabled": False}}),
    "no_metrics": ("full, metrics off", {"rate_limit": _NEVER, "metrics": {"enabled": False}}),
    "no_compression": (
        "full, compression off",
        {"rate_limit": _NEVER, "compression": {"enabled": False}},
    ),
    "core": (
        "install(), access log, rate limit, metrics, compression off",
        {
            "rate_limit": {"enabled": False},
            "metrics": {"enabled": False},
            "compression": {"enabled": False},
            "logging": {"access_log": False},
        },
    ),
}
STAGES = (
    ("access log (line rendered and written)", "no_access_log"),
    ("rate limit (memory)", "no_rate_limit"),
    ("metrics", "no_metrics"),
    ("compression (body under 500 B)", "no_compression"),
)


def child(variant: str, requests: int) -> None:
    """Serve ``requests`` requests to ``variant`` after a warm-up (run under valgrind)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.inprocess import drive, make_app
    from fastapi_enterprise import EnterpriseSettings, configure_logging

    devnull = open(os.devnull, "w")  # noqa: SIM115 - the process ends right after
    handle = configure_logging(EnterpriseSettings(environment="production"), stream=devnull)
    options = VARIANTS[variant][1]
    app = (
        make_app()
        if options is None
        else make_app(settings=EnterpriseSettings(environment="test", **options))
    )
    headers = [(b"host", b"bench"), (b"accept-encoding", b"gzip")]
    asyncio.run(drive(app, requests, headers))
    handle.flush(timeout=60)  # the writer thread's share is counted too
    handle.stop()


def count(variant: str, requests: int) -> int:
    """Instructions of a whole child process serving ``requests`` requests."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    completed = subprocess.run(
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.instructions",
            "--child",
            variant,
            str(requests),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", completed.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{completed.stderr[-2000:]}")
    return int(found.group(1))


def per_request(variant: str, warm: int, measured: int) -> float:
    """Instructions per request: the difference of two runs, over the extra requests."""
    return (count(variant, warm + measured) - count(variant, warm)) / measured


def report(costs: dict[str, float], measured: int) -> str:
    """The markdown table: each variant, then each stage's share of the stack."""
    bare, full = costs["bare"], costs["full"]
    lines = [
        f"# Instructions per request ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"valgrind --tool=callgrind, {measured} requests per variant (the difference of "
        f"two runs), PYTHONHASHSEED=0, the log writer thread included. Python "
        f"{platform.python_version()}.",
        "",
        "| app | instructions/request | minus bare | ratio to bare |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {VARIANTS[name][0]} | {value:,.0f} | {value - bare:+,.0f} | {value / bare:.2f} |"
        for name, value in costs.items()
    ]
    stack = full - bare
    if "core" not in costs:  # --smoke counts bare FastAPI and the full stack only
        return "\n".join(lines)
    lines += [
        "",
        "| stage (full stack minus the stack without it) | instructions/request "
        "| share of the stack |",
        "|---|---:|---:|",
    ]
    for label, variant in STAGES:
        share = full - costs[variant]
        lines.append(f"| {label} | {share:,.0f} | {share / stack:.0%} |")
    core = costs["core"] - bare
    lines.append(
        f"| proxy headers, request ID, security headers, body limit, the layer itself "
        f"(core minus bare) | {core:,.0f} | {core / stack:.0%} |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "REQUESTS"), help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="few requests: the harness runs")
    parser.add_argument("--output", default=None, help="default: results/instructions.md")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    warm, measured = (20, 40) if args.smoke else (100, MEASURED)
    variants = ["bare", "full"] if args.smoke else list(VARIANTS)
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        futures = {name: pool.submit(per_request, name, warm, measured) for name in variants}
        costs = {name: future.result() for name, future in futures.items()}
    text = report(costs, measured)
    print(text)
    if not args.smoke:
        output = Path(args.output) if args.output else RESULTS / "instructions.md"
        output.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
