"""Service-manager files for the installed helperd: rendered, installed and removed.

The templates are the files of ``systemd/`` and ``launchd/`` (docs/service.md). Rendering
puts the real path of the installed ``helperd`` where they say ``@HELPERD@`` (and, in the
launchd plist, the socket and log paths); nothing else in them changes.

``helperctl install-service`` builds a `Plan` (the files to write or remove and the commands
to run, in order), checks that the service manager can take it (`preflight`), and then runs it
(`execute`), or only prints it (`describe`) with ``--dry-run``. Commands go through a
`Runner`, so that tests can stand in for ``systemctl`` and ``launchctl``.
"""

from __future__ import annotations

import contextlib
import os
import plistlib
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from helperd_client.errors import HelperdError
from helperd_client.paths import socket_path

__all__ = [
    "COMMAND_TIMEOUT",
    "HEADLESS_DOC",
    "LABEL",
    "PLIST_NAME",
    "SYSTEM_UNITS",
    "SYSTEM_UNIT_DIR",
    "USER_UNITS",
    "MakeDir",
    "Plan",
    "RemoveFile",
    "Run",
    "Runner",
    "ServiceError",
    "Step",
    "WriteFile",
    "current_user",
    "describe",
    "execute",
    "helperd_executable",
    "launch_agents_dir",
    "no_manager_message",
    "plan_service",
    "preflight",
    "render_plist",
    "render_unit",
    "run_command",
    "script_interpreter",
    "template_dir",
    "user_manager_problem",
    "user_unit_dir",
]

USER_UNITS = ("helperd.socket", "helperd.service")
SYSTEM_UNITS = ("helperd@.socket", "helperd@.service")
PLIST_NAME = "com.helperd.agent.plist"
LABEL = "com.helperd.agent"
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
HEADLESS_DOC = "docs/headless.md (https://github.com/helperd/helperd/blob/main/docs/headless.md)"
COMMAND_TIMEOUT = 60.0
"""Seconds one systemctl or launchctl call may take."""

_PLACEHOLDER = "@HELPERD@"
# `systemctl --user is-system-running` prints one of these when a user manager answers; it
# exits non-zero for all but "running", so its output is what tells.
_MANAGER_STATES = frozenset({"running", "degraded", "starting", "initializing", "maintenance"})
# ProtectHome=yes hides these from the headless template's service.
_HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))


class ServiceError(HelperdError):
    """The service cannot be installed or removed here; the message says why and the fix."""

    code: ClassVar[str] = "service"
    exit_code: ClassVar[int] = 1


# --- where things are ----------------------------------------------------------------------------


def template_dir() -> Path:
    """The folder that holds ``systemd/`` and ``launchd/``.

    Looked for in ``<prefix>/share/helperd`` (an install that ships them as data files), then
    in the source tree this module comes from (a checkout, or an editable install).

    Raises:
        ServiceError: neither has the templates.
    """
    candidates = (Path(sys.prefix) / "share" / "helperd", Path(__file__).resolve().parents[2])
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


def user_unit_dir(env: Mapping[str, str], home: Path) -> Path:
    """Where a systemd user manager reads the user's own units (XDG_CONFIG_HOME aware)."""
    config = env.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and Path(config).is_absolute() else home / ".config"
    return base / "systemd" / "user"


def launch_agents_dir(home: Path) -> Path:
    """Where launchd reads the user's agents."""
    return home / "Library" / "LaunchAgents"


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


# --- rendering -----------------------------------------------------------------------------------


