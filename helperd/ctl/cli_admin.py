"""``helperctl install-service`` and ``helperctl doctor``: set helperd up, and say what is wrong.

Registered on the ``helperctl`` group by `helperd.ctl.main`, like `helperd.ctl.cli_import`.
`helperd.integrations.units` and `helperd.ctl.doctor` are imported when their command runs,
so that every other command starts as fast as before.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from helperd.ctl.session import Session
    from helperd.integrations.units import Plan

__all__ = ["doctor", "install_service"]


@click.command("install-service")
@click.option(
    "--system",
    is_flag=True,
    help="Install the helperd@USER template for a headless server (root; Linux only).",
)
@click.option("--dry-run", is_flag=True, help="Print the files and commands; change nothing.")
@click.option("--uninstall", is_flag=True, help="Disable the service and remove its files.")
def install_service(system: bool, dry_run: bool, uninstall: bool) -> None:
    """Let the service manager start helperd on the first connection.

    On Linux it writes helperd.socket and helperd.service, with the real path of this
    install's helperd, into the systemd user folder (~/.config/systemd/user, or
    $XDG_CONFIG_HOME/systemd/user), then runs `systemctl --user daemon-reload` and
    `systemctl --user enable --now helperd.socket`.
    On macOS it writes ~/Library/LaunchAgents/com.helperd.agent.plist and loads it with
    `launchctl bootstrap`.

    --system (Linux, as root) writes the helperd@.socket and helperd@.service template into
    /etc/systemd/system and prints the steps for each served user: the key as an encrypted
    systemd credential, `systemctl enable --now helperd@USER.socket`, and HELPERD_SOCKET.

    Without a systemd user manager (a container, an SSH login without lingering) it writes
    nothing and exits 1, naming `loginctl enable-linger` and the headless setup.
    --dry-run prints every file with its contents and every command, and touches nothing.

    \b
    Examples:
      helperctl install-service --dry-run
      helperctl install-service
      sudo "$(command -v helperctl)" install-service --system
      helperctl install-service --uninstall
    """
    from helperd.integrations import units  # noqa: PLC0415 - only this command needs it

    user = units.current_user()
    plan = units.plan_service(
        platform=sys.platform,
        system=system,
        uninstall=uninstall,
        env=os.environ,
        home=Path.home(),
        uid=os.getuid(),
        user=user,
    )
    problem = units.preflight(plan, env=os.environ, user=user, run=units.run_command)
    if dry_run:
        click.echo("dry run: nothing is written or run; the real run would:")
        for line in units.describe(plan):
            click.echo(line)
        for note in plan.notes:
            click.echo(f"note: {note}")
        for blocker in plan.blockers:
            click.echo(f"note: the real run would refuse: {blocker}")
        if plan.next_steps:
            click.echo("then:")
            for line in plan.next_steps:
                click.echo(f"  {line}")
        if problem is not None:
            click.echo(f"note: here, the real run would stop at once: {problem}")
        return
    if uninstall and not any(
        isinstance(s, units.RemoveFile) and (s.path.exists() or s.path.is_symlink())
        for s in plan.steps
    ):
        click.echo("nothing to uninstall: no helperd service files are installed", err=True)
        return
    if problem is not None:
        raise units.ServiceError(problem)
    for note in plan.notes:
        click.echo(f"helperctl: note: {note}", err=True)
    units.execute(plan, run=units.run_command, echo=lambda line: click.echo(line, err=True))
    _say_done(plan, user)


def _say_done(plan: Plan, user: str) -> None:
    if plan.uninstall:
        click.echo("helperd's service is removed", err=True)
        return
    if plan.manager == "systemd-system":
        click.echo("the helperd@ template is installed. Next:", err=True)
        for line in plan.next_steps:
            click.echo(f"  {line}", err=True)
        return
    click.echo(
        "helperd starts on the first connection from now on, in every login;"
        " `helperctl status` starts it and answers",
        err=True,
    )
    if plan.manager == "systemd-user":
        click.echo(
            f"to keep it reachable without a login (cron, SSH): sudo loginctl enable-linger {user}",
            err=True,
        )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def doctor(session: Session, as_json: bool) -> None:
    """Check this helperd setup and say how to fix what is wrong.

    Each check prints `ok`, `warn` or `fail`, its name and what it found, and for a problem
    the fix: the socket's folder (0700, yours) and the socket (0600), whether the daemon
    answers (and is yours), a stale socket left by a killed daemon, a daemon still at an
    older version's socket path, the store and its lock, config.toml, HELPERD_TIMEOUT and
    the key file, which keyring backend Poetry's own Python and the `keyring` CLI on PATH pick
    and whether helperd's plugin is installed there, which `keyring` pip's subprocess provider
    would run (helperd's shim or the real one), and how many plaintext secrets Poetry's
    auth.toml still holds (never their values).

    It only reads: nothing is created or changed. Every probe is bounded in time.
    Exits 1 when a check fails, 0 otherwise (warnings included).

    \b
    Examples:
      helperctl doctor
      helperctl doctor --json | jq -r '.[] | select(.status != "ok") | .name'
    """
    from helperd.ctl import doctor as checks  # noqa: PLC0415 - only this command needs it

    timeout = session.timeout if session.timeout is not None else 2.0
    facts = checks.gather(socket=session.socket, timeout=timeout)
    findings = checks.run_checks(facts)
    if as_json:
        click.echo(json.dumps([f.to_json() for f in findings], indent=2, ensure_ascii=False))
    else:
        for line in checks.render_text(findings):
            click.echo(line)
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    if not as_json:
        plural = "" if warned == 1 else "s"
        click.echo(f"{failed} failed, {warned} warning{plural}, {len(findings)} checks", err=True)
    if failed:
        raise click.exceptions.Exit(1)
