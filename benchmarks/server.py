"""Server benchmark: each app under uvicorn, driven by wrk, interleaved round by round.

Run through nox (it installs everything, wrk included): ``nox -s bench`` or, for the CI
smoke mode (a few seconds; checks that every app answers correctly and the report is
written; no timing assertion), ``nox -s bench -- --smoke``.

Method: uvicorn (httptools, uvloop, one worker, access log off) pinned to CPU 0, wrk
pinned to CPU 1 (``taskset``), keep-alive connections, ``Accept-Encoding: gzip``. Each
round runs every app once per endpoint, so slow drifts of the machine hit all apps
alike; the report gives the median and the min-max over rounds. Server CPU per request
is the uvicorn process's user+system time over the run divided by the requests served.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = ("small", "large", "realistic/7")
SERVER_PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic")
"""The distributions every server benchmark reports the versions of."""
PACKAGES = (
    *SERVER_PACKAGES,
    "structlog",
    "limits",
    "prometheus-client",
    "asgi-correlation-id",
    "secure",
    "slowapi",
    "prometheus-fastapi-instrumentator",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: int, command: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *command]
    return command


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """``method`` on ``url``: the status and the (gunzipped) body; HTTPError on 4xx/5xx."""
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Accept-Encoding": "gzip", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return response.status, body


class Server:
    """One app under uvicorn on CPU 0.

    Args:
        app: the factory's name in ``module``.
        module: the module holding the app factories.
        ready_path: the path polled until the server answers.
        env: extra environment variables for the server process.
    """

    def __init__(
        self,
        app: str,
        *,
        module: str = "benchmarks.apps",
        ready_path: str = "/small",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            f"{module}:{app}",
            "--factory",
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        # ROOT first; a PYTHONPATH already set (a worktree's src/) stays after it.
        path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        env = {**os.environ, **(env or {}), "PYTHONPATH": path}
        self.process = subprocess.Popen(
            pinned(0, command),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def wait(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(f"{self.url}{self.ready_path}")
                return
            except urllib.error.HTTPError as answer:  # noqa: PERF203 - polling until it answers
                # Up but answering an error: waiting longer will not help.
                self.stop()
                raise RuntimeError(f"{self.url}{self.ready_path} answered {answer.code}") from None
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    # Stop it first: reading the stderr of a live server blocks forever.
                    stderr = self.stop()
                    raise RuntimeError(f"server did not start: {stderr[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> str:
        """Stop the server; return what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, error = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, error = self.process.communicate()
        return error.decode(errors="replace") if error else ""


