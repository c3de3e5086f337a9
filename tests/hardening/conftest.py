"""Fixtures of the hardening ring: daemons to attack, and the figures the tests report.

Every test records its figures with the ``figures`` fixture. They are printed as they come
(visible with ``-s``), listed again at the end of the run under "helperd hardening figures",
and written to ``hardening-figures.json`` in pytest's base temporary folder, from which
docs/reliability.md is updated.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from helperd.testing import Daemon, daemon_env, start_daemon
from tests.hardening import (
    FULL,
    Figure,
    Figures,
    Spawn,
    machine,
    wait_ready,
    write_key_file,
)

_FIGURES = pytest.StashKey[list[Figure]]()
_FIGURES_FILE = pytest.StashKey[Path]()


# Hypothesis caches files (unicode tables, constants) in ./.hypothesis unless told otherwise,
# and it decides where once, at first use: point it at a temporary folder before any test
# module of this ring builds a strategy, and remove that folder at the end of the run.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="hd-hypothesis-")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _HYPOTHESIS_HOME


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove Hypothesis's temporary folder."""
    shutil.rmtree(_HYPOTHESIS_HOME, ignore_errors=True)


@pytest.fixture
def figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Figures:
    """Record figures for the report (docs/reliability.md)."""
    config = request.config
    store = config.stash.setdefault(_FIGURES, [])
    path = config.stash.setdefault(
        _FIGURES_FILE, tmp_path_factory.getbasetemp() / "hardening-figures.json"
    )
    return Figures(store, path, request.node.nodeid.rpartition("::")[2])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """List every figure of the run, with the machine, once at the end."""
    store = config.stash.get(_FIGURES, [])
    if not store:
        return
    facts = machine()
    size = "full (HELPERD_FULL=1)" if FULL else "CI-sized"
    terminalreporter.section("helperd hardening figures")
    terminalreporter.write_line(
        f"{size}; {facts['nproc']} CPUs, {facts['ram_gib']} GiB RAM,"
        f" Python {facts['python']}, Linux {facts['kernel']}"
    )
    for figure in store:
        terminalreporter.write_line(
            f"{figure.test}: {figure.name} = {figure.value} {figure.unit}".rstrip()
        )
    terminalreporter.write_line(f"written to {config.stash[_FIGURES_FILE]}")


@pytest.fixture
def spawn(home: Path) -> Iterator[Spawn]:
    """Start daemons (by default in ``home``, on a key-file store); all are stopped after the test.

    ``spawn("--socket", p, config="read_timeout = 2.0", log_level="info", env={...},
    store="file", key=True, home=None, group=None, limits=None, wait=True)``: writes
    ``config.toml`` when asked, creates the key file on first use (``key=False``: none), runs the
    daemon with all its group IDs set to ``group`` and with ``limits`` (a mapping of
    ``resource.RLIMIT_*`` to (soft, hard)) when given, and waits for ``hello``.
    Each daemon is stopped by its PID, SIGTERM then SIGKILL, whatever the test did.
    """
    started: list[Daemon] = []

    def start(
        *args: str,
        config: str | None = None,
        log_level: str = "info",
        env: Mapping[str, str] | None = None,
        store: str = "file",
        key: bool = True,
        home: Path = home,
        group: int | None = None,
        limits: Mapping[int, tuple[int, int]] | None = None,
        wait: bool = True,
    ) -> Daemon:
        if config is not None:
            (home / "config.toml").write_text(config + "\n")
        extra = dict(env or {})
        if key:
            key_file = home / "helperd.key"
            if not key_file.exists():
                write_key_file(key_file)
            extra["HELPERD_KEY_FILE"] = str(key_file)
        arguments = ("--store", store, "--log-level", log_level, *args)
        if group is None and limits is None:
            daemon = start_daemon(home, *arguments, env=extra, wait=False)
        else:
            daemon = _launch(home, arguments, extra, group, limits or {})
        started.append(daemon)
        if wait:
            wait_ready(daemon)
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


def _launch(
    home: Path,
    args: tuple[str, ...],
    env: dict[str, str],
    group: int | None,
    limits: Mapping[int, tuple[int, int]],
) -> Daemon:
    """Like `start_daemon`, with group IDs (needs root) and resource limits of our choosing."""

    def set_limits() -> None:  # runs in the child, before exec: no thread of ours is running
        for which, value in limits.items():
            resource.setrlimit(which, value)

    full_env = daemon_env(home, env)
    with (home / "daemon.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "helperd", *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            group=group,
            extra_groups=None if group is None else [],
            preexec_fn=set_limits,  # noqa: PLW1509 - the test runs no thread at this point
        )
    return Daemon(home, process, full_env)
