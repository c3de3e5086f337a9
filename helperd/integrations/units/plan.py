"""What ``install-service`` does, as data: a `Plan` of steps, and the helperd it installs.

A plan lists the files to write or remove and the commands to run, in order; `describe`
prints it for ``--dry-run``. The plans themselves are built per service manager
(`helperd.integrations.units.systemd`, `helperd.integrations.units.launchd`) and carried out by
`helperd.integrations.units.run`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from helperd_client.errors import HelperdError

__all__ = [
    "HEADLESS_DOC",
    "MakeDir",
    "Plan",
    "RemoveFile",
    "Run",
    "Runner",
    "ServiceError",
    "Step",
    "WriteFile",
    "describe",
    "helperd_executable",
    "script_interpreter",
    "template_dir",
]

HEADLESS_DOC = "docs/headless.md (https://github.com/helperd/helperd/blob/main/docs/headless.md)"


class ServiceError(HelperdError):
    """The service cannot be installed or removed here; the message says why and the fix."""

    code: ClassVar[str] = "service"
    exit_code: ClassVar[int] = 1


# --- steps and plans -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteFile:
    """Write ``content`` to ``path`` atomically (its folder made when missing)."""

    path: Path
    content: bytes = field(repr=False)
    mode: int = 0o644


@dataclass(frozen=True)
class RemoveFile:
    """Remove ``path`` if it exists."""

    path: Path


@dataclass(frozen=True)
class MakeDir:
    """Make the folder ``path`` with ``mode`` if it is missing."""

    path: Path
    mode: int = 0o700


@dataclass(frozen=True)
class Run:
    """Run ``argv``; with ``check``, a failure stops the plan."""

    argv: tuple[str, ...]
    check: bool = True


Step = WriteFile | RemoveFile | MakeDir | Run
Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Plan:
    """What ``install-service`` does, in order, and what it says around it.

    Attributes:
        manager: ``systemd-user``, ``systemd-system`` or ``launchd``.
        uninstall: whether this plan removes the service.
        helperd: the executable the service runs (None when uninstalling).
        steps: files and commands, in order.
        notes: warnings about this setup, printed before the steps run.
        next_steps: what the operator does afterwards (the headless template's key, ...).
        blockers: reasons the run must not go ahead even as root (checked by `preflight`).
    """

    manager: str
    uninstall: bool
    helperd: Path | None
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    blockers: tuple[str, ...] = ()


def describe(plan: Plan) -> list[str]:
    """``plan`` as ``--dry-run`` prints it: every file with its contents, every command."""
    lines = []
    if plan.helperd is not None:
        lines.append(f"helperd: {plan.helperd}")
    for step in plan.steps:
        if isinstance(step, WriteFile):
            lines.append(f"write {step.path} (mode {step.mode:04o}):")
            lines += [f"  | {line}" for line in step.content.decode().splitlines()]
        elif isinstance(step, RemoveFile):
            absent = "" if step.path.exists() else " (not there now)"
            lines.append(f"remove {step.path}{absent}")
        elif isinstance(step, MakeDir):
            lines.append(f"make folder {step.path} (mode {step.mode:04o}) if missing")
        else:
            lines.append(f"run {shlex.join(step.argv)}")
    return lines


# --- what a plan installs ------------------------------------------------------------------------


def template_dir() -> Path:
    """The folder that holds ``systemd/`` and ``launchd/``.

    Looked for in ``<prefix>/share/helperd`` (an install that ships them as data files), then
    in the source tree this module comes from (a checkout, or an editable install).

    Raises:
        ServiceError: neither has the templates.
    """
    candidates = (Path(sys.prefix) / "share" / "helperd", Path(__file__).resolve().parents[3])
    for folder in candidates:
        if (folder / "systemd" / "helperd.service").is_file():
            return folder
    raise ServiceError(
        "the unit templates (systemd/, launchd/) are not installed with this helperd;"
        f" looked in {', '.join(str(c) for c in candidates)}:"
        " install helperd from a source checkout (pip install ./client .)"
    )


def helperd_executable(
    *, executable: str = sys.executable, which: Callable[[str], str | None] = shutil.which
) -> Path:
    """The installed ``helperd`` that the service should run, as an absolute path.

    The one beside this Python comes first (the same install as this helperctl), then the
    one on PATH. The path is kept as found, not resolved: a pipx symlink stays valid across
    upgrades.

    Raises:
        ServiceError: there is none.
    """
    beside = Path(os.path.abspath(executable)).with_name("helperd")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = which("helperd")
    if found is not None:
        return Path(os.path.abspath(found))
    raise ServiceError(
        f"cannot find the helperd executable (not beside {executable}, not on PATH):"
        " install helperd first (pip install ./client .)"
    )


def script_interpreter(program: Path) -> Path | None:
    """The Python that runs the script ``program`` (from its ``#!`` line), if it is one.

    Understands ``#!/path/python``, ``#!/usr/bin/env python3`` and pip's ``/bin/sh`` launcher
    for long or spaced paths; for anything else (a binary, a shell wrapper), a ``python``
    beside the resolved program is taken when there is one.
    """
    try:
        with program.open("rb") as handle:
            head = handle.read(2048)
    except OSError:
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    found: str | None = None
    if lines and lines[0].startswith("#!"):
        words = shlex.split(lines[0][2:].strip()) if lines[0][2:].strip() else []
        if words and Path(words[0]).name == "env":
            rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            found = shutil.which(rest[0]) if rest else None
        elif words and Path(words[0]).name.startswith("python"):
            found = words[0]
        elif words and Path(words[0]).name == "sh" and len(lines) > 1:
            match = re.match(r"""'''exec' "([^"]+)" "\$0" "\$@"$""", lines[1].strip())
            found = match[1] if match else None
    if found is None:
        beside = program.resolve().with_name("python")
        found = str(beside) if beside.is_file() else None
    return Path(found) if found else None
