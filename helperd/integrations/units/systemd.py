"""systemd: the user units (desktops, SSH logins with linger) and the headless template.

The templates are the files of ``systemd/`` (docs/service.md, docs/headless.md); rendering
puts the real path of the installed ``helperd`` where they say ``@HELPERD@``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from helperd_client.paths import socket_path

from helperd.integrations.units.plan import (
    HEADLESS_DOC,
    Plan,
    RemoveFile,
    Run,
    Runner,
    ServiceError,
    Step,
    WriteFile,
    helperd_executable,
    script_interpreter,
    template_dir,
)

__all__ = [
    "SYSTEM_UNITS",
    "SYSTEM_UNIT_DIR",
    "USER_UNITS",
    "no_manager_message",
    "render_unit",
    "system_plan",
    "user_manager_problem",
    "user_plan",
    "user_unit_dir",
]

USER_UNITS = ("helperd.socket", "helperd.service")

SYSTEM_UNITS = ("helperd@.socket", "helperd@.service")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


_PLACEHOLDER = "@HELPERD@"
# `systemctl --user is-system-running` prints one of these when a user manager answers; it
# exits non-zero for all but "running", so its output is what tells.
_MANAGER_STATES = frozenset({"running", "degraded", "starting", "initializing", "maintenance"})

# ProtectHome=yes hides these from the headless template's service.
_HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))


def user_unit_dir(env: Mapping[str, str], home: Path) -> Path:
    """Where a systemd user manager reads the user's own units (XDG_CONFIG_HOME aware)."""
    config = env.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and Path(config).is_absolute() else home / ".config"
    return base / "systemd" / "user"


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


def user_plan(
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


def system_plan(uninstall: bool, helperd: Path | None, user: str, templates: Path | None) -> Plan:
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
