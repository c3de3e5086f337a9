"""Service-manager files for the installed helperd: rendered, installed and removed.

The templates are the files of ``systemd/`` and ``launchd/`` (docs/service.md). Rendering
puts the real path of the installed ``helperd`` where they say ``@HELPERD@`` (and, in the
launchd plist, the socket and log paths); nothing else in them changes.

``helperctl install-service`` builds a `Plan` (the files to write or remove and the commands
to run, in order) with `plan_service`, checks that the service manager can take it
(`preflight`), and then runs it (`execute`), or only prints it (`describe`) with ``--dry-run``.
One module per part: `plan` (the steps, the installed helperd), `systemd` and `launchd` (each
manager's files and plans), `run` (carrying a plan out).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from helperd.integrations.units.launchd import (
    LABEL,
    PLIST_NAME,
    agent_plan,
    launch_agents_dir,
    render_plist,
)
from helperd.integrations.units.plan import (
    HEADLESS_DOC,
    MakeDir,
    Plan,
    RemoveFile,
    Run,
    Runner,
    ServiceError,
    Step,
    WriteFile,
    describe,
    helperd_executable,
    script_interpreter,
    template_dir,
)
from helperd.integrations.units.run import (
    COMMAND_TIMEOUT,
    current_user,
    execute,
    preflight,
    run_command,
)
from helperd.integrations.units.systemd import (
    SYSTEM_UNIT_DIR,
    SYSTEM_UNITS,
    USER_UNITS,
    no_manager_message,
    render_unit,
    system_plan,
    user_manager_problem,
    user_plan,
    user_unit_dir,
)

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
            return system_plan(uninstall, helperd, user, templates)
        return user_plan(
            uninstall=uninstall, helperd=helperd, env=env, home=home, uid=uid, templates=templates
        )
    if platform == "darwin":
        if system:
            raise ServiceError(
                "--system installs the systemd template for headless Linux servers;"
                " on macOS, helperd runs as a launchd agent of each user (drop --system)"
            )
        return agent_plan(
            uninstall=uninstall, helperd=helperd, env=env, home=home, uid=uid, templates=templates
        )
    raise ServiceError(
        f"install-service knows systemd (Linux) and launchd (macOS), not {platform}:"
        f" run helperd in the background yourself, see {HEADLESS_DOC}"
    )
