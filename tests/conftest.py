"""Fixtures shared by every ring: short temporary homes and real daemons in them."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from helperd.testing import Daemon, start_daemon
from tests.support.secret_service import unexpected_exits


@pytest.fixture(autouse=True)
def _no_autostart(monkeypatch: pytest.MonkeyPatch) -> None:
    """No client starts a daemon on demand unless its test asks for it (HELPERD_AUTOSTART=1):
    a test must never run a helperd found outside the worktree (install.sh's links)."""
    monkeypatch.setenv("HELPERD_AUTOSTART", "0")


@pytest.fixture
def home() -> Iterator[Path]:
    """A fresh 0700 HELPERD_HOME with a short path (AF_UNIX paths are ~100 bytes at most)."""
    path = Path(tempfile.mkdtemp(prefix="hd", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def key_file(home: Path) -> Path:
    """A 0600 key file for the encrypted file store, inside the test's home."""
    path = home / "helperd.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path


@pytest.fixture
def daemon(home: Path) -> Iterator[Daemon]:
    """A daemon with the passphrase-protected file store, not created yet (as on first run)."""
    started = start_daemon(home, "--store", "file", "--log-level", "debug")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def key_daemon(home: Path, key_file: Path) -> Iterator[Daemon]:
    """A daemon whose file store opens with a key file (the headless-server setup)."""
    started = start_daemon(
        home, "--store", "file", "--log-level", "debug", env={"HELPERD_KEY_FILE": str(key_file)}
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report says when its gnome-keyring or D-Bus exited by itself meanwhile
    (tests/support/secret_service.py), with that process's status and the end of its log."""
    report = yield
    notes = unexpected_exits()  # told with the phase that saw them, or not at all
    if report.failed and notes:
        report.sections.append(("the Secret Service exited by itself", "\n\n".join(notes)))
    return report
