"""Fixtures for the end-to-end ring: cached tool environments, the index, a daemon, a sandbox.

Session-wide: the tool environments (`tools`, built once per machine under ``.e2e/``), the
private wheel and the authenticated index. Per test: a helperd daemon with the encrypted
file store opened by a key file, and a `Sandbox` whose tools find that daemon's socket.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from helperd.testing import Daemon, start_daemon
from tests.e2e.harness import Sandbox
from tests.e2e.index import Index, build_wheel, running_index
from tests.e2e.toolenv import Tools, prepared_tools

LOCKED_PASSPHRASE = "e2e passphrase"


@pytest.fixture(scope="session")
def tools() -> Iterator[Tools]:
    """Poetry, pip, uv, keyring (newest and oldest), pypiserver, twine, pdm and hatch, ready."""
    with prepared_tools() as ready:
        yield ready


@pytest.fixture(scope="session")
def private_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The private package's wheel, built for this session."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def index(
    tools: Tools, private_wheel: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Index]:
    """pypiserver on 127.0.0.1 serving the private package to alice (basic auth) only."""
    with running_index(
        tools.pypiserver_env, tmp_path_factory.mktemp("index"), private_wheel
    ) as served:
        yield served


@pytest.fixture
def helperd(home: Path, key_file: Path) -> Iterator[Daemon]:
    """A real daemon with the file store opened by a key file (headless, never locked).

    Teardown lets a paused daemon go on (SIGCONT) before stopping it, so a test that froze
    it with SIGSTOP cannot leave it behind.
    """
    started = start_daemon(
        home, "--store", "file", "--log-level", "debug", env={"HELPERD_KEY_FILE": str(key_file)}
    )
    try:
        yield started
    finally:
        if started.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(started.process.pid, signal.SIGCONT)
        started.stop()


@pytest.fixture
def sandbox(tmp_path: Path, helperd: Daemon) -> Sandbox:
    """A private home for the tools, talking to this test's daemon."""
    return Sandbox(tmp_path / "sandbox", helperd.home)


@pytest.fixture
def acme(helperd: Daemon, index: Index) -> Index:
    """helperd holds alice's password for the index under the name ``acme``."""
    with helperd.client() as client:
        client.set("acme", index.password, username=index.username, urls=[index.url])
    return index


@pytest.fixture
def locked_sandbox(daemon: Daemon, index: Index, tmp_path: Path) -> Sandbox:
    """A sandbox whose daemon holds alice's record in a passphrase store that is now locked."""
    with daemon.client() as client:
        client.init(LOCKED_PASSPHRASE)
        client.set("acme", index.password, username=index.username, urls=[index.url])
        client.lock()
    return Sandbox(tmp_path / "sandbox", daemon.home)
