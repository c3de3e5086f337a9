"""Start a daemon on demand, as gpg-agent and git's credential cache do.

The keyring plugin and the shim (and the git credential helper) call `start_daemon` when
nothing listens on the socket, then ask again. ``helperd_client.Client`` and ``helperctl``
never do: for them a missing daemon stays exit 3. Without this, a stopped daemon made the
keyring plugin step aside and Poetry wrote the password into its plaintext auth.toml.

The daemon is ``helperd`` on PATH, else the links install.sh makes (``~/.local/bin/helperd``,
``/usr/local/bin/helperd``). It runs detached (a new session, stdin and stdout on
/dev/null), bound to the socket the client looks at, with its log in ``helperd.log`` (0600)
in the data folder. ``HELPERD_AUTOSTART=0`` turns this off.

Stdlib only; ``subprocess`` loads only when a daemon is started.
"""

from __future__ import annotations

import os
import time

from helperd_client.errors import DaemonNotRunningError, DaemonUnreachableError
from helperd_client.names import HANDED_OUT_PREFIXES
from helperd_client.paths import data_folder
from helperd_client.transport import ask_once
from helperd_client.trust import folder_problem
from helperd_client.wire import PROTOCOL_VERSION

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AUTOSTART_ENV",
    "INSTALL_LINKS",
    "LOG_NAME",
    "autostart_enabled",
    "find_helperd",
    "start_daemon",
]

AUTOSTART_ENV = "HELPERD_AUTOSTART"
"""``HELPERD_AUTOSTART=0`` keeps every client from starting a daemon."""

LOG_NAME = "helperd.log"
"""The log of a daemon started on demand, in the data folder."""

START_FIX = (
    "start it with `helperd &` (or `helperctl install-service`), then try again;"
    " credentials are never written elsewhere instead"
)

_POLL = 0.02  # seconds between two looks at a starting daemon
_GRACE = 0.3  # seconds to keep looking after the started process has exited (a race lost)


def autostart_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether clients may start a daemon (anything but ``HELPERD_AUTOSTART=0``)."""
    env = os.environ if env is None else env
    return env.get(AUTOSTART_ENV, "").strip() != "0"


INSTALL_LINKS = ("~/.local/bin/helperd", "/usr/local/bin/helperd")
"""Where scripts/install.sh links ``helperd``: as a user, and as root."""


def find_helperd(env: Mapping[str, str] | None = None) -> str | None:
    """``helperd`` on PATH, else the link install.sh makes for a user or for root, or None.

    Only absolute PATH entries count: an empty or relative one names the current folder,
    and a tool runs the plugin from a project it may have just cloned (a ``helperd`` there
    would be handed the user's secrets).
    """
    env = os.environ if env is None else env
    home = env.get("HOME") or os.path.expanduser("~")
    folders = [d for d in env.get("PATH", "").split(os.pathsep) if os.path.isabs(d)]
    candidates = [os.path.join(d, "helperd") for d in folders]
    candidates += [home + link[1:] if link.startswith("~/") else link for link in INSTALL_LINKS]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def start_daemon(socket: str, timeout: float, env: Mapping[str, str] | None = None) -> None:
    """Start a daemon for ``socket`` and wait until it answers, at most ``timeout`` seconds.

    Another client starting one at the same moment is fine: whichever daemon binds the socket
    answers, and the other exits.

    Raises:
        DaemonUnreachableError: starting is turned off, no executable was found, it could not
            be started, or it did not answer in time; the message says which and the fix.
    """
    env = os.environ if env is None else env
    if not autostart_enabled(env):
        raise DaemonUnreachableError(
            f"helperd is not running (nothing listens on {socket}) and {AUTOSTART_ENV}=0 keeps"
            f" it from being started on demand: {START_FIX}"
        )
    exe = find_helperd(env)
    if exe is None:
        raise DaemonUnreachableError(
            f"helperd is not running (nothing listens on {socket}) and no `helperd` executable"
            " was found to start it (on PATH, ~/.local/bin or /usr/local/bin): install helperd"
            " (scripts/install.sh) and start it with `helperd &`"
        )
    log_path = os.path.join(data_folder(env), LOG_NAME)
    deadline = time.monotonic() + timeout
    pid = _spawn(exe, socket, log_path, env)
    exited_at: float | None = None
    while True:
        try:
            _hello(socket, deadline)
        except DaemonNotRunningError:
            pass
        else:
            return
        now = time.monotonic()
        if exited_at is None and not _alive(pid):
            exited_at = now
        # After the started daemon exited, look a little longer (another client's daemon
        # may be binding the socket), never for the whole timeout.
        if now >= deadline or (exited_at is not None and now - exited_at > _GRACE):
            what = "exited" if exited_at is not None else f"did not answer within {timeout:g} s"
            raise DaemonUnreachableError(
                f"helperd is not running; started {exe} (pid {pid}) for {socket}, but it {what}:"
                f" see {log_path}"
            )
        time.sleep(_POLL)


def _spawn(exe: str, socket: str, log_path: str, env: Mapping[str, str]) -> int:
    """Start ``exe`` detached through ``sh``; returns the daemon's PID.

    ``sh`` puts the daemon in the background and exits at once, so the daemon is nobody's
    child here (no zombie, no handle to keep) and survives the tool that started it.
    """
    import subprocess  # noqa: PLC0415 - only when a daemon is started

    log_fd = _open_log(log_path)
    script = '"$0" --socket "$1" </dev/null >/dev/null & echo $!'
    try:
        done = subprocess.run(  # a fixed script; the paths are its arguments
            ["/bin/sh", "-c", script, exe, socket],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_fd,  # the daemon inherits it: its log
            env=daemon_env(env),
            cwd="/",
            start_new_session=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DaemonUnreachableError(f"could not start {exe}: {exc}") from None
    finally:
        os.close(log_fd)
    try:
        return int(done.stdout.split()[0])
    except (IndexError, ValueError):
        raise DaemonUnreachableError(f"could not start {exe}: no process ID came back") from None


def daemon_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a daemon started on demand gets: the tool's, without the credentials
    that ``helperctl exec`` (or the user) put in it for the tool, which a long-lived daemon
    has no use for."""
    return {k: v for k, v in env.items() if not k.startswith(HANDED_OUT_PREFIXES)}


def _open_log(path: str) -> int:
    """Open ``path`` for appending, 0600, in a private data folder (created 0700)."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        problem = folder_problem(os.lstat(folder), folder)
        if problem is not None:
            raise DaemonUnreachableError(f"not starting helperd: {problem}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        os.fchmod(fd, 0o600)
    except OSError as exc:
        raise DaemonUnreachableError(
            f"not starting helperd: cannot open its log {path}: {exc.strerror or exc}"
        ) from None
    return fd


def _hello(socket: str, deadline: float) -> None:
    """One ``hello`` on a checked connection; DaemonNotRunningError while nothing answers."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise DaemonNotRunningError("no time left")
    try:
        ask_once(socket, {"v": PROTOCOL_VERSION, "id": 1, "op": "hello"}, left)
    except DaemonUnreachableError as exc:  # refused meanwhile, closed, no answer yet
        raise DaemonNotRunningError(exc.message) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
