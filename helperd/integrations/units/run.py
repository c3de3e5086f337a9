"""Carrying a plan out: the preflight check, the steps in order, the commands bounded in time.

Commands go through a `Runner`, so that tests can stand in for ``systemctl`` and ``launchctl``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from helperd.integrations.units.plan import (
    HEADLESS_DOC,
    MakeDir,
    Plan,
    RemoveFile,
    Runner,
    ServiceError,
    WriteFile,
)
from helperd.integrations.units.systemd import (
    SYSTEM_UNIT_DIR,
    no_manager_message,
    user_manager_problem,
)

__all__ = ["COMMAND_TIMEOUT", "current_user", "execute", "preflight", "run_command"]

COMMAND_TIMEOUT = 60.0
"""Seconds one systemctl or launchctl call may take."""


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with its output captured, for at most `COMMAND_TIMEOUT` seconds.

    A program that is missing or runs out of time gives status 127 or 124 (as shells do),
    with the reason in ``stderr``.
    """
    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: not found on PATH")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            list(argv), 124, "", f"no answer within {COMMAND_TIMEOUT:g} s"
        )


def preflight(plan: Plan, *, env: Mapping[str, str], user: str, run: Runner) -> str | None:
    """Why ``plan`` cannot run here, or None; touches nothing."""
    if plan.manager == "systemd-user":
        problem = user_manager_problem(env, run)
        return None if problem is None else no_manager_message(problem, user)
    if plan.manager == "systemd-system":
        if os.geteuid() != 0:
            return (
                f"writing {SYSTEM_UNIT_DIR} needs root: run"
                ' `sudo "$(command -v helperctl)" install-service --system`'
                " (or --dry-run to see what it does)"
            )
        if not Path("/run/systemd/system").is_dir():
            return (
                "systemd is not this system's service manager (no /run/systemd/system):"
                f" run helperd in the background instead, see {HEADLESS_DOC}. Nothing was written."
            )
        if plan.blockers:
            return "; ".join(plan.blockers) + ". Nothing was written."
    if plan.manager == "launchd" and shutil.which("launchctl", path=env.get("PATH")) is None:
        return "launchctl is not on PATH: this is not a macOS session"
    return None


def execute(plan: Plan, *, run: Runner, echo: Callable[[str], None]) -> None:
    """Carry out ``plan``'s steps in order, saying each on ``echo``.

    Raises:
        ServiceError: a step failed; the steps before it stay done.
    """
    for step in plan.steps:
        if isinstance(step, WriteFile):
            _write(step)
            echo(f"wrote {step.path}")
        elif isinstance(step, RemoveFile):
            if step.path.is_file() or step.path.is_symlink():
                step.path.unlink()
                echo(f"removed {step.path}")
        elif isinstance(step, MakeDir):
            with contextlib.suppress(FileExistsError):
                step.path.mkdir(mode=step.mode, parents=True)
        else:
            result = run(step.argv)
            command = shlex.join(step.argv)
            if result.returncode == 0:
                echo(f"ran {command}")
                continue
            said = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[0]
            if step.check:
                raise ServiceError(f"`{command}` failed (exit status {result.returncode}): {said}")
            echo(f"ran {command} (exit status {result.returncode}, ignored: {said})")


def _write(step: WriteFile) -> None:
    step.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = step.path.with_name(f".{step.path.name}.tmp{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, step.mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(step.content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, step.mode)  # whatever the umask said
        os.replace(tmp, step.path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ServiceError(f"could not write {step.path}: {exc.strerror or exc}") from None


def current_user() -> str:
    """The login name to show in instructions (the sudo caller's, under sudo)."""
    name = os.environ.get("SUDO_USER") if os.geteuid() == 0 else None
    if name:
        return name
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or "USER"
