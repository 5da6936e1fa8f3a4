"""Video benchmark: render times, and the API's latency while two renders run.

Run through nox (it installs the library, the example project and wrk):
``nox -s bench_videos`` or, for the CI smoke mode (the pipeline renders, every request
answers, the report is written; no timing assertion, under a minute),
``nox -s bench_videos -- --smoke``. espeak-ng (Debian's package) must be installed for
the narration to be spoken; without it the renders fall back to silence and captions,
and the report says so.

Method: the API as in ``benchmarks.tecnocursos`` (``uvicorn --factory
tecnocursos.core.app:create_app``, httptools, uvloop, one worker, pinned to CPU 0,
``TC_ENVIRONMENT=production``) with ``TC_VIDEO__QUEUE=redis`` (a dramatiq namespace of
the run's own on ``BENCH_REDIS_URL``, its keys deleted at the end), and two
``python -m tecnocursos.videos.worker`` processes, not pinned: they may use both cores,
as on a real 2-core machine. Each worker runs in a session of its own, as a service
does, so the kernel schedules it as a group of its own (autogroups); its priority is the
app's choice (``tecnocursos.videos.worker.lower_priority``). The database is PostgreSQL
(a database of its own on ``BENCH_POSTGRES_URL``, dropped at the end) or, with
``--database sqlite``, a file.

One check render first (one video, API idle) proves the pipeline and gives the job that
the latency plan reads. Then, in each round, two conditions in alternating order:

- ``idle``: wrk (pinned to CPU 1, a few connections, closed loop) plays
  ``GET /projects/{id}`` and ``GET /videos/{id}`` alternately for ``--duration`` s;
- ``rendering``: two videos are requested (one per worker); once both are running, the
  same wrk run; then both must still be running (else the round says so) and finish.

Latency percentiles come from wrk's histogram; the ratio rendering/idle is taken within
each round (paired), then its median. Render time per video and the scene count come
from the job rows (``GET /videos/{id}``: ``render_seconds``, ``video_seconds``,
``progress.scenes``), time per scene (speech and encoding, without the final join)
from the workers' ``tecnocursos_video_scene_render_seconds`` histograms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.server import (  # noqa: E402
    Server,
    cpu_seconds,
    fetch,
    free_port,
    package_version,
    write_results,
    wrk,
)
from benchmarks.tecnocursos import PACKAGES as APP_PACKAGES  # noqa: E402
from benchmarks.tecnocursos import SCRIPT as LUA  # noqa: E402
from benchmarks.tecnocursos import (  # noqa: E402
    add_service_arguments,
    log_in,
    postgres_database,
    redis_keys,
    seed_settings,
    send,
    server_env,
)
from benchmarks.tecnocursos_workload import (  # noqa: E402
    JSON,
    SCRIPT,
    Call,
    Dataset,
    Shape,
    seed,
    write_plan,
)

CONDITIONS = ("idle", "rendering")
WORKERS = 2
PACKAGES = (*APP_PACKAGES, "dramatiq", "imageio-ffmpeg", "pillow")
_SCENE_HISTOGRAM = re.compile(
    r"^tecnocursos_video_scene_render_seconds_(sum|count) (\S+)$", re.MULTILINE
)


# --- the worker processes ------------------------------------------------------------


class Worker:
    """One ``python -m tecnocursos.videos.worker`` process, in a process group of its own.

    Args:
        env: The app's ``TC_*`` variables (the worker reads the same settings).
        log: Where its stderr goes (its log lines go to ``TC_LOGGING__FILE_PATH``).
    """

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.port}/metrics"
        self.log = log
        path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tecnocursos.videos.worker"],
                cwd=ROOT,
                env={
                    **os.environ,
                    **env,
                    "TC_VIDEO__WORKER_METRICS_PORT": str(self.port),
                    "PYTHONPATH": path,
                },
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                # Its own session, as a service is: the kernel schedules it as a group of
                # its own (its encoders run in sessions of their own too).
                start_new_session=True,
            )

    def wait(self) -> None:
        """Return once its ``/metrics`` answers; raise if it exits or takes over 30 s."""
        deadline = time.monotonic() + 30
        while True:
            try:
                fetch(self.metrics_url)
                return
            except OSError:  # noqa: PERF203 - polling until it answers
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = self.log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"a video worker did not start: {tail}") from None
                time.sleep(0.1)

    def scene_seconds(self) -> tuple[float, float]:
        """The scene histogram's (sum, count) from its ``/metrics``."""
        _, body = fetch(self.metrics_url)
        values = dict(_SCENE_HISTOGRAM.findall(body.decode()))
        return float(values.get("sum", 0.0)), float(values.get("count", 0.0))

    def stop(self) -> None:
        """SIGTERM (a render in progress goes back to the queue); SIGKILL after 30 s."""
        if self.process.poll() is None:
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        # Its process group: anything of its own it left behind goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def workers(env: dict[str, str], directory: Path) -> Iterator[list[Worker]]:
    """``WORKERS`` started worker processes, stopped at the end."""
    started: list[Worker] = []
    try:
        for number in range(WORKERS):
            worker_env = env | {"TC_LOGGING__FILE_PATH": str(directory / f"worker-{number}.log")}
            started.append(Worker(worker_env, directory / f"worker-{number}.stderr"))
        for worker in started:
            worker.wait()
        yield started
    finally:
        for worker in started:
            worker.stop()


