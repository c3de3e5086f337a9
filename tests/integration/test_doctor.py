"""helperctl doctor against real daemons and deliberately broken setups, and the CI recipe of
docs/headless.md run as written.

helperctl runs as a subprocess in the daemon's environment. PATH is a folder of this test's
own, so that whatever Poetry or keyring the machine has does not change the verdicts: it
holds the programs each test means (the venv's real ``keyring``, or a stand-in whose Python
answers the probe without the plugin).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helperd_client import Client

from helperd.testing import Daemon, daemon_env, start_daemon
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HELPERCTL = [sys.executable, "-c", "from helperd.ctl.main import main; main()"]
SECRET = "pw-that-never-shows-7Q"


@pytest.fixture
def bin_dir() -> Iterator[Path]:
    """An empty folder that will be the whole PATH of helperctl."""
    path = Path(tempfile.mkdtemp(prefix="hdbin", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def doctor(env: dict[str, str], bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``helperctl doctor ARGS`` with ``env`` and only ``bin_dir`` on PATH."""
    return subprocess.run(
        [*HELPERCTL, "doctor", *args],
        env={**env, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def verdicts(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """doctor --json's findings by name."""
    return {f["name"]: f for f in json.loads(result.stdout)}


def link_real_keyring(bin_dir: Path) -> None:
    """Put the venv's own keyring CLI (helperd's plugin installed) on the test's PATH."""
    (bin_dir / "keyring").symlink_to(VENV_BIN / "keyring")


@pytest.fixture
def key_daemon_env(home: Path, key_file: Path) -> Iterator[Daemon]:
    """A daemon with a key-file store, with Poetry's config folder in its home."""
    extra = {"HELPERD_KEY_FILE": str(key_file), "POETRY_CONFIG_DIR": str(home / "poetry")}
    started = start_daemon(home, "--store", "file", env=extra)
    try:
        yield started
    finally:
        started.stop()


def test_healthy_setup_passes(key_daemon_env: Daemon, bin_dir: Path) -> None:
    """A running daemon with a key-file store and the real keyring CLI beside it: no check
    fails; the keyring CLI's own Python, probed for real, picks helperd's backend."""
    link_real_keyring(bin_dir)
    result = doctor(key_daemon_env.env, bin_dir, "--json")

    assert 0 == result.returncode, result.stdout + result.stderr
    found = verdicts(result)
    for name in ("socket-dir", "socket", "stale-socket", "daemon", "store", "key-file"):
        assert "ok" == found[name]["status"], found[name]
    assert "ok" == found["keyring-cli"]["status"], found["keyring-cli"]
    assert "HelperdKeyring" in found["keyring-cli"]["message"]
    assert "warn" == found["poetry-keyring"]["status"]  # no poetry on this PATH: not a failure


def test_socket_folder_and_socket_open_to_others(key_daemon_env: Daemon, bin_dir: Path) -> None:
    """A 0755 socket folder and a 0666 socket each fail, with the chmod that fixes them."""
    home, sock = key_daemon_env.home, key_daemon_env.socket
    home.chmod(0o755)
    sock.chmod(0o666)
    try:
        result = doctor(key_daemon_env.env, bin_dir)
    finally:
        home.chmod(0o700)
        sock.chmod(0o600)

    assert 1 == result.returncode
    lines = result.stdout.splitlines()
    dir_line = lines.index(
        f"fail  socket-dir: {home} is mode 0755: others can reach the socket's folder"
    )
    assert f"      fix: chmod 700 {home}" == lines[dir_line + 1]
    sock_line = lines.index(f"fail  socket: {sock} is mode 0666: it must be 0600")
    assert f"      fix: chmod 600 {sock}" == lines[sock_line + 1]


def test_daemon_down(home: Path, bin_dir: Path) -> None:
    """No daemon and no socket: the daemon check fails and names how to start it; doctor
    creates no file, not even the socket's folder."""
    socket_home = home / "not-yet"
    env = daemon_env(home, {"HELPERD_HOME": str(socket_home), "POETRY_CONFIG_DIR": str(home)})
    before = sorted(home.rglob("*"))

    result = doctor(env, bin_dir, "--json")

    assert 1 == result.returncode
    found = verdicts(result)
    assert "fail" == found["daemon"]["status"]
    assert "helperd is not running" in found["daemon"]["message"]
    assert "systemctl --user start helperd.socket" in found["daemon"]["fix"]
    assert "helperd &" in found["daemon"]["fix"]
    assert "ok" == found["stale-socket"]["status"]
    assert before == sorted(home.rglob("*"))


def test_stale_socket(home: Path, bin_dir: Path) -> None:
    """A daemon killed with SIGKILL leaves its socket: doctor fails it as stale, fix rm."""
    daemon = start_daemon(home, "--store", "file")
    daemon.stop(signal.SIGKILL)
    assert daemon.socket.exists()

    result = doctor(daemon.env, bin_dir, "--json")

    assert 1 == result.returncode
    found = verdicts(result)
    assert "fail" == found["stale-socket"]["status"]
    assert found["stale-socket"]["fix"].startswith(f"rm {daemon.socket}")
    assert "fail" == found["daemon"]["status"]


def test_key_file_open_to_others(key_daemon_env: Daemon, key_file: Path, bin_dir: Path) -> None:
    """A key file made readable by others fails with the daemon's own message and chmod fix."""
    key_file.chmod(0o644)

    found = verdicts(doctor(key_daemon_env.env, bin_dir, "--json"))

    assert "fail" == found["key-file"]["status"]
    assert f"chmod 600 {key_file}" == found["key-file"]["fix"]


def test_a_daemon_started_with_a_bad_key_file_answers_status(
    home: Path, key_file: Path, bin_dir: Path
) -> None:
    """A daemon that cannot read its key file still answers ``status`` (exit 0, the reason in
    ``store_error``); doctor finds it up and fails the store with the chmod; after the chmod
    the store opens without a restart."""
    key_file.chmod(0o644)
    daemon = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    try:
        shown = subprocess.run(
            [*HELPERCTL, "status", "--json"],
            env=daemon.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        found = verdicts(doctor(daemon.env, bin_dir, "--json"))
        key_file.chmod(0o600)
        with daemon.client() as client:
            after = client.status()
    finally:
        daemon.stop()
    assert 0 == shown.returncode, shown.stderr
    assert f"run `chmod 600 {key_file}`" in json.loads(shown.stdout)["store_error"]
    assert ("ok", "fail") == (found["daemon"]["status"], found["store"]["status"])
    assert f"chmod 600 {key_file}" in found["store"]["message"]
    assert (None, False) == (after.store_error, after.locked)


def test_plaintext_auth_toml_is_counted_never_shown(key_daemon_env: Daemon, bin_dir: Path) -> None:
    """Two passwords in Poetry's auth.toml: a warning with the count 2, in text and JSON,
    and neither password anywhere in the output."""
    poetry_dir = Path(key_daemon_env.env["POETRY_CONFIG_DIR"])
    poetry_dir.mkdir()
    (poetry_dir / "auth.toml").write_text(
        f'[http-basic.acme]\nusername = "alice"\npassword = "{SECRET}"\n\n'
        f'[http-basic.corp]\nusername = "bob"\npassword = "{SECRET}-2"\n'
    )

    text = doctor(key_daemon_env.env, bin_dir)
    as_json = doctor(key_daemon_env.env, bin_dir, "--json")

    expected = f"warn  poetry-auth-toml: {poetry_dir / 'auth.toml'} holds 2 plaintext secrets"
    assert expected in text.stdout.splitlines()
    assert "warn" == verdicts(as_json)["poetry-auth-toml"]["status"]
    for result in (text, as_json):
        assert SECRET not in result.stdout + result.stderr


def test_keyring_cli_without_the_plugin(key_daemon_env: Daemon, bin_dir: Path) -> None:
    """A keyring CLI whose Python has no helperd plugin (a stand-in that answers the probe as
    such a Python does) fails, naming what it picks and how to install the plugin there."""
    env_bin = bin_dir / "other-env"
    env_bin.mkdir()
    answer = {"plugin": False, "backend": "SecretService Keyring", "backend_class": "k.S"}
    python = env_bin / "python"
    python.write_text(f"#!/bin/sh\necho 'HELPERD-DOCTOR {json.dumps(answer)}'\n")
    python.chmod(0o755)
    keyring = bin_dir / "keyring"
    keyring.write_text(f"#!{python}\nimport sys\n")
    keyring.chmod(0o755)

    found = verdicts(doctor(key_daemon_env.env, bin_dir, "--json"))["keyring-cli"]

    assert "fail" == found["status"]
    assert "plugin is not installed" in found["message"]
    assert "SecretService Keyring" in found["message"]
    assert f"{python} -m pip install helperd-client" in found["fix"]


# --- docs/headless.md ----------------------------------------------------------------------------


def recipe(name: str) -> str:
    """The ``sh`` block of docs/headless.md whose first line is ``# recipe: NAME``."""
    text = (ROOT / "docs" / "headless.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        if block.startswith(f"# recipe: {name}\n"):
            return str(block)
    raise AssertionError(f"docs/headless.md has no recipe {name!r}")


def test_ci_recipe_runs_as_written(bin_dir: Path, tmp_path: Path) -> None:
    """The CI recipe of docs/headless.md, run with bash in an empty home with only helperd,
    helperctl, keyring and core utilities on PATH: doctor passes, the secret comes back
    through helperctl and through the keyring CLI, and the daemon stops with status 0."""
    bash = require_tool("bash")
    for program in ("helperd", "helperctl", "keyring"):
        (bin_dir / program).symlink_to(VENV_BIN / program)
    for program in ("mktemp", "head", "seq", "sleep", "cat", "rm"):
        (bin_dir / program).symlink_to(require_tool(program))
    out = tmp_path / "out"
    script = (
        recipe("ci")
        + f'helperctl get acme > "{out}/get"\n'
        + f'keyring get https://pkgs.example.test/simple/ ci > "{out}/keyring"\n'
        + 'kill "$HELPERD_PID"; wait "$HELPERD_PID"\n'
        + 'rm -rf "$HELPERD_HOME"\n'
    )
    out.mkdir()
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "TMPDIR": "/tmp",
        "ACME_PASSWORD": SECRET,
        "LC_ALL": "C.UTF-8",
    }
    result = subprocess.run(
        [bash, "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert 0 == result.returncode, result.stdout + result.stderr
    assert "0 failed" in result.stderr
    assert f"{SECRET}\n" == (out / "get").read_text()
    assert f"{SECRET}\n" == (out / "keyring").read_text()
    assert SECRET not in result.stdout + result.stderr
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_finds_a_daemon_still_at_the_old_path(home: Path, key_file: Path, bin_dir: Path) -> None:
    """A daemon still listening at ``$TMPDIR/helperd-<uid>/`` (the old fallback) while the
    rule now picks the home folder: doctor names it, its PID, and how to move."""
    tmpdir = Path(tempfile.mkdtemp(prefix="hdt", dir="/tmp"))
    old = tmpdir / f"helperd-{os.getuid()}" / "helperd.sock"
    env = {"HELPERD_SOCKET": str(old), "HELPERD_KEY_FILE": str(key_file)}
    daemon = start_daemon(home, "--store", "file", env=env, wait=False)
    try:
        deadline = time.monotonic() + 15
        while not old.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with Client(old, timeout=5) as client:
            client.hello()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("HELPERD_") and k != "XDG_RUNTIME_DIR"
        }
        env.update({"TMPDIR": str(tmpdir), "HOME": str(home), "HELPERD_AUTOSTART": "0"})
        found = verdicts(doctor(env, bin_dir, "--json"))["old-socket"]
    finally:
        daemon.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
    assert "warn" == found["status"]
    assert f"pid {daemon.process.pid}" in found["message"]
    assert str(old) in found["message"]
    assert str(home / ".local/state/helperd" / str(os.getuid()) / "helperd.sock") in found["fix"]
    assert found["fix"].startswith(f"kill {daemon.process.pid}, then start helperd again")
