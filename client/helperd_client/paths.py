"""The socket-path and data-folder rules, shared by the daemon and every client (stdlib only).

SPEC.md, "Environment and paths": ``$HELPERD_SOCKET``, else ``$HELPERD_HOME/helperd.sock``,
else ``$XDG_RUNTIME_DIR/helperd/helperd.sock``, else on Linux
``/run/user/<uid>/helperd/helperd.sock`` when that runtime folder exists, else
``${XDG_STATE_HOME:-$HOME/.local/state}/helperd/<uid>/helperd.sock`` when ``$HOME`` is a
directory owned by the user and the path fits in `MAX_SOCKET_BYTES`, else
``${TMPDIR:-/tmp}/helperd-<uid>/helperd.sock``. On macOS (no runtime folder)
``$HOME/Library/Application Support/helperd/<uid>/helperd.sock`` under the same conditions,
else the ``$TMPDIR`` form. A folder in the user's own home comes before a shared ``/tmp``:
there no other user can create the folder first. config.toml cannot change the rule: a
client must find the socket without reading any file.
"""

from __future__ import annotations

import os
import stat
import sys

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["MAX_SOCKET_BYTES", "SOCKET_NAME", "data_folder", "socket_file", "socket_path"]

SOCKET_NAME = "helperd.sock"

MAX_SOCKET_BYTES = 100
"""Longest socket path taken under the home folder (``sun_path`` holds 104 to 108 bytes)."""


def socket_path(
    env: Mapping[str, str] | None = None,
    *,
    platform: str = sys.platform,
    uid: int | None = None,
) -> Path:
    """Return where the daemon listens and where clients connect.

    Args:
        env: the environment to read (default: ``os.environ``).
        platform: ``sys.platform`` value to apply the rule for (tests pass another).
        uid: the user ID for per-user fallbacks (default: ``os.getuid()``).
    """
    from pathlib import Path  # noqa: PLC0415 - see TYPE_CHECKING above

    return Path(socket_file(env, platform=platform, uid=uid))


def socket_file(
    env: Mapping[str, str] | None = None,
    *,
    platform: str = sys.platform,
    uid: int | None = None,
) -> str:
    """`socket_path` as a string, computed without pathlib (for the keyring shim)."""
    env = os.environ if env is None else env
    if env.get("HELPERD_SOCKET"):
        return env["HELPERD_SOCKET"]
    if env.get("HELPERD_HOME"):
        return os.path.join(env["HELPERD_HOME"], SOCKET_NAME)
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "helperd", SOCKET_NAME)
    uid = os.getuid() if uid is None else uid
    darwin = platform == "darwin"
    runtime = f"/run/user/{uid}"
    if not darwin and platform.startswith("linux") and os.path.isdir(runtime):
        return os.path.join(runtime, "helperd", SOCKET_NAME)
    home = _own_home(env, uid)
    if home is not None:
        if darwin:
            state = os.path.join(home, "Library", "Application Support")
        else:
            state = _absolute(env.get("XDG_STATE_HOME")) or os.path.join(home, ".local", "state")
        path = os.path.join(state, "helperd", str(uid), SOCKET_NAME)
        if len(os.fsencode(path)) <= MAX_SOCKET_BYTES:
            return path
    tmpdir = env.get("TMPDIR") or "/tmp"  # noqa: S108 - the documented last resort
    return os.path.join(tmpdir, f"helperd-{uid}", SOCKET_NAME)


def data_folder(env: Mapping[str, str] | None = None, *, platform: str = sys.platform) -> str:
    """The daemon's data folder (store files, ``helperd.log``), computed without platformdirs.

    ``$HELPERD_HOME`` when set; else platformdirs' user data folder for ``helperd``:
    ``${XDG_DATA_HOME:-$HOME/.local/share}/helperd``, on macOS
    ``$HOME/Library/Application Support/helperd``. The daemon's settings use this rule too, so
    a client that starts a daemon finds the folder the daemon uses.
    """
    env = os.environ if env is None else env
    if env.get("HELPERD_HOME"):
        return env["HELPERD_HOME"]
    home = env.get("HOME") or os.path.expanduser("~")
    if platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "helperd")
    base = _absolute((env.get("XDG_DATA_HOME") or "").strip())
    return os.path.join(base or os.path.join(home, ".local", "share"), "helperd")


def _absolute(value: str | None) -> str | None:
    """``value`` when it is an absolute path (the XDG rule: relative values are ignored)."""
    return value if value and os.path.isabs(value) else None


def _own_home(env: Mapping[str, str], uid: int) -> str | None:
    """``$HOME`` when it is an absolute path to a directory owned by ``uid``, else None."""
    home = _absolute(env.get("HOME"))
    if home is None:
        return None
    try:
        info = os.stat(home)
    except OSError:
        return None
    if info.st_uid != uid or not stat.S_ISDIR(info.st_mode):
        return None
    return home
