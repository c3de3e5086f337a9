"""``helperd``: the one place that builds the daemon from `Settings` and runs it."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shlex
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import click
from click.core import ParameterSource
from helperd_client.errors import HelperdError

from helperd import __version__
from helperd.core.certs import CertKeeper
from helperd.core.config import (
    IDLE_EXIT_ENV,
    LogLevel,
    Settings,
    StoreChoice,
    cert_folder,
    idle_exit_seconds,
)
from helperd.core.gate import GuessGate
from helperd.core.service import Service
from helperd.core.store import Store, StoreState
from helperd.daemon.activation import (
    ActivationError,
    IdleExit,
    Notifier,
    launchd_sockets,
    listen_fds,
    socket_address,
    socket_problems,
)
from helperd.daemon.hardening import harden_process, room_for_connections
from helperd.daemon.server import Lifecycle, Server, StartupError, bind_socket
from helperd.daemon.upstream_task import attach_upstream, keep_fresh
from helperd.stores import keys, secret_memory
from helperd.stores.cert_files import FolderCertFiles
from helperd.stores.choice import Migrations, build_store
from helperd.stores.guess_gate import GATE_FILE, GateFile

__all__ = ["build_service", "check_home", "main"]

log = logging.getLogger("helperd")


def build_service(settings: Settings) -> Service:
    """The service for ``settings``, with its store opened."""
    choice = build_store(settings)  # makes the data folder, where the gate is kept
    return Service(
        choice.store,
        store_reason=choice.reason,
        idle_lock=settings.idle_lock,
        foreign=choice.foreign,
        migrations=Migrations(settings),
        gate=GuessGate(GateFile(settings.data_dir / GATE_FILE)),
        key_facts=_KeyFacts(),
        certs=CertKeeper(
            FolderCertFiles(
                settings.cert_dir or cert_folder(os.environ), on_disk=settings.cert_files_on_disk
            )
        ),
    )


class _KeyFacts:
    """`helperd.core.service.KeyFacts` from the stores' key handling."""

    def kdf_runs(self) -> int:
        return keys.kdf_runs()

    def memory_locked(self) -> bool:
        return secret_memory.memory_locked()


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when the ``fast`` extra installed it, else None (asyncio's own)."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def event_loop_name() -> str:
    """The running event loop's package: ``asyncio``, or ``uvloop`` with the fast extra."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def check_home(env: Mapping[str, str]) -> None:
    """Refuse a ``HELPERD_HOME`` that exists with another mode than 0700 (SPEC.md).

    Stricter than the data folder's own check (no group/other write): the store, the
    config and the passphrase gate all sit there, so nobody else may even list it.

    Raises:
        StartupError: it is not a directory, or its mode is not 0700; the message names
            the ``chmod 700`` to run.
    """
    home = env.get("HELPERD_HOME")
    if not home:
        return
    try:
        info = os.lstat(home)
    except FileNotFoundError:
        return  # created 0700 when the store opens
    except OSError as exc:
        raise StartupError(f"cannot use HELPERD_HOME {home}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise StartupError(f"HELPERD_HOME {home} is not a directory (a symlink is refused too)")
    mode = stat.S_IMODE(info.st_mode)
    if mode != 0o700:
        fix = f"chmod 700 {shlex.quote(home)}"
        raise StartupError(f"{home} has mode {mode:04o}; HELPERD_HOME must be 0700: run `{fix}`")


async def run(
    settings: Settings,
    *,
    idle_exit: IdleExit | None = None,
    reload: Callable[[], Settings] | None = None,
) -> None:
    """Take or bind the socket, open the store, serve until SIGTERM/SIGINT, clean up.

    A socket handed over by systemd or launchd is served as it is and never removed; only
    a socket bound here is. systemd hears ``READY=1`` once connections are accepted and
    ``STOPPING=1`` at shutdown, when it asked for notifications.

    Args:
        settings: what to serve, and how.
        idle_exit: when a socket-activated daemon exits on its own (None: never).
        reload: resolves the settings again on SIGHUP (None: SIGHUP is not handled).
    """
    notifier = Notifier.from_env()
    try:
        await _serve(settings, notifier, idle_exit, reload)
    except (StartupError, HelperdError) as exc:
        notifier.status(f"failed: {exc.message if isinstance(exc, HelperdError) else exc}")
        raise


async def _serve(
    settings: Settings,
    notifier: Notifier,
    idle_exit: IdleExit | None,
    reload: Callable[[], Settings] | None,
) -> None:
    handed = _handed_over(settings)
    if handed is None:
        sock, owned_path = bind_socket(settings.socket_path, settings.backlog), settings.socket_path
        if idle_exit is not None:
            log.warning("--idle-exit applies only when a service manager hands over the socket")
    else:
        sock, owned_path = handed, None
    where = socket_address(sock)
    try:
        service = build_service(settings)
        if service.certs is not None:  # stale files of an earlier run go; the store's come back
            service.certs.start(service.store, datetime.now(UTC))
        service.event_loop = event_loop_name()
    except BaseException:
        sock.close()
        if owned_path is not None:
            owned_path.unlink(missing_ok=True)
        raise
    server = Server(
        service,
        read_timeout=settings.read_timeout,
        max_connections=room_for_connections(settings.max_connections),
        backlog=settings.backlog,
    )

    def tell(event: Lifecycle) -> None:
        if event == "ready":
            store = service.store
            notifier.ready(f"serving on {where} (store: {store.kind}: {service.store_reason})")
        else:
            notifier.stopping("stopping")

    if reload is not None:
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, _reload, reload, service, server
        )
    keeper = attach_upstream(settings, service)
    fresh = None if keeper is None else asyncio.create_task(keep_fresh(keeper, service))
    watcher = None
    if idle_exit is not None and handed is not None:
        watcher = asyncio.create_task(_exit_when_idle(server, service.store, idle_exit, notifier))
    try:
        await server.serve(sock, owned_path=owned_path, notify=tell)
    finally:
        if watcher is not None:
            watcher.cancel()
        if fresh is not None:
            fresh.cancel()
        if service.certs is not None:
            service.certs.clear()
        # Off the loop: a writer process may be waiting for the loop to apply its last write.
        await asyncio.get_running_loop().run_in_executor(None, service.store.close)


def _reload(resolve: Callable[[], Settings], service: Service, server: Server) -> None:
    """SIGHUP: read config.toml again and apply what can change while serving.

    The log level, the idle lock and the connection limits change; the store, its unlock
    state and the socket stay as they are. A config.toml that does not parse is logged and
    the old settings are kept.
    """
    try:
        fresh = resolve()
    except HelperdError as exc:
        log.error("SIGHUP: keeping the current settings: %s", exc.message)
        return
    logging.getLogger().setLevel(fresh.log_level.upper())
    service.idle_lock = fresh.idle_lock
    cap = room_for_connections(fresh.max_connections)
    server.configure(read_timeout=fresh.read_timeout, max_connections=cap)
    log.info("SIGHUP: reloaded %s (log level %s)", fresh.config_file, fresh.log_level)


def _handed_over(settings: Settings) -> socket.socket | None:
    """The socket systemd or launchd handed over, or None when the daemon binds its own.

    Raises:
        StartupError: the service manager passed something helperd cannot serve.
    """
    try:
        sockets = listen_fds() or launchd_sockets()
    except ActivationError as exc:
        raise StartupError(str(exc)) from None
    if not sockets:
        return None
    sock, *extra = sockets
    for other in extra:
        log.warning("serving only %s: ignoring the socket %s", *map(socket_address, (sock, other)))
        other.close()
    for problem in socket_problems(sock):
        log.warning("%s", problem)
    where = socket_address(sock)
    log.info("socket %s handed over by the service manager", where)
    if where != str(settings.socket_path):
        log.warning(
            "clients look for the socket at %s, not %s: set HELPERD_SOCKET=%s for them",
            settings.socket_path,
            where,
            where,
        )
    return sock


async def _exit_when_idle(
    server: Server, store: Store, policy: IdleExit, notifier: Notifier
) -> None:
    """Stop the server once ``policy`` says a socket-activated daemon may exit."""
    period = max(0.2, min(policy.after / 4, 30.0))
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(period)
        # A store's state may wait for a lock held by a request: ask off the event loop.
        unlocked = await loop.run_in_executor(None, _passphrase_unlocked, store)
        now = time.monotonic()
        if policy.due(
            activated=True,
            idle_since=server.idle_since,
            now=now,
            passphrase_unlocked=unlocked,
        ):
            log.info(
                "exiting after %g s without connections; the service manager starts helperd"
                " again on the next one",
                policy.after,
            )
            notifier.status(f"exiting after {policy.after:g} s without connections")
            server.stop()
            return


def _passphrase_unlocked(store: Store) -> bool:
    """Whether ``store`` is a passphrase store holding its key (an exit would drop it)."""
    try:
        return store.lockable and store.state is StoreState.UNLOCKED
    except Exception:
        log.debug("cannot tell whether the store is unlocked", exc_info=True)
        return True  # when in doubt, stay up


def _idle_exit(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """--idle-exit in seconds; a bad value is refused naming what the user set (the option
    or HELPERD_IDLE_EXIT)."""
    if value is None:
        return None
    from_env = ctx.get_parameter_source(param.name or "") is ParameterSource.ENVIRONMENT
    try:
        return idle_exit_seconds(value, IDLE_EXIT_ENV if from_env else "--idle-exit")
    except HelperdError as exc:
        raise click.BadParameter(exc.message) from None


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
@click.option(
    "--idle-exit",
    callback=_idle_exit,
    envvar=IDLE_EXIT_ENV,
    metavar="SECONDS",
    help="When a service manager hands over the socket, exit after this many seconds without"
    " connections; it starts helperd again on the next one [default: $HELPERD_IDLE_EXIT,"
    " else 0: never]. A passphrase store that is unlocked keeps the daemon up.",
)
@click.option(
    "--idle-exit-unlocked",
    is_flag=True,
    help="With --idle-exit, exit even while a passphrase store is unlocked"
    " (it must be unlocked again afterwards).",
)
@click.version_option(__version__, prog_name="helperd")
def main(
    socket: Path | None,
    store: StoreChoice | None,
    log_level: LogLevel | None,
    idle_exit: float | None,
    idle_exit_unlocked: bool,
) -> None:
    """Run the helperd credential daemon in the foreground.

    helperd keeps your package-index credentials in the OS keyring or an encrypted file and
    serves them to helperctl, Poetry, pip and uv over a Unix socket that only your user can use.
    Service managers run it this way; stop it with SIGTERM or Ctrl-C.
    """
    # Every file and folder the daemon makes is private from the start, whatever path
    # makes it (logs, a store written by a library, a socket bound elsewhere).
    os.umask(0o077)
    try:
        settings = Settings.resolve(socket=socket, store=store, log_level=log_level)
    except HelperdError as exc:
        raise click.ClickException(exc.message) from None
    logging.basicConfig(
        level=settings.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s helperd[%(process)d] %(levelname)s %(message)s",
    )
    harden_process()  # no core dumps, no ptrace by other processes: secrets live in memory
    try:
        check_home(os.environ)
        policy = IdleExit(idle_exit, while_unlocked=idle_exit_unlocked) if idle_exit else None
        again = functools.partial(Settings.resolve, socket=socket, store=store, log_level=log_level)
        with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
            runner.run(run(settings, idle_exit=policy, reload=again))
    except (StartupError, HelperdError) as exc:
        message = exc.message if isinstance(exc, HelperdError) else str(exc)
        click.echo(f"helperd: {message}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        sys.exit(130)
