"""A stopped daemon never means plaintext: ``poetry config http-basic`` with no daemon up.

The keyring plugin in Poetry's venv starts a daemon on demand (the worktree's own ``helperd``,
linked into a PATH folder of the test's, in the test's temporary HELPERD_HOME), stores the
password there, and a later ``poetry add`` authenticates through it. With on-demand start
turned off (``HELPERD_AUTOSTART=0``), the command fails and no file holds the password.
The started daemon is stopped by the test, by the PID its status gives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helperd_client import Client

from helperd.testing import Daemon
from tests.e2e.harness import Result, Sandbox, files_containing
from tests.e2e.index import PACKAGE, Index
from tests.e2e.test_poetry import _auth_toml, _installed, _ok, _poetry, _project
from tests.e2e.toolenv import Tools
from tests.integration.test_autostart import stop_by_pid

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HELPERD = Path(sys.executable).parent / "helperd"


@pytest.fixture
def stopped(helperd: Daemon, key_file: Path, tmp_path: Path) -> dict[str, str]:
    """The test's daemon stopped (its socket removed) and a PATH folder holding the worktree's
    helperd; returns the variables a user's tool would have: on-demand start at its default."""
    helperd.stop()
    assert not helperd.socket.exists()
    bin_dir = tmp_path / "helperd-bin"
    bin_dir.mkdir()
    (bin_dir / "helperd").symlink_to(HELPERD)
    return {
        "HELPERD_AUTOSTART": "1",
        "HELPERD_STORE": "file",
        "HELPERD_KEY_FILE": str(key_file),
        "PATH_EXTRA": str(bin_dir),
    }


def _config(tools: Tools, sandbox: Sandbox, index: Index, env: dict[str, str]) -> Result:
    """``poetry config http-basic.acme alice`` with the password on stdin (then closed)."""
    extra = {k: v for k, v in env.items() if k != "PATH_EXTRA"}
    return sandbox.run(
        [tools.poetry, "--no-ansi", "config", "http-basic.acme", index.username],
        path=[Path(env["PATH_EXTRA"])],
        stdin=index.password + "\n",
        extra_env=extra,
        timeout=120,
    )


def test_http_basic_starts_the_daemon_and_poetry_add_works(
    tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon, stopped: dict[str, str]
) -> None:
    """The password ends in a daemon started on demand, never in auth.toml; ``poetry add``
    from the private index then authenticates through it."""
    try:
        done = _config(tools, sandbox, index, stopped)
        _ok(done)
        with Client(helperd.socket, timeout=5) as client:
            record = client.get(name="acme", username=index.username)
            assert index.password == record.password
        assert index.password not in _auth_toml(sandbox)
        assert [] == files_containing(sandbox.root, index.password)

        project = _project(sandbox, index)
        _ok(_poetry(tools, sandbox, "add", "--source", "acme", PACKAGE, cwd=project))
        assert _installed(project)
        assert [] == files_containing(sandbox.root, index.password)
    finally:
        stop_by_pid(helperd.socket)


def test_http_basic_with_autostart_off_fails_without_plaintext(
    tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon, stopped: dict[str, str]
) -> None:
    """HELPERD_AUTOSTART=0 and no daemon: Poetry exits non-zero naming helperd, starts
    nothing, and no file (auth.toml included) holds the password."""
    try:
        done = _config(tools, sandbox, index, {**stopped, "HELPERD_AUTOSTART": "0"})
    finally:
        stop_by_pid(helperd.socket)  # only if one was started after all (the test then fails)
    assert 0 != done.returncode, done.describe()
    assert "HELPERD_AUTOSTART=0" in done.output, done.describe()
    assert index.password not in _auth_toml(sandbox)
    assert [] == files_containing(sandbox.root, index.password)
    assert not helperd.socket.exists(), "no daemon was started"