# --- talking to the app ------------------------------------------------------------


def request_video(url: str, project: int, tokens: list[str]) -> int:
    """``POST /projects/{project}/videos``; the job's ID."""
    body = json.dumps({"language": "en"})
    call = Call("create_video", "POST", f"/projects/{project}/videos", 0, JSON, body)
    status, job = send(url, call, tokens)
    if status != 202:
        raise RuntimeError(f"POST /projects/{project}/videos answered {status}")
    job_id: int = job["id"]
    return job_id


def read_job(url: str, job_id: int, tokens: list[str]) -> dict[str, Any]:
    """``GET /videos/{job_id}``."""
    status, job = send(url, Call("read_video", "GET", f"/videos/{job_id}", 0), tokens)
    if status != 200:
        raise RuntimeError(f"GET /videos/{job_id} answered {status}")
    return dict(job)


def wait_for(
    url: str, jobs: list[int], tokens: list[str], states: set[str], timeout: float
) -> list[dict[str, Any]]:
    """Poll ``jobs`` until each is in one of ``states``; a failed job raises."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [read_job(url, job_id, tokens) for job_id in jobs]
        if all(row["state"] in states for row in rows):
            return rows
        for row in rows:
            if row["state"] in {"failed", "cancelled"}:
                raise RuntimeError(f"video job {row['id']} {row['state']}: {row['error']}")
        if time.monotonic() > deadline:
            seen = ", ".join(f"{row['id']}: {row['state']}" for row in rows)
            raise RuntimeError(
                f"video jobs not {'/'.join(sorted(states))} in {timeout:g} s: {seen}"
            )
        time.sleep(0.1)


def check_video(url: str, job: dict[str, Any], tokens: list[str]) -> None:
    """The finished job's file is an MP4 of the size its row says."""
    headers = {"Authorization": f"Bearer {tokens[0]}"}
    status, body = fetch(f"{url}{job['file_url']}", headers=headers)
    if status != 200 or body[4:8] != b"ftyp" or len(body) != job["size"]:
        raise RuntimeError(f"{job['file_url']} answered {status} with {len(body)} bytes, no MP4")


def check_plan(url: str, plan: list[Call], tokens: list[str]) -> None:
    """Every request of the latency plan answers 200."""
    for call in plan:
        status, _ = send(url, call, tokens)
        if status != 200:
            raise RuntimeError(f"{call.method} {call.path} answered {status}")


def render_row(job: dict[str, Any]) -> dict[str, float]:
    """A finished job's figures."""
    return {
        "render_s": float(job["render_seconds"]),
        "video_s": float(job["video_seconds"]),
        "scenes": float(job["progress"]["scenes"]),
        "bytes": float(job["size"]),
    }


# --- the run -----------------------------------------------------------------------


def measure(
    server: Server, plan_file: Path, args: argparse.Namespace, salt: str
) -> dict[str, float]:
    """One wrk run of the latency plan, with the API's CPU per request."""
    before = cpu_seconds(server.process.pid)
    measured = wrk(
        server.url,
        args.duration,
        args.connections,
        script=LUA,
        script_args=[str(plan_file), salt],
    )
    measured["cpu_us"] = (cpu_seconds(server.process.pid) - before) / measured["requests"] * 1e6
    return measured


