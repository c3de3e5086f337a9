"""``helperctl``: the command line of helperd (SPEC.md, "Commands").

It starts on every call and scripts call it often, so it loads click and helperd_client only:
``helperd.core.lookup`` (which brings pydantic) is imported where a URL must be checked or redacted.
Standard output carries only what was asked for (a password, a listing, a status, JSON);
confirmations, prompts and errors go to stderr.

The group and the record commands live here; the other command families, each in its own
module, are registered on the group at the end. Tests inject a client through `Session`
(`helperd.ctl.session`): ``runner.invoke(cli, args, obj=Session(make_client=f))``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from helperd_client.errors import HelperdError
from helperd_client.names import TOKEN_USERNAME
from helperd_client.transport import MAX_TIMEOUT

from helperd import __version__
from helperd.core.ladder import timeout_warning
from helperd.ctl import cli_input
from helperd.ctl.cli_admin import doctor, install_service
from helperd.ctl.cli_certs import cert_path, set_cert
from helperd.ctl.cli_exec import exec_command
from helperd.ctl.cli_import import import_poetry
from helperd.ctl.cli_input import fail
from helperd.ctl.cli_output import emit_json, iso, printable, record_json, shown_url, when
from helperd.ctl.cli_provider import provider_options, provider_spec, set_provider
from helperd.ctl.cli_store import init, lock, migrate, passwd, unlock
from helperd.ctl.cli_upstream import status_line, upstream
from helperd.ctl.session import Session, require_open
from helperd.integrations.shim_install import install_shim

__all__ = ["cli", "main"]


class _Group(click.Group):
    """Maps every failure to ``helperctl: <message>`` and its exit code (SPEC.md)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HelperdError as exc:
            fail(exc.message, exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except click.Abort as exc:
            # click.prompt turns Ctrl-C and end of input alike into Abort; tell them apart.
            if isinstance(exc.__context__, EOFError):
                fail("stdin ended before the prompt was answered")
            fail("interrupted", 130)
        except click.NoSuchOption as exc:
            if exc.option_name not in _OWN_OPTIONS or exc.ctx is None:
                raise
            command = exc.ctx.info_name
            raise click.UsageError(
                f"{exc.option_name} is an option of helperctl itself: give it before the"
                f" command, as in `helperctl {exc.option_name} VALUE {command} ...`",
                exc.ctx,
            ) from None
        except click.UsageError:
            raise  # click's own form: the usage line, then the error, exit 2
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)


_OWN_OPTIONS = ("--socket", "--timeout")
"""helperctl's own options, which go before the command."""


def _a_number(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    if value is not None and math.isnan(value):  # FloatRange compares, and nan passes
        raise click.BadParameter("nan is not a number of seconds")
    return value


_pass_session = click.make_pass_decorator(Session, ensure=True)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The daemon's socket [default: $HELPERD_SOCKET, else $HELPERD_HOME/helperd.sock,"
    " else $XDG_RUNTIME_DIR/helperd/, /run/user/UID/helperd/,"
    " ~/.local/state/helperd/UID/ or /tmp/helperd-UID/, the first that applies].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TIMEOUT),
    callback=_a_number,
    metavar="SECONDS",
    help="Seconds one call may take, at most 3600 [default: $HELPERD_TIMEOUT, else 2].",
)
@click.version_option(__version__, prog_name="helperctl")
@click.pass_context
def cli(ctx: click.Context, socket: Path | None, timeout: float | None) -> None:
    """Manage the credentials that helperd serves to Poetry, pip, uv and twine.

    Every command talks to the running daemon over its Unix socket.
    Secrets are never taken as arguments: they come from a hidden prompt, or from stdin.
    Exit codes: 0 success, 1 other failure, 2 usage error, 3 daemon not reachable,
    4 not found (or expired), 5 store locked (or wrong passphrase).

    \b
    Examples:
      helperctl status
      printf '%s' "$PW" | helperctl set foo --username alice \\
          --url https://pkgs.example.test/simple/ --password-stdin
      helperctl get foo
    """
    session = ctx.ensure_object(Session)
    session.socket, session.timeout = socket, timeout
    if timeout is None and (warning := timeout_warning(os.environ)) is not None:
        click.echo(f"helperctl: warning: {warning}", err=True)


