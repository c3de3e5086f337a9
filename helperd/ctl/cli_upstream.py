"""``helperctl upstream show|test|refresh``: the upstream secret engine, through the daemon.

helperctl never talks to the engine itself (nor imports hvac): the daemon holds the token and
the cache, and answers the ``upstream`` op (docs/fleet.md).
"""

from __future__ import annotations

from typing import Any

import click
from helperd_client.errors import StoreUnavailableError

from helperd.ctl.cli_output import emit_json
from helperd.ctl.session import Session

__all__ = ["status_line", "upstream"]

_pass_session = click.make_pass_decorator(Session, ensure=True)

NOT_CONFIGURED = "no upstream secret engine is configured (add an [upstream] table to config.toml)"


@click.group()
def upstream() -> None:
    """The upstream secret engine (OpenBao, Vault) the daemon reads repositories from.

    \b
    Examples:
      helperctl upstream show
      helperctl upstream test
      helperctl upstream refresh
    """


@upstream.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_pass_session
def show(session: Session, as_json: bool) -> None:
    """Show the upstream's settings, its last refresh, the result and the cache's age.

    Never prints a token, a secret_id or a password: only the files' paths.
    """
    answer = session.client().upstream("show")
    if as_json:
        emit_json(answer)
        return
    if not answer["configured"]:
        click.echo(NOT_CONFIGURED, err=True)
        return
    settings: dict[str, Any] = answer["settings"]
    lines = [f"{key + ':':<20}{value}" for key, value in settings.items() if value is not None]
    lines.append(f"{'state:':<20}{status_line(answer['status'])}")
    click.echo("\n".join(lines))


@upstream.command()
@_pass_session
def test(session: Session) -> None:
    """Log in to the engine and read every secret under the prefix, now.

    The cache is left as it is. Exits 1 with what to fix when the engine is down, the TLS
    certificate cannot be verified, the policy denies a path, the AppRole secret_id has
    expired, the token cannot be renewed, or the mount is KV version 1.
    """
    answer = session.client().upstream("test")
    tested: dict[str, Any] = answer["test"]
    if not tested["ok"]:
        raise StoreUnavailableError(tested["message"])
    for message in (*tested.get("skipped", ()), *tested.get("warnings", ())):
        click.echo(f"helperctl: warning: {message}", err=True)
    click.echo(f"ok: {tested['message']}")


@upstream.command()
@_pass_session
def refresh(session: Session) -> None:
    """Refresh the daemon's cache from the engine now, rather than after the TTL.

    Exits 1 with what to fix when the refresh fails; the cache then keeps what it had.
    """
    answer = session.client().upstream("refresh")
    click.echo(f"refreshed: {status_line(answer['status'])}")


def status_line(status: dict[str, Any]) -> str:
    """One line of an ``upstream`` status: state, records, last refresh and cache age."""
    age = status.get("cache_age_seconds")
    aged = "nothing cached" if age is None else f"cache age {age:g} s"
    result = status.get("result") or "not refreshed yet"
    line = f"{status['state']}, {status['records']} record(s), last refresh: {result}, {aged}"
    if status.get("message"):
        line += f" ({status['message']})"
    return line