def rendering(
    server: Server,
    pool: list[Worker],
    dataset: Dataset,
    tokens: list[str],
    plan_file: Path,
    args: argparse.Namespace,
    salt: str,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Two renders, the latency plan while both run; the latency and the renders."""
    projects = [project.id for project in dataset.projects[:WORKERS]]
    before = [worker.scene_seconds() for worker in pool]
    jobs = [request_video(server.url, project, tokens) for project in projects]
    # Both running: one per worker. A render that ends first (too short a video) is
    # reported: the round then measured less than two renders.
    started = wait_for(server.url, jobs, tokens, {"running", "succeeded"}, timeout=60)
    measured = measure(server, plan_file, args, salt)
    after_run = [read_job(server.url, job_id, tokens)["state"] for job_id in jobs]
    measured["overlap"] = float(
        all(row["state"] == "running" for row in started)
        and all(state == "running" for state in after_run)
    )
    done = wait_for(server.url, jobs, tokens, {"succeeded"}, timeout=args.render_timeout)
    after = [worker.scene_seconds() for worker in pool]
    seconds = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    count = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    measured["scene_s"] = seconds / count if count else float("nan")
    return measured, [render_row(job) for job in done]


def run(
    server: Server,
    pool: list[Worker],
    dataset: Dataset,
    directory: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The check render, then the rounds; every measurement."""
    tokens = log_in(server.url, dataset)
    # The check render: one video, nothing else running.
    before = pool[0].scene_seconds(), pool[1].scene_seconds()
    check = request_video(server.url, dataset.projects[0].id, tokens)
    (job,) = wait_for(server.url, [check], tokens, {"succeeded"}, timeout=args.render_timeout)
    check_video(server.url, job, tokens)
    after = pool[0].scene_seconds(), pool[1].scene_seconds()
    alone = render_row(job)
    count = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    alone["scene_s"] = sum(a[0] - b[0] for a, b in zip(after, before, strict=True)) / count
    warnings = list(job["warnings"])
    print(f"check render: {alone['render_s']:.1f} s, {warnings or 'no warnings'}", file=sys.stderr)

    project = dataset.projects[0].id
    plan = [
        Call("read_project", "GET", f"/projects/{project}", 0),
        Call("read_video", "GET", f"/videos/{check}", 0),
    ]
    check_plan(server.url, plan, tokens)
    plan_file = directory / "videos.plan"
    write_plan(plan_file, tokens[:1], plan)
    if args.warmup > 0:
        wrk(
            server.url, args.warmup, args.connections, script=LUA, script_args=[str(plan_file), "w"]
        )

    latency: dict[str, list[dict[str, float]]] = {name: [] for name in CONDITIONS}
    renders: list[dict[str, float]] = []
    for number in range(1, args.rounds + 1):
        order = CONDITIONS if number % 2 else CONDITIONS[::-1]
        for condition in order:
            salt = f"{number}{condition[0]}"
            if condition == "idle":
                latency["idle"].append(measure(server, plan_file, args, salt))
            else:
                measured, rows = rendering(server, pool, dataset, tokens, plan_file, args, salt)
                latency["rendering"].append(measured)
                renders += rows
            print(f"round {number}/{args.rounds}: {condition} done", file=sys.stderr)
    return {"latency": latency, "renders": renders, "alone": alone, "warnings": warnings}


# --- the report ----------------------------------------------------------------------


def _median_range(values: list[float], form: str = "{:.1f}") -> str:
    median = form.format(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({form.format(min(values))}-{form.format(max(values))})"


def report(
    results: dict[str, Any], args: argparse.Namespace, loads: tuple[tuple[float, ...], ...]
) -> str:
    """The markdown tables."""
    latency: dict[str, list[dict[str, float]]] = results["latency"]
    renders: list[dict[str, float]] = results["renders"]
    alone: dict[str, float] = results["alone"]
    started, ended = loads
    lines = [
        f"# TecnoCursos video benchmark ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{args.rounds} round(s); the API (uvicorn, 1 worker, CPU 0) on {args.database}, "
        f"{WORKERS} `tecnocursos.videos.worker` processes (not pinned, each in a session of "
        "its own; a worker runs at nice 10 with its autogroup, its ffmpeg at 19), "
        f"dramatiq on Redis. Latency: wrk on CPU 1, {args.connections} connections, closed "
        f"loop, {args.duration:g} s per condition, `GET /projects/{{id}}` and "
        f"`GET /videos/{{id}}` alternately. Videos of {args.scenes} scene(s) of the seeded "
        f"script ({len(SCRIPT)} characters, 30 s each), 1280x720, English. "
        f"{os.cpu_count()} CPUs; load average {started[0]:.2f} at the start, "
        f"{ended[0]:.2f} at the end.",
        "",
        "Versions: " + ", ".join(f"{name} {package_version(name)}" for name in PACKAGES),
        "",
    ]
    if results["warnings"]:
        lines += [f"Render warnings: {'; '.join(results['warnings'])}.", ""]
    lines += [
        "**API latency, idle and while two videos render**",
        "",
        "| condition | req/s median (min-max) | p50 ms | p95 ms | p99 ms | API CPU us/req |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for condition in CONDITIONS:
        runs = latency[condition]
        lines.append(
            "| "
            + " | ".join(
                [
                    condition,
                    _median_range([r["rps"] for r in runs], "{:,.0f}"),
                    *(
                        _median_range([r[key] for r in runs], "{:.2f}")
                        for key in ("p50", "p95", "p99")
                    ),
                    f"{statistics.median(r['cpu_us'] for r in runs):.0f}",
                ]
            )
            + " |"
        )
    ratios = []
    for key in ("rps", "p50", "p95", "p99"):
        paired = [
            busy[key] / idle[key]
            for idle, busy in zip(latency["idle"], latency["rendering"], strict=True)
        ]
        ratios.append(_median_range(paired, "{:.2f}"))
    lines.append(f"| ratio rendering/idle (paired by round) | {' | '.join(ratios)} | |")
    overlapped = sum(r["overlap"] for r in latency["rendering"])
    lines += [
        "",
        f"Both renders ran through the whole measurement in {overlapped:.0f} of "
        f"{len(latency['rendering'])} round(s).",
        "",
        "**Render time**",
        "",
        "| | videos | scenes | video s | render s per video | render s per scene "
        "| scene s (speech + encode) | realtime factor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows, scene_s in (
        ("one render, API idle", [alone], [alone["scene_s"]]),
        (
            "two at once, API under load",
            renders,
            [r["scene_s"] for r in latency["rendering"]],
        ),
    ):
        lines.append(
            f"| {name} | {len(rows)} | {statistics.median(r['scenes'] for r in rows):.0f} "
            f"| {statistics.median(r['video_s'] for r in rows):.1f} "
            f"| {_median_range([r['render_s'] for r in rows])} "
            f"| {_median_range([r['render_s'] / r['scenes'] for r in rows], '{:.2f}')} "
            f"| {_median_range(scene_s, '{:.2f}')} "
            f"| {_median_range([r['video_s'] / r['render_s'] for r in rows])}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per condition")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, not measured")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--scenes", type=int, default=4, help="scenes per video (30 s each)")
    parser.add_argument("--render-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    add_service_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.scenes = 1, 1.0, 0.0, 1
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk); nox installs it")
    output = (
        Path(args.output)
        if args.output
        else ROOT / "benchmarks/results" / ("videos-smoke.md" if args.smoke else "videos.md")
    )
    prefix = f"tc-bench-{secrets.token_hex(4)}"
    shape = Shape(
        instructors=1, students=0, projects_per_instructor=WORKERS, scenes_per_project=args.scenes
    )
    load_start = os.getloadavg()

    with (
        tempfile.TemporaryDirectory(prefix="fe-bench-videos-") as name,
        contextlib.ExitStack() as stack,
    ):
        directory = Path(name)
        if args.database == "postgresql":
            url = stack.enter_context(postgres_database(args.postgres_url))
        else:
            url = f"sqlite:///{directory}/tc.db"
        stack.enter_context(redis_keys(args.redis_url, prefix))
        env = server_env(args.database, url, directory, args.redis_url, prefix) | {
            "TC_REDIS__URL": args.redis_url,
            "TC_VIDEO__QUEUE": "redis",
            "TC_VIDEO__NAMESPACE": f"{prefix}-videos",
        }
        dataset = seed(seed_settings(env), shape, args.seed)
        print(f"{args.database}: seeded", file=sys.stderr)
        server = Server(
            "create_app",
            module="tecnocursos.core.app",
            ready_path="/health/live",
            env=env | {"TC_LOGGING__FILE_PATH": str(directory / "api.log")},
        )
        try:
            server.wait()
            with workers(env, directory) as pool:
                results = run(server, pool, dataset, directory, args)
        finally:
            stderr = server.stop()
        if server.process.returncode not in (0, -signal.SIGTERM):
            print(stderr[-2000:], file=sys.stderr)
    loads = (load_start, os.getloadavg())
    text = report(results, args, loads)
    summary = {
        "settings": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "scenes": args.scenes,
            "database": args.database,
            "workers": WORKERS,
        },
        **results,
        "load_average": {"start": loads[0], "end": loads[1]},
    }
    write_results(output, text, PACKAGES, summary)
    print(text)


if __name__ == "__main__":
    main()
