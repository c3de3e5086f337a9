"""The socket-path rule from SPEC.md, one case per branch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helperd_client.paths import socket_path


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        pytest.param(
            {"HELPERD_SOCKET": "/s/x.sock", "HELPERD_HOME": "/h"},
            "linux",
            "/s/x.sock",
            id="socket-wins",
        ),
        pytest.param(
            {"HELPERD_HOME": "/h", "XDG_RUNTIME_DIR": "/r"}, "linux", "/h/helperd.sock", id="home"
        ),
        pytest.param({"XDG_RUNTIME_DIR": "/r"}, "linux", "/r/helperd/helperd.sock", id="xdg"),
        pytest.param({"TMPDIR": "/t"}, "darwin", "/t/helperd/helperd.sock", id="macos"),
        pytest.param({}, "darwin", "/tmp/helperd/helperd.sock", id="macos-no-tmpdir"),
        pytest.param({"TMPDIR": "/t"}, "freebsd14", "/t/helperd-4242/helperd.sock", id="tmp"),
        pytest.param(
            {"HELPERD_SOCKET": ""},
            "freebsd14",
            "/tmp/helperd-4242/helperd.sock",
            id="empty-is-unset",
        ),
    ],
)
def test_socket_path_rule(env: dict[str, str], platform: str, expected: str) -> None:
    """Each variable wins over the ones after it; the last resort is per-uid under TMPDIR."""
    assert Path(expected) == socket_path(env, platform=platform, uid=4242)


def test_run_user_used_when_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Linux without XDG_RUNTIME_DIR, /run/user/<uid> is used when that folder exists."""
    uid = 0
    expected = Path(f"/run/user/{uid}/helperd/helperd.sock")
    monkeypatch.setattr(os.path, "isdir", lambda path: path == f"/run/user/{uid}")
    assert expected == socket_path({}, platform="linux", uid=uid)
