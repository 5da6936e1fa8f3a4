"""Deployment benchmark: TecnoCursos as the kit deploys it, measured through nginx.

Run through nox (it installs the library, the example project and wrk):
``nox -s bench_deployment`` or, for the CI smoke mode (the deployment comes up, every
request kind answers correctly through nginx, both instances serve, the cache counts, the
report is written; no timing assertion), ``nox -s bench_deployment -- --smoke``.

What runs: the kit's local runtime (``examples/tecnocursos/deploy/local.py``, the same
commands the deploy scripts use) brings up nginx (TLS with a certificate of its own CA),
the two gunicorn instances (``deploy/gunicorn.conf.py``: uvicorn workers), the video
worker and Prometheus, on PostgreSQL (a database of the run's own on
``BENCH_POSTGRES_URL``, created, migrated and dropped) and the runtime's Redis (the
shared cache and the rate-limit counters). wrk plays ``benchmarks/tecnocursos.lua`` over
HTTPS against nginx, on the same two cores as everything else.

Two workloads, each from a deterministic plan of ``benchmarks.tecnocursos_workload``
(projects drawn with Zipf weights, every request with its user's bearer token):

- ``reads``: cached GET reads only (project details, scene lists, project lists);
- ``mixed``: the TecnoCursos benchmark's mix (1% logins, 92% reads, 7% writes).

Per round and workload: the cache is emptied, a warm-up runs, then the measured run; the
hit rate comes from both instances' ``cache_requests_total`` (read from each instance's
``/metrics`` directly, not through nginx), cold (warm-up and run) and warm (the run).
The nginx zones and the app's own limits are raised out of reach, but still checked on
every request: the load comes from one address.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.server import SERVER_PACKAGES, fetch, package_version, write_results, wrk  # noqa: E402
from benchmarks.tecnocursos import (  # noqa: E402
    ARGON2,
    RAISED_LIMIT,
    SCRIPT,
    cache_counters,
    check_answers,
    log_in,
    postgres_database,
    seed_settings,
)
from benchmarks.tecnocursos_report import failed_answers, hit_rates  # noqa: E402
from benchmarks.tecnocursos_workload import (  # noqa: E402
    FULL,
    MIX,
    SMOKE,
    ZIPF_EXPONENT,
    Dataset,
    Shape,
    make_plan,
    seed,
    write_plan,
)
from tecnocursos.core.settings import RATE_LIMIT_ZONES  # noqa: E402

EXAMPLE = ROOT / "examples" / "tecnocursos"
LOCAL = EXAMPLE / "deploy" / "local.py"
READS: dict[str, int] = {"list_projects": 12, "read_project": 55, "list_scenes": 33}
"""The cached GET reads, in the mixed workload's proportions."""
WORKLOADS: dict[str, dict[str, int]] = {"reads": READS, "mixed": MIX}
FAIL_STATUS = {"reads": 400, "mixed": 429}
"""The lowest status that fails a run: a read must succeed; a write may meet a 409 race,
but a 429 (a limit reached) or a server error fails either."""
RAISED_RATE = "100000r/s"
"""Every nginx zone's rate in the run (with a burst to match): checked, never reached."""
CLAIMS = {"p95_ms": 200.0, "rps": 1000.0, "hit_rate": 0.85}
"""The original system's claims (the deployment issue's)."""
PACKAGES = (*SERVER_PACKAGES, "gunicorn", "uvicorn-worker", "sqlalchemy", "asyncpg", "redis")

Measured = dict[str, float]


# --- the deployment ----------------------------------------------------------------


class Deployment:
    """The kit's local runtime, driven through its command line (the ``TC_RUNTIME`` contract).

    Args:
        root: The deployment root (``releases/``, ``current``, the runtime's state).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.command = [sys.executable, str(LOCAL), "--root", str(root)]

    def run(self, *args: str) -> str:
        """One runtime command; its standard output. A failure raises with its stderr."""
        finished = subprocess.run(
            [*self.command, *args], cwd=EXAMPLE, capture_output=True, text=True, check=False
        )
        if finished.returncode != 0:
            raise RuntimeError(
                f"local.py {shlex.join(args)} failed ({finished.returncode}): "
                f"{finished.stderr[-3000:]}"
            )
        return finished.stdout

    def url(self, service: str) -> str:
        """The base URL of ``service``: ``app1``, ``app2`` (direct), ``https`` (nginx)."""
        return self.run("url", service).strip()

    def pids(self, *names: str) -> dict[str, int]:
        """The process (group leader) ids of ``names``, from the runtime's state file.

        The contract has no command for them: only the CPU meter needs them.
        """
        state = json.loads((self.root / "state.json").read_text())
        return {name: int(state["pids"][name]) for name in names}

    def setting(self, name: str) -> str:
        """The value of ``name`` in the current release's environment."""
        script = f"import os; print(os.environ[{name!r}])"
        return self.run("exec", str(self.root / "current"), sys.executable, "-c", script).strip()

    @contextlib.contextmanager
    def up(self, database_url: str, workers: int) -> Iterator[None]:
        """The whole deployment on ``database_url``, nginx's zones raised; down at the end."""
        options = ["--database-url", database_url, "--app-workers", str(workers)]
        for name, value in nginx_overrides().items():
            options += ["--nginx-var", f"{name}={value}"]
        try:
            self.run("up", *options)
            yield
        finally:
            self.run("down")


