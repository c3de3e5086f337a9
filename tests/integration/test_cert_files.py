"""A real daemon keeps client-certificate files: written while unlocked, gone on lock and stop,
stale ones removed at start, none off a tmpfs unless config.toml allows it; and the real
``helperctl cert-path`` exits 0, 4, 5 or 1 as documented."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from keyring.backends import SecretService as SecretServiceBackend

from helperd.core.config import cert_folder
from helperd.testing import Daemon, start_daemon
from tests.support.certs import TestCA, make_ca
from tests.support.secret_service import SecretService

HELPERCTL = [sys.executable, "-c", "from helperd.ctl.main import main; main()"]
PASSPHRASE = "cert passphrase"


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A private folder on /dev/shm (a tmpfs) to serve as the daemon's XDG_RUNTIME_DIR."""
    path = Path(tempfile.mkdtemp(prefix="hd-run-", dir="/dev/shm"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


def _start(home: Path, runtime: Path, key_file: Path | None = None) -> Daemon:
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    if key_file is not None:
        env["HELPERD_KEY_FILE"] = str(key_file)
    return start_daemon(home, "--store", "file", "--log-level", "debug", env=env)


def _helperctl(daemon: Daemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HELPERCTL, *args],
        env=daemon.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _set_cert(daemon: Daemon, ca: TestCA) -> None:
    done = _helperctl(
        daemon,
        *("set-cert", "corp", "--client-cert", str(ca.client_cert), "--key", str(ca.client_key)),
        "--key-passphrase-stdin",
        stdin=ca.passphrase + "\n",
    )
    assert 0 == done.returncode, done.stderr


def test_cert_path_exit_codes(home: Path, runtime: Path, ca: TestCA) -> None:
    """cert-path prints the file's path and exits 0; 4 for a name without a certificate; 5 while
    the store is locked, with nothing on stdout."""
    daemon = _start(home, runtime)
    try:
        with daemon.client() as client:
            client.init(PASSPHRASE)
            client.set("plain", "pw", username="alice")
        _set_cert(daemon, ca)

        found = _helperctl(daemon, "cert-path", "corp")
        plain = _helperctl(daemon, "cert-path", "plain")
        with daemon.client() as client:
            client.lock()
        locked = _helperctl(daemon, "cert-path", "corp")
    finally:
        daemon.stop()

    path = cert_folder(daemon.env) / "corp.pem"
    assert path.parent.parent == runtime / "helperd"
    assert (0, f"{path}\n") == (found.returncode, found.stdout)
    assert (4, "") == (plain.returncode, plain.stdout)
    assert (5, "") == (locked.returncode, locked.stdout)
    assert "no record named 'plain' holds a client certificate" in plain.stderr


def test_stop_removes_and_start_restores(
    home: Path, runtime: Path, key_file: Path, ca: TestCA
) -> None:
    """SIGTERM removes the file; after kill -9 a stale one is left, which the next start
    replaces with the store's (a key-file store is unlocked at start) at the same path,
    removing every other stale file; modes are 0600 and 0700."""
    daemon = _start(home, runtime, key_file)
    _set_cert(daemon, ca)
    path = Path(_helperctl(daemon, "cert-path", "corp").stdout.strip())
    written = path.read_text()
    daemon.stop()
    after_stop = path.exists()

    daemon = _start(home, runtime, key_file)
    try:
        again = Path(_helperctl(daemon, "cert-path", "corp").stdout.strip())
        stale = path.with_name("gone.pem")
        stale.write_text("left by a crash")
        os.kill(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait(timeout=30)
        left = sorted(p.name for p in path.parent.iterdir())
    finally:
        daemon.stop()
    daemon = _start(home, runtime, key_file)
    try:
        restarted = sorted(p.name for p in path.parent.iterdir())
        content = path.read_text()
        modes = (stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(path.parent.stat().st_mode))
    finally:
        daemon.stop()

    assert False is after_stop
    assert path == again
    assert ["corp.pem", "gone.pem"] == left
    assert ["corp.pem"] == restarted
    assert written == content
    assert ca.client_key_plain.read_text() in content
    assert (0o600, 0o700) == modes
    assert not path.exists()


def test_a_daemon_of_another_home_leaves_the_files_alone(
    home: Path, runtime: Path, key_file: Path, ca: TestCA, tmp_path: Path
) -> None:
    """Two daemons of one user with their own HELPERD_HOME (a CI job each) and one runtime
    folder: the second's start and stop leave the first's file where cert-path said."""
    first = _start(home, runtime, key_file)
    try:
        _set_cert(first, ca)
        path = Path(_helperctl(first, "cert-path", "corp").stdout.strip())
        other_home = tmp_path / "other-home"
        other_home.mkdir(mode=0o700)
        second = _start(other_home, runtime, key_file)
        second.stop()
        kept = path.exists()
    finally:
        first.stop()
    assert kept
    assert cert_folder(second.env) != path.parent


@pytest.mark.parametrize("on_disk", [False, True])
def test_no_file_off_tmpfs_unless_configured(
    home: Path, key_file: Path, ca: TestCA, on_disk: bool
) -> None:
    """With the runtime folder on a disk (the test's home), no key file is written and
    cert-path exits 1 saying why; config.toml's cert_files_on_disk = true writes it (0600)."""
    if on_disk:
        config = home / "config.toml"
        config.write_text("cert_files_on_disk = true\n")
        config.chmod(0o600)
    disk = home / "run"
    disk.mkdir(mode=0o700)
    daemon = _start(home, disk, key_file)
    try:
        _set_cert(daemon, ca)
        shown = _helperctl(daemon, "cert-path", "corp")
        files = sorted(p.name for p in cert_folder(daemon.env).glob("*"))
    finally:
        daemon.stop()

    if on_disk:
        assert (0, ["corp.pem"]) == (shown.returncode, files)
    else:
        assert (1, "", []) == (shown.returncode, shown.stdout, files)
        assert "is not on a tmpfs" in shown.stderr
        assert "cert_files_on_disk = true" in shown.stderr


def test_keyring_store_keeps_the_pem_in_the_os_keyring(
    home: Path, runtime: Path, ca: TestCA, secret_service: SecretService
) -> None:
    """With the OS keyring store the PEM sits in the Secret Service (helperd:corp, __cert__)
    and in no file under the daemon's home; a restart writes the cert file again at start."""
    env = {**secret_service.env, "XDG_RUNTIME_DIR": str(runtime)}
    daemon = start_daemon(home, "--store", "keyring", env=env)
    try:
        _set_cert(daemon, ca)
        stored = SecretServiceBackend.Keyring().get_password("helperd:corp", "__cert__")
    finally:
        daemon.stop()
    path = cert_folder(daemon.env) / "corp.pem"
    after_stop = path.exists()
    again = start_daemon(home, "--store", "keyring", env=env)
    try:
        shown = _helperctl(again, "cert-path", "corp")
        content = path.read_text()
    finally:
        again.stop()

    key = ca.client_key_plain.read_text()
    assert stored is not None
    assert key in stored
    assert [] == [p for p in home.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert (False, 0, stored) == (after_stop, shown.returncode, content)
