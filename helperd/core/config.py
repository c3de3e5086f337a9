"""Settings, resolved once, in one place: flags win over HELPERD_* variables, which win over
config.toml, which wins over the defaults.

The socket path is the exception: it follows `helperd_client.paths.socket_path` (flag, else
the environment rule), and config.toml cannot change it, so that every client finds it
without reading a file.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
import shlex
import socket
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from helperd_client.errors import BadRequestError
from helperd_client.paths import data_folder, socket_path
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from helperd.core.ladder import KEYRING_CALL_TIMEOUT

__all__ = [
    "CONFIG_NAME",
    "IDLE_EXIT_ENV",
    "FileConfig",
    "Settings",
    "StoreChoice",
    "UpstreamFileConfig",
    "UpstreamSettings",
    "cert_folder",
    "idle_exit_seconds",
]

CONFIG_NAME = "config.toml"
IDLE_EXIT_ENV = "HELPERD_IDLE_EXIT"
"""The variable behind ``helperd --idle-exit``."""
StoreChoice = Literal["auto", "keyring", "file"]
LogLevel = Literal["debug", "info", "warning", "error"]


class FileConfig(BaseModel):
    """What config.toml may set. Unknown keys are refused, so a typo is never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: StoreChoice | None = None
    log_level: LogLevel | None = None
    key_file: Path | None = None
    idle_lock_seconds: float | None = Field(default=None, ge=0)
    """Lock a passphrase store after this many seconds without use; 0 never locks."""
    read_timeout: float | None = Field(default=None, gt=0)
    """Close a connection that sends no complete line for this many seconds."""
    max_connections: int | None = Field(default=None, ge=2, le=65_536)
    keyring_timeout: float | None = Field(default=None, gt=0)
    """Longest wait for one OS keyring call."""
    backlog: int | None = Field(default=None, ge=1, le=65_535)
    """The listen backlog: connections the kernel queues before the daemon accepts them."""
    upstream: UpstreamFileConfig | None = None
    """The ``[upstream]`` table: a secret engine (OpenBao, Vault) to read repositories from."""
    cert_files_on_disk: bool | None = None
    """Write client-certificate files even where the folder is not on a tmpfs."""


@dataclass(frozen=True)
class Settings:
    """Everything the daemon needs to start, already resolved."""

    socket_path: Path
    config_dir: Path
    data_dir: Path
    store: StoreChoice = "auto"
    log_level: LogLevel = "info"
    key_file: Path | None = None
    idle_lock: timedelta | None = timedelta(minutes=15)
    read_timeout: float = 30.0
    max_connections: int = 128
    keyring_timeout: float = KEYRING_CALL_TIMEOUT
    backlog: int = socket.SOMAXCONN
    upstream: UpstreamSettings | None = None
    cert_dir: Path | None = None
    """Where client-certificate files go (None: `cert_folder` of the environment)."""
    cert_files_on_disk: bool = False

    @property
    def config_file(self) -> Path:
        """Where config.toml is read from."""
        return self.config_dir / CONFIG_NAME

    @property
    def store_file(self) -> Path:
        """The encrypted file store."""
        return self.data_dir / "store.enc"

    @property
    def index_file(self) -> Path:
        """The keyring store's index of non-secret facts."""
        return self.data_dir / "keyring-index.json"

    @classmethod
    def resolve(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        socket: Path | None = None,
        store: StoreChoice | None = None,
        log_level: LogLevel | None = None,
    ) -> Settings:
        """Build the settings from flags (the arguments), the environment and config.toml.

        Raises:
            BadRequestError: config.toml or a HELPERD_* variable holds a value that is not valid.
        """
        env = os.environ if env is None else env
        home = env.get("HELPERD_HOME")
        if home:
            config_dir = data_dir = Path(home)
        else:
            config_dir = Path(platformdirs.user_config_dir("helperd", appauthor=False))
            data_dir = Path(data_folder(env))  # one rule with the clients that start a daemon
        file = _read_config(config_dir / CONFIG_NAME)
        defaults = cls(socket_path=Path(), config_dir=config_dir, data_dir=data_dir)

        env_store = env.get("HELPERD_STORE") or None
        if env_store not in (None, "auto", "keyring", "file"):
            raise BadRequestError(f"HELPERD_STORE must be auto, keyring or file, not {env_store!r}")
        if env.get(IDLE_EXIT_ENV):
            idle_exit_seconds(env[IDLE_EXIT_ENV])  # the daemon reads it; doctor checks it here
        key_file = env.get("HELPERD_KEY_FILE") or None
        idle = file.idle_lock_seconds
        return cls(
            socket_path=socket or socket_path(env),
            config_dir=config_dir,
            data_dir=data_dir,
            store=store or env_store or file.store or defaults.store,  # type: ignore[arg-type]
            log_level=log_level or file.log_level or defaults.log_level,
            key_file=Path(key_file) if key_file else file.key_file or _credential_key(env),
            idle_lock=defaults.idle_lock if idle is None else (timedelta(seconds=idle) or None),
            read_timeout=file.read_timeout or defaults.read_timeout,
            max_connections=file.max_connections or defaults.max_connections,
            keyring_timeout=file.keyring_timeout or defaults.keyring_timeout,
            backlog=file.backlog or defaults.backlog,
            upstream=_upstream_settings(file.upstream, env),
            cert_dir=cert_folder(env),
            cert_files_on_disk=bool(file.cert_files_on_disk),
        )