def check_answers(url: str) -> None:
    """Every app must answer every endpoint with the same JSON."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.apps import LARGE, REALISTIC_PATH, SMALL, expected_course

    answers = (("small", SMALL), ("large", LARGE), (REALISTIC_PATH, expected_course(7)))
    for endpoint, expected in answers:
        status, body = fetch(f"{url}/{endpoint}")
        if status != 200 or json.loads(body) != expected:
            raise RuntimeError(f"{url}/{endpoint} answered {status} with unexpected content")


def wrk(
    url: str,
    duration: float,
    connections: int,
    *,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    fail_status: int = 400,
) -> dict[str, float]:
    """Run wrk on CPU 1: req/s, requests, p50/p99 ms; raise on any non-2xx/3xx answer.

    A Lua ``script`` may report numbers of its own by printing ``bench.<name>=<value>``
    lines from ``done()`` (e.g. ``bench.p95=12.5``): they join the result, overriding
    wrk's rounded percentiles. When it counts the failing answers by status
    (``bench.status_409=3``), only those from ``fail_status`` up raise (500: server
    errors only); the others are in the result (``non_2xx``, ``status_<code>``).
    """
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, int(duration))}s",
        "--latency",
        "-H",
        "Accept-Encoding: gzip",
    ]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    finished = subprocess.run(pinned(1, command), capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr[-2000:]}")
    output = finished.stdout
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
    }
    for percentile in ("50", "99"):
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
            result[f"p{percentile}"] = float(match.group(1)) * scale
    for name, value in re.findall(r"^bench\.(\w+)=([\d.]+)\s*$", output, re.MULTILINE):
        result[name] = float(value)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["socket_errors"] = sum(map(float, sockets.groups())) if sockets else 0.0
    if sockets:  # by kind: a timeout (wrk's 2 s) is not a connection the server dropped
        for kind, count in zip(
            ("connect", "read", "write", "timeout"), sockets.groups(), strict=True
        ):
            if int(count):
                result[f"socket_{kind}"] = float(count)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        result["non_2xx"] = float(errors.group(1))
        statuses = {
            int(name[7:]): value for name, value in result.items() if name.startswith("status_")
        }
        if not statuses or max(statuses) >= fail_status:
            named = ", ".join(
                f"{status}: {count:.0f}" for status, count in sorted(statuses.items())
            )
            raise RuntimeError(f"{url}: {errors.group(1)} non-2xx responses ({named or 'wrk'})")
    return result


def run(
    apps: list[str], rounds: int, duration: float, connections: int
) -> dict[str, list[dict[str, float]]]:
    sys.path.insert(0, str(ROOT))
    from benchmarks.apps import prepare_realistic_database

    prepare_realistic_database()
    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    for round_number in range(1, rounds + 1):
        for app in apps:
            server = Server(app)
            try:
                server.wait()
                check_answers(server.url)
                for endpoint in ENDPOINTS:
                    before = cpu_seconds(server.process.pid)
                    measured = wrk(f"{server.url}/{endpoint}", duration, connections)
                    measured["cpu_us"] = (
                        (cpu_seconds(server.process.pid) - before) / measured["requests"] * 1e6
                    )
                    results[f"{app}/{endpoint}"].append(measured)
            finally:
                server.stop()
            print(f"round {round_number}/{rounds}: {app} done", file=sys.stderr)
    return results


def report(
    results: dict[str, list[dict[str, float]]], apps: list[str], args: argparse.Namespace
) -> str:
    lines = [
        f"# Server benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{args.rounds} round(s) of {args.duration:g} s per app and endpoint, {args.connections} "
        f"connections, wrk on CPU 1, uvicorn (httptools, uvloop, 1 worker) on CPU 0. "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs.",
        "",
        "Versions: " + ", ".join(f"{name} {package_version(name)}" for name in PACKAGES),
        "",
    ]
    for endpoint in ENDPOINTS:
        reference = statistics.median(r["rps"] for r in results[f"bare/{endpoint}"])
        lines += [
            f"## /{endpoint}",
            "",
            "| app | req/s median (min-max) | ratio to bare | p50 ms | p99 ms "
            "| server CPU us/req |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [table_row(app, results[f"{app}/{endpoint}"], reference) for app in apps]
        lines.append("")
    return "\n".join(lines)


def table_row(name: str, runs: list[dict[str, float]], reference: float) -> str:
    """One markdown row: req/s median (min-max), ratio to ``reference``, p50, p99, CPU."""
    rps = [r["rps"] for r in runs]
    median = statistics.median(rps)
    p50 = statistics.median(r.get("p50", float("nan")) for r in runs)
    p99 = statistics.median(r.get("p99", float("nan")) for r in runs)
    cpu = statistics.median(r["cpu_us"] for r in runs)
    return (
        f"| {name} | {median:,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | "
        f"{median / reference:.2f} | {p50:.2f} | {p99:.2f} | {cpu:.0f} |"
    )


def package_version(name: str) -> str:
    """The installed version of a distribution, or ``-``."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def write_results(
    output: Path, text: str, packages: Sequence[str], summary: dict[str, Any]
) -> None:
    """Write the markdown report to ``output`` and the JSON summary beside it.

    The summary starts with the date, Python, the CPU count and the versions of
    ``packages``; ``summary`` (settings, runs, derived figures) follows.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n", encoding="utf-8")
    header = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "versions": {name: package_version(name) for name in packages},
    }
    document = json.dumps(header | summary, indent=2)
    output.with_suffix(".json").write_text(document + "\n", encoding="utf-8")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.apps import APPS, DEFAULT_APPS

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--apps", default=None, help=f"default: {','.join(DEFAULT_APPS)}; every app with --smoke"
    )
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s: correctness only")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.duration, args.connections = 1, 1.0, 4
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk); `nox -s bench` installs it")
    chosen = args.apps or ",".join(APPS if args.smoke else DEFAULT_APPS)
    apps = [name for name in chosen.split(",") if name]
    if "bare" not in apps:
        apps.insert(0, "bare")
    text = report(run(apps, args.rounds, args.duration, args.connections), apps, args)
    output = (
        Path(args.output)
        if args.output
        else ROOT / "benchmarks/results" / ("smoke.md" if args.smoke else "latest.md")
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
