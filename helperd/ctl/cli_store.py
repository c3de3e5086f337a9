"""``helperctl init``, ``lock``, ``unlock``, ``passwd`` and ``migrate``: the store itself.

Registered on the ``helperctl`` group by `helperd.ctl.main`; the `Session` comes from
click's context object, which the group sets. Passphrases come from a hidden prompt or from
stdin, never from arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from helperd_client.errors import BadRequestError, LockedError

from helperd.ctl import cli_input
from helperd.ctl.cli_output import NO_STORE

if TYPE_CHECKING:
    from helperd.ctl.session import Session

__all__ = ["init", "lock", "migrate", "passwd", "unlock"]


@click.command()
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from stdin.")
@click.pass_obj
def init(session: Session, passphrase_stdin: bool) -> None:
    """Create a new file store protected by a passphrase.

    The new store is empty and left unlocked.
    On a terminal it asks for the passphrase twice, with hidden input; otherwise give
    --passphrase-stdin and pipe it in (one trailing newline is stripped).
    It refuses when a store exists already, and is not needed with the OS keyring store or a
    key file.

    \b
    Examples:
      helperctl init
      helperctl init --passphrase-stdin < passphrase.txt
    """
    client = session.client()
    state = client.status()
    if not state.lockable:
        client.init(None)  # the daemon explains why this store is not made with init
        click.echo(f"created the {state.store} store", err=True)
        return
    if state.initialized:
        raise BadRequestError(
            "a store exists already: `helperctl unlock` opens it,"
            " `helperctl passwd` changes its passphrase"
        )
    passphrase = cli_input.read_secret(
        "passphrase", from_stdin=passphrase_stdin, flag="--passphrase-stdin", confirm=True
    )
    client.init(passphrase)
    click.echo("created a new file store; it is unlocked", err=True)


@click.command()
@click.pass_obj
def lock(session: Session) -> None:
    """Lock the file store until `helperctl unlock`.

    The daemon zeroes the key and lets go of every decrypted secret (docs/security.md,
    "Memory", says what Python may still leave behind until the memory is reused).
    While locked, `get`, `set` and `list` answer exit 5.

    \b
    Examples:
      helperctl lock
    """
    client = session.client()
    client.lock()
    state = client.status()  # the OS keyring store has no lock: say so rather than pretend
    if not state.initialized:
        click.echo(
            "there is no store yet, so nothing to lock: `helperctl init` creates one", err=True
        )
    elif state.locked:
        click.echo("locked: `helperctl unlock` opens the store again", err=True)
    else:
        click.echo(f"the {state.store} store has no passphrase: it stays open", err=True)


@click.command()
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from stdin.")
@click.pass_obj
def unlock(session: Session, passphrase_stdin: bool) -> None:
    """Unlock the file store; it never creates one.

    On a terminal it asks once, with hidden input; otherwise give --passphrase-stdin.
    A wrong passphrase exits 5. After wrong ones in a row, the daemon checks none for a
    while (1, 2, 4 ... up to 30 s): unlock then exits 5 at once and says when to try again.

    \b
    Examples:
      helperctl unlock
      pass show helperd | helperctl unlock --passphrase-stdin
    """
    client = session.client()
    state = client.status()
    if not state.lockable:
        client.unlock(None)
        click.echo(f"the {state.store} store has no passphrase: it is open", err=True)
        return
    if not state.initialized:
        raise LockedError(NO_STORE)
    passphrase = cli_input.read_secret(
        "passphrase", from_stdin=passphrase_stdin, flag="--passphrase-stdin", confirm=False
    )
    client.unlock(passphrase)
    click.echo("unlocked", err=True)


@click.command()
@click.option("--passphrase-stdin", is_flag=True, help="Read both passphrases from stdin.")
@click.pass_obj
def passwd(session: Session, passphrase_stdin: bool) -> None:
    """Change the file store's passphrase.

    The store is re-encrypted under the new passphrase and left unlocked.
    On a terminal it asks for the current passphrase once and the new one twice.
    With --passphrase-stdin, stdin holds two lines: the current passphrase, then the new one.
    A wrong current passphrase exits 5 and changes nothing.

    \b
    Examples:
      helperctl passwd
      printf '%s\\n%s\\n' "$OLD" "$NEW" | helperctl passwd --passphrase-stdin
    """
    flag = "--passphrase-stdin"
    cli_input.require_secret_source("passphrase", from_stdin=passphrase_stdin, flag=flag)
    client = session.client()
    state = client.status()
    if not state.lockable:
        raise BadRequestError(f"the {state.store} store has no passphrase to change")
    if not state.initialized:
        raise LockedError(NO_STORE)
    client.passwd(*cli_input.read_passphrase_change(from_stdin=passphrase_stdin))
    click.echo("passphrase changed; the store is unlocked", err=True)


@click.command()
@click.option(
    "--to",
    "to",
    type=click.Choice(["keyring", "file"]),
    required=True,
    help="The store to move every record to.",
)
@click.option(
    "--passphrase-stdin",
    is_flag=True,
    help="Read the file store's passphrase from stdin (--to file without a key file).",
)
@click.pass_obj
def migrate(session: Session, to: str, passphrase_stdin: bool) -> None:
    """Move every record to the other store and use that store from now on.

    Each record is copied, read back and compared before the old store is deleted, so an
    interruption loses nothing: run the same command again to finish.
    Moving to a new passphrase-protected file asks for its passphrase twice on a terminal
    (a key file, HELPERD_KEY_FILE, needs none); an existing one is unlocked with it.
    The result is reported as a count, never a secret.

    \b
    Examples:
      helperctl migrate --to keyring
      pass show helperd | helperctl migrate --to file --passphrase-stdin
    """
    client = session.client()
    passphrase = None
    if passphrase_stdin:
        passphrase = cli_input.read_secret(
            "passphrase", from_stdin=True, flag="--passphrase-stdin", confirm=False
        )
    try:
        moved, reason = client.migrate(to, passphrase)
    except BadRequestError as exc:
        if passphrase is not None or "passphrase" not in exc.message:
            raise
        passphrase = cli_input.read_secret(
            "new passphrase", from_stdin=False, flag="--passphrase-stdin", confirm=True
        )
        moved, reason = client.migrate(to, passphrase)
    click.echo(f"moved {moved} record{'' if moved == 1 else 's'} to the {to} store", err=True)
    click.echo(f"store: {reason}", err=True)
