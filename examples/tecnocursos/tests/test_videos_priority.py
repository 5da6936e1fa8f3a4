"""The worker process's CPU priority: renders must yield to the API on a small machine."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tecnocursos.videos.ffmpeg import NICENESS, start_lowered

AUTOGROUP = Path("/proc/self/autogroup")

# What the worker's main() does first, then what the kernel says of the process: one
# value per line, the last the raw autogroup line. The kernel prints nothing there for a
# process outside any autogroup (the root group of a container's init session, or a cgroup
# with its own CPU controller), so that line may be empty.
PROBE = (
    "import os; from tecnocursos.videos.worker import lower_priority; "
    "grouped = lower_priority(); "
    "print(grouped); print(os.nice(0)); print(open('/proc/self/autogroup').read().strip())"
)
GROUP_LINE = re.compile(r"/autogroup-\d+ nice (-?\d+)")


def _probe(*, own_session: bool) -> tuple[bool, int, str]:
    finished = subprocess.run(  # noqa: S603 - this interpreter, our own probe
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        start_new_session=own_session,
    )
    grouped, nice, group_line = finished.stdout.split("\n")[:3]
    return grouped == "True", int(nice), group_line


def _nice_of(group_line: str) -> int:
    """The nice value in an autogroup line; a process in a session of its own has one."""
    matched = GROUP_LINE.fullmatch(group_line)
    assert matched, f"not an autogroup line: {group_line!r}"
    return int(matched.group(1))


def _group_nice(pid: int) -> int:
    """The nice value of the autogroup of process ``pid``."""
    return _nice_of(Path(f"/proc/{pid}/autogroup").read_text().strip())


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="the kernel has no autogroups")
def test_a_worker_leading_its_session_lowers_its_autogroup() -> None:
    """As a service (its own session), the worker's whole group yields, not only its nice."""
    grouped, nice, group_line = _probe(own_session=True)
    assert grouped
    assert nice == min(os.nice(0) + NICENESS, 19)
    assert _nice_of(group_line) == NICENESS


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="the kernel has no autogroups")
def test_a_worker_in_another_s_session_leaves_the_group_alone() -> None:
    """Started beside the API in one session, lowering the group would lower the API too."""
    ours = AUTOGROUP.read_text().strip()  # empty outside any autogroup: then so is the probe's
    grouped, nice, group_line = _probe(own_session=False)
    assert not grouped
    assert nice == min(os.nice(0) + NICENESS, 19)
    assert group_line == ours  # the same group, its nice untouched


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
