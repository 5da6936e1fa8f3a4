"""The harness's real servers: tests that run at once must not share anything."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import GunicornProcess

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def test_gunicorn_opens_no_control_socket_in_the_home_directory(tmp_path: Path) -> None:
    """By default gunicorn >= 25.1 listens on ``~/.gunicorn/gunicorn.ctl``: one path for all.

    Two gunicorn tests running at once (or a developer's own gunicorn) would fight over
    that socket; the harness turns it off.
    """
    (tmp_path / "plainapp.py").write_text(APP)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{name: value for name, value in os.environ.items() if name != "XDG_RUNTIME_DIR"},
        "HOME": str(home),
        "PYTHONPATH": str(tmp_path),
    }
    with GunicornProcess("plainapp:app", env=env, cwd=tmp_path, workers=1) as server:
        assert server.wait_until_serving("/").text == "ok"
        assert list(home.rglob("*")) == []
