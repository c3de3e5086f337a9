"""What ``helperctl doctor`` looks at, gathered once and read only: `gather` returns `Facts`.

Every probe is bounded in time and writes nothing: a connection to the socket and the
daemon's ``hello``/``status``, the settings and the key file (read by the daemon's own rules,
its bytes dropped at once), Poetry's and the ``keyring`` CLI's own Pythons asked which keyring
backend they pick, the ``keyring`` pip's subprocess provider would run, helperd's keyring
shim, and Poetry's auth.toml (counted, never quoted). The verdicts are in `helperd.ctl.doctor`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from helperd_client import Client, Hello, RecordInfo, Status, shim
from helperd_client.errors import HelperdError, UntrustedSocketError
from helperd_client.paths import socket_path
from helperd_client.trust import check_peer, check_socket_folder

from helperd.core.ladder import timeout_warning
from helperd.ctl.doctor_moved import OldSocket, old_sockets
from helperd.ctl.doctor_providers import failing_records
from helperd.integrations.units import script_interpreter

__all__ = [
    "PROBE_TIMEOUT",
    "AuthFacts",
    "Connection",
    "Facts",
    "KeyringProbe",
    "PathFacts",
    "PipFacts",
    "ShimFacts",
    "auth_facts",
    "gather",
    "pip_facts",
    "probe_program",
]

ConnectionState = Literal["ok", "missing", "refused", "timeout", "denied", "untrusted", "error"]
PROBE_TIMEOUT = 10.0
"""Seconds an interpreter may take to say which keyring backend it picks."""

_PROBE_MARK = "HELPERD-DOCTOR "
# Runs under Poetry's (or the keyring CLI's) own Python, which may be older than ours.
_PROBE = r"""
import json, sys
out = {"plugin": False, "backend": None, "backend_class": None, "error": None}
try:
    from importlib import metadata
    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        group = eps.select(group="keyring.backends")
    else:
        group = eps.get("keyring.backends", [])
    out["plugin"] = any(ep.value.split(":")[0].split(".")[0] == "helperd_client" for ep in group)
except Exception as exc:
    out["error"] = "cannot list its plugins (%s)" % type(exc).__name__
try:
    import keyring
    chosen = keyring.get_keyring()
    out["backend"] = str(getattr(chosen, "name", type(chosen).__name__))
    out["backend_class"] = type(chosen).__module__ + "." + type(chosen).__qualname__
except Exception as exc:
    out["error"] = "keyring fails: %s: %s" % (type(exc).__name__, str(exc)[:200])
print("HELPERD-DOCTOR " + json.dumps(out))
"""


@dataclass(frozen=True)
class PathFacts:
    """What ``lstat`` says of a path; ``kind`` is ``missing`` when there is nothing."""

    path: Path
    kind: Literal["missing", "dir", "socket", "file", "symlink", "other"]
    mode: int = 0
    uid: int = -1

    @classmethod
    def of(cls, path: Path) -> PathFacts:
        """Look at ``path`` without following a symbolic link."""
        try:
            info = os.lstat(path)
        except OSError:
            return cls(path, "missing")
        kinds = (
            (stat.S_ISDIR, "dir"),
            (stat.S_ISSOCK, "socket"),
            (stat.S_ISREG, "file"),
            (stat.S_ISLNK, "symlink"),
        )
        kind = next((name for test, name in kinds if test(info.st_mode)), "other")
        return cls(path, kind, stat.S_IMODE(info.st_mode), info.st_uid)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Connection:
    """How a connection to the socket went: ``state`` is ``ok``, ``missing`` (no socket),
    ``refused`` (stale), ``timeout``, ``denied``, ``untrusted`` (the folder or the listener is
    not yours: helperd_client.trust) or ``error``; with ``ok``, what the daemon said."""

    state: ConnectionState
    detail: str = ""
    hello: Hello | None = None
    status: Status | None = None
    failing: tuple[RecordInfo, ...] | None = None
    """``list``'s records of the providers ``status`` says fail (None: none fail, or not known)."""


@dataclass(frozen=True)
class KeyringProbe:
    """Which keyring backend a program's Python picks, and whether helperd's plugin is there.

    ``state``: ``absent`` (no such program on PATH), ``no-python`` (not a Python script),
    ``timeout``, ``error`` (the probe failed; ``error`` says why) or ``ok``.
    """

    tool: str
    state: Literal["absent", "no-python", "timeout", "error", "ok"]
    program: Path | None = None
    python: Path | None = None
    plugin: bool = False
    backend: str | None = None
    backend_class: str | None = None
    error: str | None = None

    @property
    def picks_helperd(self) -> bool:
        """Whether the backend picked is helperd's."""
        return (self.backend_class or "").startswith("helperd_client.")