@cli.command()
@_json_option
@_pass_session
def status(session: Session, as_json: bool) -> None:
    """Show the daemon's version, store and lock state.

    Prints the daemon's version, protocol and process id, the active store (keyring or file)
    and why it was chosen, the lock state, and how many repositories it holds (unknown
    while locked); after too many wrong passphrases, when one is checked again.
    Exits 3 when no daemon answers.

    \b
    Examples:
      helperctl status
      helperctl status --json | jq .locked
    """
    client = session.client()
    hello = client.hello()
    state = client.status()
    if as_json:
        emit_json({**dataclasses.asdict(state), "socket": str(client.path)})
        return
    if state.store_error is not None:
        lock_state = f"cannot be opened: {state.store_error}"
    elif not state.initialized:
        lock_state = "no store yet (`helperctl init`)"
    elif state.locked:
        lock_state = "locked (`helperctl unlock`)"
    else:
        lock_state = "unlocked"
    count = str(state.repositories)
    if state.repositories is None:
        count = "unknown while locked" if state.initialized else "none (no store yet)"
        count = "unknown" if state.store_error is not None else count
    lines = [
        f"helperd {hello.version} (protocol {hello.protocol}, pid {state.pid})",
        f"socket:       {client.path}",
        f"store:        {state.store} ({state.store_reason})",
        f"state:        {lock_state}",
        f"repositories: {count}",
    ]
    if state.providers:
        failing = (
            f" ({', '.join(state.providers_failing)} failing)" if state.providers_failing else ""
        )
        lines.append(f"providers:    {state.providers}{failing}")
    if state.lockable and state.idle_lock_seconds:
        seconds = state.idle_lock_seconds
        after = f"{seconds:g} s" if seconds < 60 else f"{round(seconds / 60, 1):g} min"
        lines.append(f"auto-lock:    after {after} without use")
    if state.passphrase_retry_in > 0:
        wait = math.ceil(state.passphrase_retry_in)
        lines.append(f"passphrase:   checked again in {wait} s (too many wrong ones in a row)")
    if state.lockable:
        memory = "locked against swap" if state.memory_locked else "not locked (mlock failed)"
        lines.append(f"key memory:   {memory}")
    if state.upstream is not None:
        lines.append(f"upstream:     {state.upstream['address']}: {status_line(state.upstream)}")
    if hello.version != __version__:
        lines.append(f"note:         this helperctl is {__version__}")
    click.echo("\n".join(lines))


@cli.command("set")
@click.argument("name", callback=cli_input.repository_name)
@click.option(
    "--url",
    "urls",
    multiple=True,
    callback=cli_input.index_urls,
    help="An index or upload URL (repeatable).",
)
@click.option("--username", "-u", help=f"The username [default for --token: {TOKEN_USERNAME}].")
@click.option("--token", is_flag=True, help="Store an API token rather than a password.")
@click.option(
    "--expires-at",
    callback=cli_input.expiry,
    metavar="TIME",
    help="ISO-8601 (UTC if no zone) or 30m, 12h, 7d, 1w.",
)
@click.option("--password-stdin", is_flag=True, help="Read the secret from stdin.")
@provider_options
@click.option(
    "--upstream",
    "to_upstream",
    is_flag=True,
    help="Write it to the upstream secret engine (its policy must allow it), not locally.",
)
@_pass_session
def set_(
    session: Session,
    /,
    *,
    name: str,
    urls: tuple[str, ...],
    username: str | None,
    token: bool,
    expires_at: datetime | None,
    password_stdin: bool,
    to_upstream: bool,
    **provider_flags: Any,
) -> None:
    """Add or replace a credential of repository NAME.

    One record is kept per (NAME, username).
    On a terminal it asks for the password twice, with hidden input; otherwise give
    --password-stdin and pipe it in: all of stdin is the secret, less one trailing newline.
    --token makes a token record, with username __token__ unless --username says otherwise.
    Without --url, a replaced record keeps its URLs; a URL with a password in it is refused.
    With --upstream it is written to the upstream secret engine (docs/fleet.md) instead.
    Prints what was stored, never the secret.

    \b
    Examples:
      printf '%s' "$PW" | helperctl set foo --username alice \\
          --url https://pkgs.example.test/simple/ --password-stdin
      helperctl set pypi --token --url https://upload.pypi.org/legacy/ --expires-at 30d
      helperctl set codeartifact --token --username aws --expires-at 12h --password-stdin
      helperctl set ca --provider codeartifact --domain D --domain-owner 111122223333 \\
          --url https://D-111122223333.d.codeartifact.eu-west-1.amazonaws.com/pypi/R/simple/
      helperctl set mine --provider-command --url https://pkgs.example.test/simple/ \\
          -- /usr/local/bin/mint-token --audience pkgs
    """
    spec = provider_spec(provider_flags, username)
    if spec is not None:
        if password_stdin or expires_at is not None:
            raise click.UsageError("a provider record takes no --password-stdin nor --expires-at")
        set_provider(session.client(), name, spec, urls)
        return
    cli_input.require_secret_source("password", from_stdin=password_stdin, flag="--password-stdin")
    kind = "token" if token else "basic"
    if token and username is None:
        username = TOKEN_USERNAME
    client = session.client()
    require_open(client)  # before the prompt, so that nobody types a secret for nothing
    password = cli_input.read_secret(
        "password", from_stdin=password_stdin, flag="--password-stdin", confirm=True
    )
    info = client.set(
        name,
        password,
        username=username,
        kind=kind,
        urls=list(urls) or None,
        expires_at=expires_at,
        upstream=to_upstream,
    )
    where = f", {len(info.urls)} URL{'' if len(info.urls) == 1 else 's'}" if info.urls else ""
    until = f", expires {when(info.expires_at)}" if info.expires_at else ""
    upstream_note = " upstream" if to_upstream else ""
    click.echo(
        f"stored {info.kind} record {info.name!r} for username {info.username!r}{where}{until}"
        f"{upstream_note}",
        err=True,
    )


