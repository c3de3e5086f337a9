"""The socket-path rule, shared by the daemon and every client (stdlib only).

SPEC.md, "Environment and paths": ``$HELPERD_SOCKET``, else ``$HELPERD_HOME/helperd.sock``,
else ``$XDG_RUNTIME_DIR/helperd/helperd.sock``, else on Linux
``/run/user/<uid>/helperd/helperd.sock`` when that runtime folder exists, else
``${TMPDIR:-/tmp}/helperd-<uid>/helperd.sock``; on macOS ``$TMPDIR/helperd/helperd.sock``.
config.toml cannot change it: a client must find the socket without reading any file.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = ["SOCKET_NAME", "socket_file", "socket_path"]

SOCKET_NAME = "helperd.sock"


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
    tmpdir = env.get("TMPDIR") or "/tmp"  # noqa: S108 - the documented last resort
    if platform == "darwin":
        return os.path.join(tmpdir, "helperd", SOCKET_NAME)
    uid = os.getuid() if uid is None else uid
    runtime = f"/run/user/{uid}"
    if platform.startswith("linux") and os.path.isdir(runtime):
        return os.path.join(runtime, "helperd", SOCKET_NAME)
    return os.path.join(tmpdir, f"helperd-{uid}", SOCKET_NAME)
