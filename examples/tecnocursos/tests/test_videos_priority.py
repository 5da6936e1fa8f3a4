"""The worker process's CPU priority: renders must yield to the API on a small machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tecnocursos.videos.ffmpeg import NICENESS, start_lowered

AUTOGROUP = Path("/proc/self/autogroup")

# What the worker's main() does first, then what the kernel says of the process.
PROBE = (
    "import os; from tecnocursos.videos.worker import lower_priority; "
    "grouped = lower_priority(); "
    "print(grouped, os.nice(0), open('/proc/self/autogroup').read().split()[-1])"
)


def _probe(*, own_session: bool) -> tuple[bool, int, int]:
    finished = subprocess.run(  # noqa: S603 - this interpreter, our own probe
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        start_new_session=own_session,
    )
    grouped, nice, group_nice = finished.stdout.split()
    return grouped == "True", int(nice), int(group_nice)


def _group_nice(pid: int) -> int:
    """The nice value of the autogroup of process ``pid``."""
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="the kernel has no autogroups")
def test_a_worker_leading_its_session_lowers_its_autogroup() -> None:
    """As a service (its own session), the worker's whole group yields, not only its nice."""
    grouped, nice, group_nice = _probe(own_session=True)
    assert grouped
    assert nice == min(os.nice(0) + NICENESS, 19)
    assert group_nice == NICENESS


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="the kernel has no autogroups")
def test_a_worker_in_another_s_session_leaves_the_group_alone() -> None:
    """Started beside the API in one session, lowering the group would lower the API too."""
    ours = int(AUTOGROUP.read_text().split()[-1])
    grouped, nice, group_nice = _probe(own_session=False)
    assert not grouped
    assert nice == min(os.nice(0) + NICENESS, 19)
    assert group_nice == ours


@pytest.mark.asyncio
@pytest.mark.skipif(not AUTOGROUP.exists(), reason="the kernel has no autogroups")
async def test_an_encoder_s_own_session_is_a_lowered_group() -> None:
    """Encoders and speech run in sessions of their own; each such group yields to the API."""
    process = await start_lowered("sleep", "30")
    try:
        assert os.getsid(process.pid) == process.pid
        assert _group_nice(process.pid) == NICENESS
    finally:
        process.kill()
        await process.wait()
