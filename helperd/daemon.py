"""``helperd``: the one place that builds the daemon from `Settings` and runs it."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
from helperd_client.errors import HelperdError

from helperd import __version__
from helperd.config import LogLevel, Settings, StoreChoice
from helperd.server import Server, StartupError, bind_socket
from helperd.service import Service
from helperd.stores.choice import Migrations, build_store

__all__ = ["build_service", "main"]

log = logging.getLogger("helperd")


def build_service(settings: Settings) -> Service:
    """The service for ``settings``, with its store opened."""
    choice = build_store(settings)
    return Service(
        choice.store,
        store_reason=choice.reason,
        idle_lock=settings.idle_lock,
        foreign=choice.foreign,
        migrations=Migrations(settings),
    )


async def run(settings: Settings) -> None:
    """Bind the socket, open the store, serve until SIGTERM/SIGINT, clean up."""
    sock = bind_socket(settings.socket_path)
    try:
        service = build_service(settings)
    except BaseException:
        sock.close()
        settings.socket_path.unlink(missing_ok=True)
        raise
    server = Server(
        service,
        read_timeout=settings.read_timeout,
        max_connections=settings.max_connections,
    )
    try:
        await server.serve(sock, owned_path=settings.socket_path)
    finally:
        service.store.close()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--socket",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to listen (default: $HELPERD_SOCKET, $HELPERD_HOME/helperd.sock, "
    "$XDG_RUNTIME_DIR/helperd/helperd.sock, ...).",
)
@click.option(
    "--store",
    type=click.Choice(["auto", "keyring", "file"]),
    help="Where secrets live [default: $HELPERD_STORE, config.toml, else auto].",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="How much to log to stderr [default: info]. Secrets are never logged.",
)
@click.version_option(__version__, prog_name="helperd")
def main(socket: Path | None, store: StoreChoice | None, log_level: LogLevel | None) -> None:
    """Run the helperd credential daemon in the foreground.

    helperd keeps your package-index credentials in an encrypted store and serves them
    to helperctl, Poetry, pip and uv over a Unix socket that only your user can use.
    Service managers run it this way; stop it with SIGTERM or Ctrl-C.
    """
    try:
        settings = Settings.resolve(socket=socket, store=store, log_level=log_level)
    except HelperdError as exc:
        raise click.ClickException(exc.message) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s helperd[%(process)d] %(levelname)s %(message)s",
    )
    try:
        asyncio.run(run(settings))
    except (StartupError, HelperdError) as exc:
        message = exc.message if isinstance(exc, HelperdError) else str(exc)
        click.echo(f"helperd: {message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        sys.exit(130)