def _exec_word(path: Path) -> str:
    """``path`` as the first word of ``ExecStart=``: specifiers and variables escaped, and
    quoted when it holds a space (systemd.service(5), "Command lines")."""
    text = str(path)
    if not path.is_absolute() or any(c in text for c in "\n\r\0"):
        raise ServiceError(f"cannot name {text!r} in a unit: it must be an absolute path")
    text = text.replace("%", "%%").replace("$", "$$")
    if any(c.isspace() or c in "\"'\\;" for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def render_unit(name: str, helperd: Path, *, templates: Path | None = None) -> str:
    """The unit ``name`` of ``systemd/`` with ``@HELPERD@`` made ``helperd``'s real path."""
    folder = (templates or template_dir()) / "systemd"
    return (folder / name).read_text(encoding="utf-8").replace(_PLACEHOLDER, _exec_word(helperd))


def render_plist(helperd: Path, socket: Path, log: Path, *, templates: Path | None = None) -> bytes:
    """The launchd agent with its placeholders filled in, through plistlib (so that a path
    with ``&`` or ``<`` stays valid XML)."""
    path = (templates or template_dir()) / "launchd" / PLIST_NAME
    with path.open("rb") as handle:
        agent: dict[str, Any] = plistlib.load(handle)
    agent["ProgramArguments"] = [str(helperd)]
    agent["EnvironmentVariables"]["HELPERD_SOCKET"] = str(socket)
    agent["Sockets"]["Listeners"]["SockPathName"] = str(socket)
    agent["StandardErrorPath"] = str(log)
    return plistlib.dumps(agent)


# --- plans ---------------------------------------------------------------------------------------


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


def plan_service(
    *,
    platform: str,
    system: bool,
    uninstall: bool,
    env: Mapping[str, str],
    home: Path,
    uid: int,
    user: str,
    helperd: Path | None = None,
    templates: Path | None = None,
) -> Plan:
    """The plan for this platform: systemd user units, the headless template, or launchd.

    Raises:
        ServiceError: the platform has no supported service manager, or ``--system`` is asked
            where there is no system template.
    """
    if platform.startswith("linux"):
        if system:
            return _systemd_system(uninstall, helperd, user, templates)
        return _systemd_user(
            uninstall=uninstall, helperd=helperd, env=env, home=home, uid=uid, templates=templates
        )
    if platform == "darwin":
        if system:
            raise ServiceError(
                "--system installs the systemd template for headless Linux servers;"
                " on macOS, helperd runs as a launchd agent of each user (drop --system)"
            )
        return _launchd(
            uninstall=uninstall, helperd=helperd, env=env, home=home, uid=uid, templates=templates
        )
    raise ServiceError(
        f"install-service knows systemd (Linux) and launchd (macOS), not {platform}:"
        f" run helperd in the background yourself, see {HEADLESS_DOC}"
    )


def _systemd_user(
    *,
    uninstall: bool,
    helperd: Path | None,
    env: Mapping[str, str],
    home: Path,
    uid: int,
    templates: Path | None,
) -> Plan:
    folder = user_unit_dir(env, home)
    paths = [folder / name for name in USER_UNITS]
    if uninstall:
        steps: list[Step] = [Run(("systemctl", "--user", "disable", "--now", *USER_UNITS), False)]
        steps += [RemoveFile(p) for p in paths]
        steps.append(Run(("systemctl", "--user", "daemon-reload")))
        return Plan("systemd-user", True, None, tuple(steps))
    helperd = helperd or helperd_executable()
    steps = [
        WriteFile(p, render_unit(p.name, helperd, templates=templates).encode()) for p in paths
    ]
    steps.append(Run(("systemctl", "--user", "daemon-reload")))
    steps.append(Run(("systemctl", "--user", "enable", "--now", "helperd.socket")))
    notes = []
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
    unit_socket = Path(runtime) / "helperd" / "helperd.sock"
    clients = socket_path(env, platform="linux", uid=uid)
    if clients != unit_socket:
        variable = next((v for v in ("HELPERD_SOCKET", "HELPERD_HOME") if env.get(v)), None)
        why = f"unset {variable}" if variable else "log in through systemd-logind (XDG_RUNTIME_DIR)"
        notes.append(
            f"clients in this environment look for {clients}, but the socket unit listens on"
            f" {unit_socket}: {why} for the clients to find it"
        )
    for name, default in (("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share")):
        value = env.get(name)
        if value and Path(value) != home / default:
            notes.append(
                f"{name} is {value}, but the service may write only %h/{default}/helperd:"
                " change ReadWritePaths= and ExecStartPre= in a drop-in"
                " (`systemctl --user edit helperd.service`, docs/service.md)"
            )
    return Plan("systemd-user", False, helperd, tuple(steps), tuple(notes))


def _systemd_system(
    uninstall: bool, helperd: Path | None, user: str, templates: Path | None
) -> Plan:
    paths = [SYSTEM_UNIT_DIR / name for name in SYSTEM_UNITS]
    user = "USER" if user == "root" else user  # nobody serves root's tools this way
    if uninstall:
        wants = SYSTEM_UNIT_DIR / "sockets.target.wants"
        instances = sorted(p.name for p in wants.glob("helperd@?*.socket"))
        steps: list[Step] = []
        for socket_unit in instances:
            service = socket_unit.removesuffix(".socket") + ".service"
            steps.append(Run(("systemctl", "disable", "--now", socket_unit, service), False))
        steps += [RemoveFile(p) for p in paths]
        steps.append(Run(("systemctl", "daemon-reload")))
        kept = "left in place: the keys in /etc/helperd and the stores in /var/lib/helperd"
        return Plan("systemd-system", True, None, tuple(steps), (kept,))
    helperd = helperd or helperd_executable()
    steps = [
        WriteFile(p, render_unit(p.name, helperd, templates=templates).encode()) for p in paths
    ]
    steps.append(Run(("systemctl", "daemon-reload")))
    blockers = []
    interpreter = script_interpreter(helperd)
    for program in (helperd, interpreter.resolve() if interpreter else None):
        if program is not None and any(program.is_relative_to(p) for p in _HIDDEN_BY_PROTECT_HOME):
            blockers.append(
                f"{program} is under a home folder, which the service cannot see"
                " (ProtectHome=yes) and the served user may not read: install helperd"
                " where every user can run it, with a Python that is not under a home folder"
                " either, e.g. `/usr/bin/python3 -m venv /opt/helperd &&"
                " /opt/helperd/bin/pip install ./client .`, and run that install's helperctl"
            )
    return Plan(
        "systemd-system", False, helperd, tuple(steps), (), _template_steps(user), tuple(blockers)
    )


def _template_steps(user: str) -> tuple[str, ...]:
    cred = f"/etc/helperd/{user}.key.cred"
    who = "USER below" if user == "USER" else f"here {user}"
    return (
        f"For each user whose tools use helperd ({who}), as root:",
        "  # 1. the store's key, as an encrypted credential (it never touches the disk in clear)",
        "  install -d -m 0700 /etc/helperd",
        f"  head -c 32 /dev/urandom | systemd-creds encrypt --name=helperd.key - {cred}",
        f"  chmod 0600 {cred}",
        "  # 2. the socket, for that user only",
        f"  systemctl enable --now helperd@{user}.socket",
        f"  # 3. in {user}'s ~/.profile (or the CI job's environment):",
        f"  export HELPERD_SOCKET=/run/helperd/{user}/helperd.sock",
        f"Then, as {user}: helperctl status; helperctl doctor. Details: {HEADLESS_DOC}",
    )


def _launchd(
    *,
    uninstall: bool,
    helperd: Path | None,
    env: Mapping[str, str],
    home: Path,
    uid: int,
    templates: Path | None,
) -> Plan:
    plist = launch_agents_dir(home) / PLIST_NAME
    domain = f"gui/{uid}"
    bootout = Run(("launchctl", "bootout", f"{domain}/{LABEL}"), check=False)
    if uninstall:
        return Plan("launchd", True, None, (bootout, RemoveFile(plist)))
    helperd = helperd or helperd_executable()
    socket = socket_path(env, platform="darwin", uid=uid)
    log = home / "Library" / "Logs" / "helperd.log"
    content = render_plist(helperd, socket, log, templates=templates)
    steps: tuple[Step, ...] = (
        MakeDir(socket.parent, 0o700),
        WriteFile(plist, content),
        bootout,  # a loaded older agent would make bootstrap fail
        Run(("launchctl", "bootstrap", domain, str(plist))),
    )
    return Plan("launchd", False, helperd, steps)


# --- checking, running, describing ---------------------------------------------------------------


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


def user_manager_problem(env: Mapping[str, str], run: Runner) -> str | None:
    """Why no systemd user manager can take units here, or None when one answers."""
    systemctl = shutil.which("systemctl", path=env.get("PATH"))
    if systemctl is None:
        return "systemctl is not on PATH: this system does not run systemd"
    result = run((systemctl, "--user", "is-system-running"))
    state = result.stdout.strip()
    if state in _MANAGER_STATES:
        return None
    said = (result.stderr.strip().splitlines() or [state or f"exit status {result.returncode}"])[0]
    if not env.get("XDG_RUNTIME_DIR"):
        said += "; XDG_RUNTIME_DIR is not set"
    return f"`systemctl --user is-system-running` says: {said}"


def no_manager_message(problem: str, user: str) -> str:
    """The whole explanation for a missing user manager, with both ways forward."""
    return (
        f"no systemd user manager is reachable ({problem}).\n"
        "A user manager runs while you are logged in through systemd-logind, and at all times"
        " once lingering is on:\n"
        f"  sudo loginctl enable-linger {user}   (then log in again)\n"
        "In a container, a CI runner, or anywhere without systemd, run helperd in the"
        " background instead (a key file in HELPERD_KEY_FILE needs no passphrase);"
        " on a server, `helperctl install-service --system` installs a system unit.\n"
        f"See {HEADLESS_DOC}. Nothing was written."
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


def current_user() -> str:
    """The login name to show in instructions (the sudo caller's, under sudo)."""
    name = os.environ.get("SUDO_USER") if os.geteuid() == 0 else None
    if name:
        return name
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or "USER"