def idle_exit_seconds(value: str, source: str = IDLE_EXIT_ENV) -> float:
    """``value`` of ``--idle-exit`` or ``HELPERD_IDLE_EXIT`` in seconds, 0 or more.

    Raises:
        BadRequestError: it is not such a number; the message names ``source``.
    """
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:  # nan fails too
        raise BadRequestError(f"{source}={value!r} is not a number of seconds (0: never)")
    return seconds


def cert_folder(env: Mapping[str, str]) -> Path:
    """Where the daemon keeps client-certificate files: a runtime folder, usually a tmpfs.

    ``$XDG_RUNTIME_DIR/helperd/certs`` when that variable is set, else
    ``/dev/shm/helperd-<uid>/certs``; with ``HELPERD_HOME`` set, ``certs-<12 hex digits>``
    there instead, from a hash of that home's absolute path, so that daemons of one user with
    their own homes (a CI job each) never clear each other's files. The path depends on nothing
    else, so that it stays the same across restarts (tools keep it in their configuration).
    """
    runtime = env.get("XDG_RUNTIME_DIR")
    shm = Path("/dev/shm") / f"helperd-{os.getuid()}"  # noqa: S108 - a tmpfs, checked
    parent = Path(runtime) / "helperd" if runtime else shm
    home = env.get("HELPERD_HOME")
    if not home:
        return parent / "certs"
    digest = hashlib.sha256(os.fsencode(os.path.abspath(home))).hexdigest()[:12]
    return parent / f"certs-{digest}"


def _credential_key(env: Mapping[str, str]) -> Path | None:
    """``$CREDENTIALS_DIRECTORY/helperd.key``, the key systemd's ``LoadCredential=`` hands over."""
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / "helperd.key"
    return path if path.exists() else None


def _read_config(path: Path) -> FileConfig:
    try:
        data = tomllib.loads(_read_own(path).decode("utf-8"))
    except FileNotFoundError:
        return FileConfig()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadRequestError(f"cannot read {path}: {exc}") from None
    try:
        return FileConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            _problem(e) for e in exc.errors(include_input=False, include_url=False)
        )
        raise BadRequestError(f"{path}: {problems}") from None


def _problem(error: ErrorDetails) -> str:
    """One line of a refusal: where, and what is wrong; an unknown key names the nearest known
    one of its table, so that a typo reads as one."""
    where = ".".join(map(str, error["loc"]))
    if error["type"] != "extra_forbidden":
        return f"{where}: {error['msg']}"
    table = UpstreamFileConfig if error["loc"][:-1] == ("upstream",) else FileConfig
    known = sorted(table.model_fields)
    typed = str(error["loc"][-1])
    close = difflib.get_close_matches(typed, known, n=1) or [
        key for key in known if typed and (key.startswith(typed) or typed.startswith(key))
    ]
    hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(known)}"
    return f"{where}: unknown key ({hint})"