def nginx_overrides() -> dict[str, str]:
    """Every nginx zone's rate raised to ``RAISED_RATE``, its burst to one second of it."""
    burst = RAISED_RATE.removesuffix("r/s")
    zones = ("API", "AUTH", "UPLOADS", "VIDEOS")
    return {f"NGINX_RATE_{zone}": RAISED_RATE for zone in zones} | {
        f"NGINX_BURST_{zone}": burst for zone in zones
    }


def release(root: Path, env: dict[str, str]) -> None:
    """Write ``env`` as the release ``bench`` and make it ``current``."""
    directory = root / "releases" / "bench"
    directory.mkdir(parents=True)
    lines = [f"{name}={value}" for name, value in env.items()]
    (directory / "release.env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "current").symlink_to(directory)


def app_env(database_url: str, prefix: str) -> dict[str, str]:
    """The ``TC_*`` settings of the release: production, limits raised, a cache prefix.

    The runtime adds its own: its Redis servers, the trusted proxy, the secret key.
    """
    return {
        "TC_ENVIRONMENT": "production",
        "TC_DATABASE__URL": database_url,
        "TC_AUTH__ARGON2_TIME_COST": str(ARGON2["time_cost"]),
        "TC_AUTH__ARGON2_MEMORY_COST": str(ARGON2["memory_cost"]),
        "TC_AUTH__ACCESS_TOKEN_TTL": "3600",
        "TC_RATE_LIMIT__DEFAULT": RAISED_LIMIT,
        "TC_RATE_LIMIT__ROUTES": json.dumps(dict.fromkeys(RATE_LIMIT_ZONES, RAISED_LIMIT)),
        "TC_CACHE__BACKEND": "redis",
        "TC_CACHE__PREFIX": f"{prefix}-cache",
    }


def trust(ca_file: Path) -> None:
    """Make urllib trust the deployment's CA (the shared helpers call ``urlopen``)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    urllib.request.install_opener(
        urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    )


def tls_version(url: str, ca_file: Path) -> str:
    """The protocol and cipher nginx agrees on with OpenSSL's defaults (as wrk's are)."""
    host, _, port = url.removeprefix("https://").partition(":")
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as connection,
    ):
        cipher = connection.cipher()
        return f"{connection.version()}, {cipher[0] if cipher else 'no cipher'}"


def wait_ready(url: str, timeout: float = 60) -> None:
    """Poll ``url``'s readiness until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fetch(f"{url}/health/ready")
            return
        except (OSError, urllib.error.HTTPError):  # noqa: PERF203 - polling until ready
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}/health/ready did not answer 200 in time") from None
            time.sleep(0.25)


def counters(urls: list[str]) -> dict[tuple[str, str], float]:
    """``cache_requests_total`` by (cache, result), summed over the instances."""
    total: dict[tuple[str, str], float] = defaultdict(float)
    for url in urls:
        for key, value in cache_counters(url).items():
            total[key] += value
    return total