@dataclass(frozen=True)
class PipFacts:
    """The ``keyring`` CLI that pip's ``subprocess`` provider would run.

    pip skips a ``keyring`` in its own environment's scripts folder and takes the next one
    on PATH. ``first`` is PATH's first ``keyring``; ``chosen`` is pip's; ``probe`` describes
    ``chosen`` when it differs from ``first``.
    """

    pip: Path | None
    scripts: Path | None = None
    first: Path | None = None
    chosen: Path | None = None
    probe: KeyringProbe | None = None


@dataclass(frozen=True)
class AuthFacts:
    """Poetry's auth.toml: ``secrets`` that import-poetry would move, ``left`` other entries it
    would leave; ``state`` ``absent``, ``ok`` or ``error`` (``error`` says why). ``backups``:
    the copies beside it that hold plaintext secrets, with how many (None: a copy that is not
    TOML, such as vim's swap file, which may hold some)."""

    path: Path
    state: Literal["absent", "ok", "error"]
    secrets: int = 0
    left: int = 0
    error: str | None = None
    backups: tuple[tuple[Path, int | None], ...] = ()


@dataclass(frozen=True)
class ShimFacts:
    """helperd's keyring shim: the ``keyring`` first on PATH when it is the shim, and the real
    ``keyring`` it hands other calls to."""

    first: Path | None
    backing: Path | None = None

    @classmethod
    def of(cls, search: str) -> ShimFacts:
        """Look along ``search`` (a PATH value)."""
        first = shutil.which("keyring", path=search)
        if first is None or not shim.is_shim(first):
            return cls(None)
        backing = shim.find_real_keyring(search, first)
        return cls(Path(first), Path(backing) if backing else None)


@dataclass(frozen=True)
class Facts:
    """Everything the checks look at, gathered by `gather`."""

    uid: int
    socket: Path
    socket_dir: PathFacts
    socket_file: PathFacts
    connection: Connection
    config_error: str | None = None
    key_file: Path | None = None
    key_error: str | None = None
    poetry: KeyringProbe = field(default_factory=lambda: KeyringProbe("poetry", "absent"))
    keyring_cli: KeyringProbe = field(default_factory=lambda: KeyringProbe("keyring", "absent"))
    pip: PipFacts = field(default_factory=lambda: PipFacts(None))
    auth: AuthFacts | None = None
    shim: ShimFacts = field(default_factory=lambda: ShimFacts(None))
    pipx: bool = False  # whether pipx is on PATH: fixes suggest it only then
    old_sockets: tuple[OldSocket, ...] = ()

    timeout_warning: str | None = None
    """What is wrong with HELPERD_TIMEOUT as a rung of the timeout ladder, if anything."""


def gather(
    env: Mapping[str, str] | None = None,
    *,
    socket: Path | None = None,
    timeout: float = 2.0,
    probe_timeout: float = PROBE_TIMEOUT,
) -> Facts:
    """Look at this setup: socket, daemon, settings, key file, Poetry and keyring, auth.toml.

    Reads only; every probe is bounded (``timeout`` for the daemon, ``probe_timeout`` for
    each interpreter, which run side by side).
    """
    env = dict(os.environ if env is None else env)
    path = socket or socket_path(env)
    search = env.get("PATH", os.defpath)
    with ThreadPoolExecutor(max_workers=3) as pool:
        poetry = pool.submit(_probe_tool, "poetry", search, env, probe_timeout)
        keyring_cli = pool.submit(_probe_tool, "keyring", search, env, probe_timeout)
        pip = pool.submit(pip_facts, search, env, probe_timeout)
        connection = _connect(path, timeout)
        config_error, key_file, key_error = _key_facts(env)
        auth = auth_facts(env)
        return Facts(
            uid=os.getuid(),
            socket=path,
            socket_dir=PathFacts.of(path.parent),
            socket_file=PathFacts.of(path),
            connection=connection,
            config_error=config_error,
            key_file=key_file,
            key_error=key_error,
            poetry=poetry.result(),
            keyring_cli=keyring_cli.result(),
            pip=pip.result(),
            auth=auth,
            shim=ShimFacts.of(search),
            pipx=shutil.which("pipx", path=search) is not None,
            old_sockets=old_sockets(env, path),
            timeout_warning=timeout_warning(env),
        )


_CONNECT_STATES: tuple[tuple[type[OSError], ConnectionState], ...] = (
    (FileNotFoundError, "missing"),
    (ConnectionRefusedError, "refused"),
    (PermissionError, "denied"),
    (TimeoutError, "timeout"),
    (OSError, "error"),
)


def _connect(path: Path, timeout: float) -> Connection:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        check_socket_folder(path)  # as every client does, before anything goes there
        probe.connect(str(path))
        check_peer(probe, path)
    except UntrustedSocketError as exc:
        return Connection("untrusted", exc.message)
    except OSError as exc:
        state = next(s for kind, s in _CONNECT_STATES if isinstance(exc, kind))
        detail = f"no connection within {timeout:g} s" if state == "timeout" else exc.strerror
        return Connection(state, detail or str(exc))
    finally:
        probe.close()
    try:
        with Client(path, timeout=timeout) as client:
            hello = client.hello()
            status = client.status()
            failing = failing_records(client, status)
            return Connection("ok", hello=hello, status=status, failing=failing)
    except HelperdError as exc:
        hung = "did not answer" in exc.message
        return Connection("timeout" if hung else "error", exc.message)