def _read_own(path: Path) -> bytes:
    """Read config.toml, refusing one that somebody else could have written.

    It can turn the idle lock off or name a key file, so it is trusted only as far as the
    store itself: owned by this user, not writable by group or others (checked on the open
    file, so it cannot be swapped in between).

    Raises:
        BadRequestError: another user owns it, or group or others can write it.
        OSError: it cannot be read (FileNotFoundError when there is none).
    """
    with path.open("rb") as handle:
        info = os.fstat(handle.fileno())
        quoted = shlex.quote(str(path))
        if info.st_uid != os.getuid():
            raise BadRequestError(
                f"{path} belongs to another user (uid {info.st_uid}), not to you"
                f" (uid {os.getuid()}): refusing to read it; run `chown {os.getuid()} {quoted}`"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o022:
            raise BadRequestError(
                f"{path} can be written by group or others (mode {mode:04o}): refusing to"
                f" read it; run `chmod go-w {quoted}`"
            )
        return handle.read()


# --- [upstream]: a secret engine (OpenBao, Vault) to read repositories from -------------------

_PATH_SEGMENTS = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")


class UpstreamFileConfig(BaseModel):
    """The ``[upstream]`` table of config.toml (docs/fleet.md). The names are fixed: scripts
    rely on them.

    Auth is a token file, or AppRole (both ``role_id_file`` and ``secret_id_file``). The
    three secret files may be relative to ``$CREDENTIALS_DIRECTORY`` (systemd's
    ``LoadCredential=``); ``ca_file`` must be absolute. Messages never quote a value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    mount: str = "secret"
    prefix: str = "helperd"
    token_file: Path | None = None
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    ca_file: Path | None = None
    namespace: str | None = None
    ttl_seconds: float = Field(default=300, gt=0)
    """Refresh the cached secrets this long after the last successful refresh."""
    max_stale_seconds: float = Field(default=86_400, ge=0)
    """Serve cached secrets this long after the last successful refresh, then refuse."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError("must be a URL such as https://bao.example.com:8200") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must not carry userinfo, a query or a fragment")
        if parts.path not in ("", "/"):
            raise ValueError("must not carry a path: give the engine's base URL")
        return value.rstrip("/")

    @field_validator("mount", "prefix")
    @classmethod
    def _segments(cls, value: str) -> str:
        value = value.strip("/")
        if not _PATH_SEGMENTS.fullmatch(value):
            raise ValueError("must be path segments of letters, digits, '.', '_' or '-'")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return cls._segments(value)

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @model_validator(mode="after")
    def _auth_and_bounds(self) -> UpstreamFileConfig:
        approle = (self.role_id_file, self.secret_id_file)
        if self.token_file is not None and any(p is not None for p in approle):
            raise ValueError("give token_file, or role_id_file and secret_id_file, not both")
        if self.token_file is None and None in approle:
            raise ValueError("give token_file, or both role_id_file and secret_id_file (AppRole)")
        if self.max_stale_seconds < self.ttl_seconds:
            raise ValueError("max_stale_seconds must be at least ttl_seconds")
        return self


@dataclass(frozen=True)
class UpstreamSettings:
    """The upstream secret engine, resolved: what the daemon's refresh needs.

    Attributes:
        address: the engine's base URL, without a trailing slash.
        mount: the KV version 2 mount, without slashes (``secret``).
        prefix: the folder under the mount whose secrets are repositories (``helperd``).
        token_file: the token's file (token auth); else AppRole with the two files below.
        role_id_file: AppRole's role_id.
        secret_id_file: AppRole's secret_id.
        ca_file: the CA bundle that signs the engine's certificate; None: the system's.
        namespace: the Vault Enterprise / OpenBao namespace; None: the root one.
        ttl: how long after a successful refresh the next one is due.
        max_stale: how long after the last successful refresh cached secrets are served.
    """

    address: str
    mount: str = "secret"
    prefix: str = "helperd"
    token_file: Path | None = None
    role_id_file: Path | None = None
    secret_id_file: Path | None = None
    ca_file: Path | None = None
    namespace: str | None = None
    ttl: timedelta = timedelta(seconds=300)
    max_stale: timedelta = timedelta(seconds=86_400)

    @property
    def auth(self) -> Literal["token", "approle"]:
        """How helperd logs in: ``token`` (a token file) or ``approle``."""
        return "token" if self.token_file is not None else "approle"


def _upstream_settings(
    table: UpstreamFileConfig | None, env: Mapping[str, str]
) -> UpstreamSettings | None:
    """The ``[upstream]`` table resolved: relative secret files go under
    ``$CREDENTIALS_DIRECTORY`` when it is set (else they stay relative, and the refresh says
    which variable is missing)."""
    if table is None:
        return None
    credentials = env.get("CREDENTIALS_DIRECTORY") or None

    def secret_file(path: Path | None) -> Path | None:
        if path is None or path.is_absolute() or credentials is None:
            return path
        return Path(credentials) / path

    return UpstreamSettings(
        address=table.address,
        mount=table.mount,
        prefix=table.prefix,
        token_file=secret_file(table.token_file),
        role_id_file=secret_file(table.role_id_file),
        secret_id_file=secret_file(table.secret_id_file),
        ca_file=table.ca_file,
        namespace=table.namespace,
        ttl=timedelta(seconds=table.ttl_seconds),
        max_stale=timedelta(seconds=table.max_stale_seconds),
    )


FileConfig.model_rebuild()  # its `upstream` field names the table defined above