@cli.command()
@click.argument("target")
@click.option("--username", "-u", help="Only the record with this username.")
@_json_option
@_pass_session
def get(session: Session, target: str, username: str | None, as_json: bool) -> None:
    """Print the password of TARGET alone (like `keyring get`).

    Made for scripts: stdout holds the password and one newline, nothing else.
    TARGET is a repository name, `poetry-repository-NAME`, an index URL or `host[:port]`;
    a URL finds the record whose URL is its longest prefix.
    When a name holds several records, the basic one is chosen, unless --username says which.
    With --json it prints the whole record, password included.
    Exits 4 when nothing matches or the record has expired.

    \b
    Examples:
      helperctl get foo
      helperctl get https://pkgs.example.test/simple/privpkg/ --json
      helperctl get pkgs.example.test --username alice
    """
    client = session.client()
    if "://" in target:
        cred = client.get(url=target, username=username)
    else:  # the daemon tells names, poetry-repository-NAME and host[:port] apart
        cred = client.get(service=target, username=username)
    if not as_json:
        click.echo(cred.password, color=True)  # color=True: never strip escapes from a secret
        return
    emit_json(
        {
            "name": cred.name,
            "username": cred.username,
            "password": cred.password,
            "kind": cred.kind,
            "urls": [shown_url(u) for u in cred.urls],
            "expires_at": iso(cred.expires_at),
            "created_at": iso(cred.created_at),
            "updated_at": iso(cred.updated_at),
        }
    )


@cli.command("list")
@_json_option
@_pass_session
def list_(session: Session, as_json: bool) -> None:
    """List every record; never a secret.

    Shows name, username, kind, first URL and expiry.
    Expired records are listed, marked "(expired)"; `get` no longer serves them.
    Exits 5 while the store is locked.

    \b
    Examples:
      helperctl list
      helperctl list --json | jq -r '.[] | select(.expired) | .name'
    """
    records = session.client().list()
    if as_json:
        emit_json([record_json(r) for r in records])
        return
    if not records:
        click.echo("no records yet: `helperctl set` adds one", err=True)
        return
    rows = [("NAME", "USERNAME", "KIND", "URL", "EXPIRES")]
    for r in records:
        url = "-" if r.url is None else shown_url(r.url)
        if len(r.urls) > 1:
            url += f" (+{len(r.urls) - 1})"
        expires = "never" if r.expires_at is None else when(r.expires_at)
        if r.provider is not None:  # the current token's expiry, and the provider's health
            health = "ok" if r.provider_error is None else "failing"
            expires = f"{expires} ({r.provider}: {health})"
        rows.append(
            (
                printable(r.name),
                printable(r.username) if r.username else "(none)",
                r.kind if r.source == "local" else f"{r.kind} (upstream)",
                printable(url),
                f"{expires} (expired)" if r.expired else expires,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@cli.command()
@click.argument("name")
@click.option("--username", "-u", help="Only the record with this username.")
@_pass_session
def rm(session: Session, name: str, username: str | None) -> None:
    """Delete one record of NAME, or all of them.

    With --username only that record goes; without it, every record of NAME.
    Prints how many records were removed; exits 4 when none matched.

    \b
    Examples:
      helperctl rm foo --username alice
      helperctl rm foo
    """
    count = session.client().delete(name, username)
    click.echo(f"removed {count} record{'' if count == 1 else 's'} of {name!r}", err=True)


def main(args: Sequence[str] | None = None, *, obj: Session | None = None) -> None:
    """Run helperctl (the console script); exits with the command's status."""
    cli.main(args=args, prog_name="helperctl", obj=obj)


cli.add_command(import_poetry)
cli.add_command(exec_command)
cli.add_command(init)
cli.add_command(lock)
cli.add_command(unlock)
cli.add_command(passwd)
cli.add_command(migrate)
cli.add_command(install_service)
cli.add_command(doctor)
cli.add_command(install_shim)
cli.add_command(set_cert)
cli.add_command(cert_path)
cli.add_command(upstream)