def _key_facts(env: Mapping[str, str]) -> tuple[str | None, Path | None, str | None]:
    from helperd.core.config import Settings  # noqa: PLC0415 - pydantic: only doctor needs it here
    from helperd.stores.keys import read_key_file  # noqa: PLC0415

    try:
        key_file = Settings.resolve(env=env).key_file
    except HelperdError as exc:
        return exc.message, None, None
    if key_file is None:
        return None, None, None
    try:
        read_key_file(key_file)  # the daemon's own rules; the bytes are dropped at once
    except HelperdError as exc:
        return None, key_file, exc.message
    return None, key_file, None


def auth_facts(env: Mapping[str, str]) -> AuthFacts:
    from helperd.integrations import poetry  # noqa: PLC0415 - tomlkit and pydantic: load on demand

    path = poetry.auth_toml_path(env)
    backups = _plaintext_backups(path)
    try:
        auth = poetry.read_auth(path)
        if auth is None:
            return AuthFacts(path, "absent", backups=backups)
        plan = poetry.plan_import(auth.text, {})
    except HelperdError as exc:
        return AuthFacts(path, "error", error=exc.message, backups=backups)
    return AuthFacts(path, "ok", secrets=len(plan.moves), left=len(plan.skips), backups=backups)


def _plaintext_backups(path: Path) -> tuple[tuple[Path, int | None], ...]:
    """The backups beside auth.toml that hold secrets import-poetry would move: they outlive
    an import that left them (it warns once, at that time)."""
    from helperd.integrations import auth_file, poetry  # noqa: PLC0415 - as in auth_facts

    found: list[tuple[Path, int | None]] = []
    for backup, data in auth_file.backups_beside(path, Path(os.path.realpath(path))):
        try:
            held: int | None = len(poetry.plan_import(data.decode("utf-8"), {}).moves)
        except (UnicodeDecodeError, HelperdError):
            held = None
        if held != 0:
            found.append((backup, held))
    return tuple(found)


def _probe_tool(tool: str, search: str, env: Mapping[str, str], limit: float) -> KeyringProbe:
    found = shutil.which(tool, path=search)
    if found is None:
        return KeyringProbe(tool, "absent")
    return probe_program(tool, Path(found), env, limit)


def probe_program(tool: str, program: Path, env: Mapping[str, str], limit: float) -> KeyringProbe:
    """Ask the Python behind ``program`` which keyring backend it picks (at most ``limit`` s)."""
    python = script_interpreter(program)
    if python is None:
        return KeyringProbe(tool, "no-python", program)
    run_env = {**env, "PYTHONDONTWRITEBYTECODE": "1"}  # doctor writes nothing, .pyc included
    try:
        process = subprocess.Popen(
            [str(python), "-c", _PROBE],
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # so that a hung D-Bus helper dies with it
        )
    except OSError as exc:
        return KeyringProbe(tool, "error", program, python, error=exc.strerror or str(exc))
    try:
        out, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return KeyringProbe(tool, "timeout", program, python, error=f"no answer within {limit:g} s")
    lines = [line for line in out.splitlines() if line.startswith(_PROBE_MARK)]
    if not lines:
        said = f"{python} exited with status {process.returncode} without an answer"
        return KeyringProbe(tool, "error", program, python, error=said)
    data = json.loads(lines[-1].removeprefix(_PROBE_MARK))
    return KeyringProbe(
        tool,
        "ok" if data.get("backend") else "error",
        program,
        python,
        plugin=bool(data.get("plugin")),
        backend=data.get("backend"),
        backend_class=data.get("backend_class"),
        error=data.get("error"),
    )


def pip_facts(search: str, env: Mapping[str, str], limit: float) -> PipFacts:
    pip = shutil.which("pip", path=search)
    if pip is None:
        return PipFacts(None)
    interpreter = script_interpreter(Path(pip))
    # pip's rule (pip/_internal/network/auth.py): when PATH's keyring starts with its Python's
    # scripts folder (a venv's bin, named as its #! line names it), it looks again on PATH
    # without that folder.
    scripts = interpreter.parent if interpreter is not None else Path(pip).parent
    first = shutil.which("keyring", path=search)
    chosen = first
    if first is not None and first.startswith(str(scripts)):
        rest = [p for p in search.split(os.pathsep) if p and not _same_dir(p, scripts)]
        chosen = shutil.which("keyring", path=os.pathsep.join(rest))
    probe = None
    if chosen is not None and chosen != first:
        probe = probe_program("keyring", Path(chosen), env, limit)
    return PipFacts(
        Path(pip),
        scripts,
        Path(first) if first else None,
        Path(chosen) if chosen else None,
        probe,
    )


def _same_dir(a: str, b: Path) -> bool:
    try:
        return Path(a).samefile(b)
    except OSError:
        return False
