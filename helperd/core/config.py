"""Settings, resolved once, in one place: flags win over HELPERD_* variables, which win over
config.toml, which wins over the defaults.

The socket path is the exception: it follows `helperd_client.paths.socket_path` (flag, else
the environment rule), and config.toml cannot change it, so that every client finds it
without reading a file.
"""

from __future__ import annotations

import os
import shlex
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import platformdirs
from helperd_client.errors import BadRequestError
from helperd_client.paths import data_folder, socket_path
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["CONFIG_NAME", "FileConfig", "Settings", "StoreChoice", "cert_folder"]

CONFIG_NAME = "config.toml"
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
    keyring_timeout: float = 2.0
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
            cert_dir=cert_folder(env),
            cert_files_on_disk=bool(file.cert_files_on_disk),
        )


def cert_folder(env: Mapping[str, str]) -> Path:
    """Where the daemon keeps client-certificate files: a runtime folder, usually a tmpfs.

    ``$XDG_RUNTIME_DIR/helperd/certs`` when that variable is set, else
    ``/dev/shm/helperd-<uid>/certs``. The path depends on nothing else, so that it stays the
    same across restarts (tools keep it in their configuration).
    """
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "helperd" / "certs"
    return Path("/dev/shm") / f"helperd-{os.getuid()}" / "certs"  # noqa: S108 - a tmpfs, checked


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
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise BadRequestError(f"{path}: {problems}") from None


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
