"""Running the real programs in isolation, always bounded in time.

`Sandbox` gives each test a private world: a temporary ``HOME``, Poetry's, pip's, uv's and the
XDG folders inside it, no machine pip configuration, no D-Bus session (so no Secret Service is
reached), and ``HELPERD_HOME`` pointing at the test's daemon so the plugin finds its socket.
The environment is built from nothing rather than copied from ours, so a developer's own
``POETRY_*``, ``PIP_*``, ``UV_*`` or ``VIRTUAL_ENV`` never leaks in.

`run` starts each program in a new process group and kills the whole group when it overruns
its timeout, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TOOL_TIMEOUT", "Result", "Sandbox", "files_containing", "run"]

TOOL_TIMEOUT = 300.0
"""Seconds any one program run may take before it is killed and the test fails."""

# Not /usr/local/bin: install.sh links helperd and helperctl there as root, and a test must
# never run what install.sh installed (the plugin's on-demand start looks on PATH).
_SYSTEM_PATH = ("/usr/bin", "/bin")


@dataclass(frozen=True)
class Result:
    """What a finished program did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    daemon_log: str = ""

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr

    def describe(self, limit: int = 6000) -> str:
        """A report for a failure message: command, status, time and the end of the output."""
        report = (
            f"$ {' '.join(self.args)}\n-> exit {self.returncode} after {self.seconds:.1f} s\n"
            f"--- stdout ---\n{self.stdout[-limit:]}\n--- stderr ---\n{self.stderr[-limit:]}"
        )
        if self.daemon_log:
            report += f"\n--- end of the helperd log ---\n{self.daemon_log}"
        return report


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float = TOOL_TIMEOUT,
    stdin: str | None = None,
) -> Result:
    """Run a program to completion with a closed (or given) stdin; kill its group on timeout.

    Raises:
        AssertionError: the program ran longer than ``timeout`` (the message has its output).
    """
    argv = tuple(str(a) for a in args)
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        result = Result(argv, -9, stdout, stderr, time.monotonic() - started)
        raise AssertionError(
            f"timed out after {timeout} s (killed):\n{result.describe()}"
        ) from None
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return Result(argv, process.returncode, stdout, stderr, time.monotonic() - started)


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret`` (as UTF-8)."""
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


class Sandbox:
    """A private home for the tools of one test, talking to one helperd daemon.

    Args:
        root: an empty temporary folder; everything the tools write goes below it.
        helperd_home: the daemon's ``HELPERD_HOME`` (its socket is ``helperd.sock`` there).
        path: folders to put first on ``PATH`` (the tools' ``bin`` folders).
    """

    def __init__(self, root: Path, helperd_home: Path, path: Sequence[Path] = ()) -> None:
        self.root = root
        self.helperd_home = helperd_home
        self.path = tuple(path)
        self.home = root / "home"
        self.poetry_config = root / "poetry-config"
        self.work = root / "work"
        for folder in (self.home, self.poetry_config, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    def env(
        self, path: Sequence[Path] = (), extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The whole environment for one run; ``path`` goes before the sandbox's PATH."""
        home = self.home
        env = {
            "PATH": os.pathsep.join([*map(str, (*path, *self.path)), *_SYSTEM_PATH]),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TMPDIR": str(self.root / "tmp"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "HELPERD_HOME": str(self.helperd_home),
            "HELPERD_AUTOSTART": "0",  # never a helperd from outside the worktree
            "POETRY_CONFIG_DIR": str(self.poetry_config),
            "POETRY_CACHE_DIR": str(self.root / "poetry-cache"),
            "POETRY_DATA_DIR": str(self.root / "poetry-data"),
            "POETRY_NO_INTERACTION": "1",
            "POETRY_VIRTUALENVS_IN_PROJECT": "true",
            # The default "python on PATH" may be a pyenv shim, which needs the real HOME.
            "POETRY_VIRTUALENVS_USE_POETRY_PYTHON": "true",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_CACHE_DIR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "UV_CACHE_DIR": str(self.root / "uv-cache"),
            "UV_NO_CONFIG": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "NO_COLOR": "1",
        }
        for folder in ("tmp", "run"):
            (self.root / folder).mkdir(mode=0o700, exist_ok=True)
        env.update(extra or {})
        return env

    def run(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        path: Sequence[Path] = (),
        cwd: Path | None = None,
        timeout: float = TOOL_TIMEOUT,
        stdin: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run a program in this sandbox (see `run`); ``extra_env`` adds or overrides variables.

        The result carries the end of the daemon's log, for failure messages.
        """
        result = run(
            args,
            env=self.env(path, extra_env),
            cwd=cwd or self.work,
            timeout=timeout,
            stdin=stdin,
        )
        try:
            log = (self.helperd_home / "daemon.log").read_text(errors="replace")[-3000:]
        except OSError:
            log = ""
        return dataclasses.replace(result, daemon_log=log)