def lookups(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> Measured:
    """The cache lookups between two readings, as ``cache_<cache>_<result>`` entries."""
    return {
        f"cache_{cache}_{result}": value - before.get((cache, result), 0.0)
        for (cache, result), value in after.items()
    }


def empty_cache(redis_url: str, prefix: str) -> None:
    """Delete the cache's keys (those starting with ``prefix``): a cold cache."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


class CpuMeter:
    """CPU time of the deployment's processes and of the whole machine.

    Args:
        groups: The process group leader of each part (``nginx``, ``app1``...): a group's
            CPU is the sum over its live members (gunicorn's workers, nginx's).
    """

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups

    def sample(self) -> dict[str, float]:
        """Seconds of CPU used so far by each group, by wrk, and by the machine.

        ``machine_busy`` / ``machine_all``: the busy and the total seconds of all its cores.
        """
        used = dict.fromkeys(self.groups, 0.0)
        leaders = {pid: name for name, pid in self.groups.items()}
        tick = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:  # gone since the listing
                continue
            name = leaders.get(int(fields[2]))
            if name is not None:
                used[name] += (int(fields[11]) + int(fields[12])) / tick
        # wrk: this process's reaped children (the runtime's commands do not run meanwhile).
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used["wrk"] = children.ru_utime + children.ru_stime
        times = [int(value) / tick for value in Path("/proc/stat").read_text().split()[1:9]]
        used["machine_all"] = sum(times)
        used["machine_busy"] = sum(times) - times[3] - times[4]  # less idle and iowait
        return used

    def per_request(
        self, before: dict[str, float], after: dict[str, float], requests: float
    ) -> Measured:
        """Microseconds of CPU per request by part; the machine's busy share of its cores."""
        measured = {
            f"cpu_{name}_us": (after[name] - before[name]) / requests * 1e6
            for name in (*self.groups, "wrk")
        }
        measured["machine_busy"] = (after["machine_busy"] - before["machine_busy"]) / (
            after["machine_all"] - before["machine_all"]
        )
        return measured


# --- the run -----------------------------------------------------------------------


def play(
    url: str, plan: Path, workload: str, duration: float, connections: int, salt: str
) -> Measured:
    """wrk playing ``plan`` through nginx; a status from ``FAIL_STATUS[workload]`` fails."""
    return wrk(
        url,
        duration,
        connections,
        script=SCRIPT,
        script_args=[str(plan), salt],
        fail_status=FAIL_STATUS[workload],
    )


def measure(
    edge: str,
    instances: list[str],
    plans: dict[str, Path],
    cache: tuple[str, str],
    cpu: CpuMeter,
    args: argparse.Namespace,
) -> dict[str, list[Measured]]:
    """Every workload once per round, each from a cold cache: warm-up, then the run.

    The run saturates the deployment (its latencies include waiting in line); the light
    run after it, with few connections (about one per app worker), queues far less.

    ``cache`` is the Redis URL and the key prefix of the app's cache. The hit rates count
    the lookups after the warm-up (``cold_``: from the emptied cache on); the CPU is the
    saturated run's.
    """
    results: dict[str, list[Measured]] = defaultdict(list)
    for round_number in range(1, args.rounds + 1):
        for workload, plan in plans.items():
            empty_cache(*cache)
            cold = counters(instances)
            if args.warmup > 0:
                play(edge, plan, workload, args.warmup, args.connections, f"w{round_number}")
            warm = counters(instances)
            cpu_before = cpu.sample()
            measured = play(
                edge, plan, workload, args.duration, args.connections, str(round_number)
            )
            measured |= cpu.per_request(cpu_before, cpu.sample(), measured["requests"])
            measured["load_1min"] = os.getloadavg()[0]
            if args.light_duration > 0:
                time.sleep(1)  # the requests left in flight end first
                light = play(
                    edge,
                    plan,
                    workload,
                    args.light_duration,
                    args.light_connections,
                    f"l{round_number}",
                )
                measured |= {f"light_{name}": value for name, value in light.items()}
            after = counters(instances)
            measured |= lookups(warm, after)
            measured |= {f"cold_{key}": value for key, value in lookups(cold, after).items()}
            results[workload].append(measured)
            print(f"round {round_number}/{args.rounds}: {workload} done", file=sys.stderr)
    return results


# --- the report --------------------------------------------------------------------


def cold_rates(runs: list[Measured]) -> dict[str, float]:
    """Hit rates from the emptied cache on: the warm-up and the run together."""
    return hit_rates(
        [{key[5:]: value for key, value in r.items() if key.startswith("cold_")} for r in runs]
    )


def _row(name: str, connections: int, runs: list[Measured], prefix: str, rest: str) -> str:
    rps = [r[f"{prefix}rps"] for r in runs]
    return (
        f"| {name} | {connections} | {statistics.median(rps):,.0f} "
        f"({min(rps):,.0f}-{max(rps):,.0f}) | "
        + " | ".join(f"{median(runs, prefix + key):.1f}" for key in ("p50", "p95", "p99"))
        + f" | {failed_answers(runs, prefix)} | {rest} |"
    )


def median(runs: list[Measured], key: str) -> float:
    """The median of ``key`` over the rounds."""
    return statistics.median(r[key] for r in runs)


def report(results: dict[str, list[Measured]], shape: Shape, args: argparse.Namespace) -> str:
    """The markdown report: settings, the runs, hit rates, the original's claims."""
    loads = "/".join(f"{load:.1f}" for load in os.getloadavg())
    mixes = "; ".join(
        f"`{name}`: " + ", ".join(f"{kind} {share}%" for kind, share in WORKLOADS[name].items())
        for name in results
    )
    lines = [
        f"# Deployment benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"The kit's local deployment: nginx (HTTPS; {args.tls}) in front of two gunicorn "
        f"instances of {args.workers} uvicorn worker(s) each, the video worker and Prometheus "
        "idle beside them, PostgreSQL, the cache and the rate-limit counters on the runtime's "
        "Redis. wrk (1 thread, keep-alive, over HTTPS through nginx) pinned to CPU 1; every "
        "server unpinned on the same 2 cores, so the load generator takes its share of them. "
        f"{args.rounds} round(s), per workload: a cold cache, a {args.warmup:g} s warm-up, "
        f"{args.duration:g} s with {args.connections} connections (saturated: its latencies "
        "include waiting in line)"
        + (
            f", then {args.light_duration:g} s with {args.light_connections} (about one "
            "per app worker: far less queueing); the hit rates count both runs"
            if args.light_duration > 0
            else ""
        )
        + f". Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} "
        f"CPUs; load average at the end {loads} (1/5/15 min).",
        "",
        f"App: `TC_ENVIRONMENT=production`, Argon2id {ARGON2['time_cost']} iterations / "
        f"{ARGON2['memory_cost'] // 1024} MiB, the app's limits raised to {RAISED_LIMIT} and "
        f"nginx's zones to {RAISED_RATE} (checked on every request, never reached: the load "
        "comes from one address), access tokens valid 1 h.",
        "",
        f"Data: {shape.instructors} instructors, {shape.students} students, "
        f"{shape.instructors * shape.projects_per_instructor} projects (about 70% public) of "
        f"{shape.scenes_per_project} scenes. Plans of {args.plan} requests from seed "
        f"{args.seed}, replayed in a loop, projects drawn with Zipf weights (exponent "
        f"{ZIPF_EXPONENT:g}): {mixes}.",
        "",
        "Versions: " + ", ".join(f"{name} {package_version(name)}" for name in PACKAGES),
        "",
        "| workload | connections | req/s median (min-max) | p50 ms | p95 ms | p99 ms "
        "| failed answers | cache hit rate, warm | from cold |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, runs in results.items():
        rates = (
            f"{hit_rates(runs).get('all', float('nan')):.1%} | "
            f"{cold_rates(runs).get('all', float('nan')):.1%}"
        )
        lines.append(_row(name, args.connections, runs, "", rates))
        if args.light_duration > 0:
            lines.append(_row(name, args.light_connections, runs, "light_", " | "))
    lines += [
        "",
        f"CPU per request in the {args.connections}-connection runs (medians; the processes' "
        "user + system time over the run divided by the requests; the machine's busy share "
        "counts everything on it, PostgreSQL and any other load included):",
        "",
        "| workload | app1 + app2 us/req | nginx | Redis (both) | wrk | machine busy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {median(runs, 'cpu_app1_us') + median(runs, 'cpu_app2_us'):,.0f} | "
        f"{median(runs, 'cpu_nginx_us'):,.0f} | "
        f"{median(runs, 'cpu_redis-queue_us') + median(runs, 'cpu_redis-cache_us'):,.0f} | "
        f"{median(runs, 'cpu_wrk_us'):,.0f} | {median(runs, 'machine_busy'):.0%} |"
        for name, runs in results.items()
    ]
    caches = sorted({cache for runs in results.values() for cache in hit_rates(runs)} - {"all"})
    lines += [
        "",
        "| cache hit rate, warm (from cold) | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for cache in caches:
        cells = [
            f"{hit_rates(runs).get(cache, float('nan')):.1%} "
            f"({cold_rates(runs).get(cache, float('nan')):.1%})"
            for runs in results.values()
        ]
        lines.append(f"| {cache} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| the original's claim | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
        f"| p95 under {CLAIMS['p95_ms']:.0f} ms | "
        + " | ".join(
            f"{median(runs, 'p95'):.0f} ms"
            + (
                f" ({median(runs, 'light_p95'):.0f} ms at {args.light_connections} connections)"
                if args.light_duration > 0
                else ""
            )
            for runs in results.values()
        )
        + " |",
        f"| over {CLAIMS['rps']:.0f} req/s | "
        + " | ".join(f"{median(runs, 'rps'):,.0f}" for runs in results.values())
        + " |",
        f"| {CLAIMS['hit_rate']:.0%} cache hit rate | "
        + " | ".join(f"{hit_rates(runs).get('all', float('nan')):.1%}" for runs in results.values())
        + " |",
        "",
    ]
    return "\n".join(lines)


def run(
    edge: str,
    instances: list[str],
    dataset: Dataset,
    workloads: list[str],
    directory: Path,
    args: argparse.Namespace,
    cache: tuple[str, str],
    cpu: CpuMeter,
) -> dict[str, list[Measured]]:
    """Log in, check every kind of request through nginx, then measure the workloads.

    Both instances must have served cached reads: nginx balanced the load.
    """
    tokens = log_in(edge, dataset)
    check_answers(edge, dataset, make_plan(dataset, args.plan, args.seed), tokens)
    plans = {}
    for name in workloads:
        plans[name] = directory / f"{name}.plan"
        write_plan(plans[name], tokens, make_plan(dataset, args.plan, args.seed, WORKLOADS[name]))
    before = [cache_counters(url) for url in instances]
    results = measure(edge, instances, plans, cache, cpu, args)
    for measured in results.get("reads", []):
        if not any(value for key, value in measured.items() if key.endswith("_hit")):
            raise RuntimeError("the cached reads made no cache hit")
    for url, counted in zip(instances, before, strict=True):
        if sum(cache_counters(url).values()) <= sum(counted.values()):
            raise RuntimeError(f"{url} made no cache lookup: nginx sent it nothing")
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not measured")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--light-connections", type=int, default=4)
    parser.add_argument("--light-duration", type=float, default=8.0, help="0: no light run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per instance")
    parser.add_argument("--plan", type=int, default=20_000, help="requests in each plan")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help="the server the run's database is created on (and dropped from)",
    )
    parser.add_argument("--smoke", action="store_true", help="1 round of 1 s: correctness only")
    parser.add_argument("--output", default=None, help="the markdown report; JSON beside it")
    args = parser.parse_args()
    shape = FULL
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.connections = 1, 1.0, 1.0, 4
        args.light_duration = 0.0
        args.plan, shape = 2_000, SMOKE
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk); nox installs it")
    workloads = [name for name in args.workloads.split(",") if name]
    output = (
        Path(args.output)
        if args.output
        else ROOT
        / "benchmarks/results"
        / ("deployment-smoke.md" if args.smoke else "deployment.md")
    )
    prefix = f"tc-bench-{secrets.token_hex(4)}"
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fe-bench-deploy-")))
        database_url = stack.enter_context(postgres_database(args.postgres_url))
        env = app_env(database_url, prefix)
        release(root, env)
        dataset = seed(seed_settings(env), shape, args.seed)
        print("seeded", file=sys.stderr)
        deployment = Deployment(root)
        stack.enter_context(deployment.up(database_url, args.workers))
        print("deployment up", file=sys.stderr)
        edge = deployment.url("https")
        instances = [deployment.url(name) for name in ("app1", "app2")]
        trust(root / "tls" / "ca.crt")
        wait_ready(edge)
        args.tls = tls_version(edge, root / "tls" / "ca.crt")
        cache = (deployment.setting("TC_REDIS__URL"), f"{prefix}-cache")
        cpu = CpuMeter(deployment.pids("nginx", "app1", "app2", "redis-queue", "redis-cache"))
        results = run(edge, instances, dataset, workloads, root, args, cache, cpu)
    text = report(results, shape, args)
    summary = {
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "workers_per_instance": args.workers,
            "plan": args.plan,
            "seed": args.seed,
            "mixes_percent": {name: WORKLOADS[name] for name in workloads},
            "zipf_exponent": ZIPF_EXPONENT,
            "argon2": ARGON2,
            "app_rate_limit": RAISED_LIMIT,
            "nginx_rate": RAISED_RATE,
        },
        "runs": results,
        "cache_hit_rates": {name: hit_rates(runs) for name, runs in results.items()},
        "cold_cache_hit_rates": {name: cold_rates(runs) for name, runs in results.items()},
        "claims": CLAIMS,
        "load_average": os.getloadavg(),
    }
    write_results(output, text, PACKAGES, summary)
    print(text)


if __name__ == "__main__":
    main()
