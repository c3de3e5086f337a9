"""launchd: the per-user agent on macOS, from ``launchd/`` (docs/service.md)."""

from __future__ import annotations

import plistlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helperd_client.paths import socket_path

from helperd.integrations.units.plan import (
    MakeDir,
    Plan,
    RemoveFile,
    Run,
    Step,
    WriteFile,
    helperd_executable,
    template_dir,
)

__all__ = ["LABEL", "PLIST_NAME", "agent_plan", "launch_agents_dir", "render_plist"]

PLIST_NAME = "com.helperd.agent.plist"

LABEL = "com.helperd.agent"


def launch_agents_dir(home: Path) -> Path:
    """Where launchd reads the user's agents."""
    return home / "Library" / "LaunchAgents"


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


def agent_plan(
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
