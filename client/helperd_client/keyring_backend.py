"""helperd's `keyring` backend: Poetry, pip, uv and the ``keyring`` CLI ask helperd.

keyring discovers this module through the ``keyring.backends`` entry point. The backend is
viable only while the daemon's socket exists (a cheap check: ``priority`` never connects), and
then outranks every other backend, the chainer included, so that no other keyring, and no
Secret Service unlock prompt, is reached through a tool that has helperd.

It is a translator and nothing more: keyring's calls become requests to the daemon, which
owns every rule (what a service means, which record answers). It never crashes or hangs the
tool: a daemon that is down, stale, hung or locked makes reads answer None at once or within
the client's timeout, and after one timeout the backend rests for `REST_SECONDS` so that a
tool asking for every URL of a run does not wait again and again. Writes that fail raise
`keyring.errors.PasswordSetError`/`PasswordDeleteError` with the fix in the message.

Each backend instance keeps one `Client`, so a tool that asks many times (Poetry: several
lookups per source) pays for one connection, not one per call; the client serialises the
threads that share it and reconnects when the daemon has closed the connection meanwhile.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from keyring.backend import KeyringBackend
from keyring.credentials import SimpleCredential
from keyring.errors import PasswordDeleteError, PasswordSetError

from helperd_client.errors import (
    DaemonUnreachableError,
    HelperdError,
    LockedError,
    NotFoundError,
)
from helperd_client.paths import socket_path

if TYPE_CHECKING:
    from helperd_client.client import Client, Credential

__all__ = ["PRIORITY", "REST_SECONDS", "HelperdKeyring"]

log = logging.getLogger(__name__)

PRIORITY = 20
"""Above the chainer's 10 (and the OS keyrings' 5): used alone whenever it is viable."""

REST_SECONDS = 30.0
"""After a daemon fails to answer in time, reads answer None at once for this long."""

POETRY_CHECK = "python-poetry-check"  # Poetry's availability probe: answer None at once
EMPTY_USERNAME = "__poetry_source_empty_username__"  # Poetry's "no username configured"
POETRY_PREFIX = "poetry-repository-"

LOCKED_HINT = (
    "helperd: the credential store is locked, so no password was handed out;"
    " `helperctl unlock` opens it"
)

T = TypeVar("T")


class _ClassProperty:
    """A read-only class attribute computed on access (keyring reads ``cls.priority``)."""

    def __init__(self, fget: Callable[[type[Any]], float]) -> None:
        self._fget = fget

    def __get__(self, instance: object, owner: type[Any]) -> float:
        return self._fget(owner)


def _priority(cls: type[Any]) -> float:
    path = socket_path()
    if not path.exists():
        raise RuntimeError(f"helperd is not running (no socket at {path})")
    return PRIORITY


class HelperdKeyring(KeyringBackend):
    """Credentials from the helperd daemon."""

    priority = _ClassProperty(_priority)

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._mutex = threading.Lock()
        self._rest_until = 0.0
        self._told_locked = False
        self._told_down = False
        self._connection: Client | None = None

    # --- reads: never raise, never wait twice ---------------------------------------------

    def get_password(self, service: str, username: str) -> str | None:
        """The password stored for (``service``, ``username``), or None."""
        found = self._lookup(service, username)
        return None if found is None else found.password

    def get_credential(self, service: str, username: str | None) -> SimpleCredential | None:
        """The credential for ``service``, with the stored username when none is given."""
        found = self._lookup(service, username)
        return None if found is None else SimpleCredential(found.username, found.password)

    def _lookup(self, service: str, username: str | None) -> Credential | None:
        if service == POETRY_CHECK or self._resting():
            return None
        if username == EMPTY_USERNAME:
            username = ""  # only a record stored without a username answers it
        try:
            return self._client().get(service=service, username=username)
        except NotFoundError:
            return None
        except LockedError:
            self._tell_locked()
        except DaemonUnreachableError as exc:
            self._rest(exc)
        except HelperdError as exc:
            log.debug("helperd could not answer: %s", exc.message)
        return None

    def _client(self) -> Client:
        """This backend's client, made on first use (its module loads then, not at import),
        and made again when the socket path has changed (``HELPERD_HOME`` set meanwhile)."""
        path = socket_path()
        with self._mutex:
            client = self._connection
            if client is None or client.path != path:
                from helperd_client.client import Client  # noqa: PLC0415

                if client is not None:
                    client.close()
                client = self._connection = Client(path)
            return client

    def _resting(self) -> bool:
        with self._mutex:
            return time.monotonic() < self._rest_until

    def _rest(self, exc: DaemonUnreachableError) -> None:
        # Tools such as Poetry hide logging: say it once on stderr, as for a locked store.
        with self._mutex:
            self._rest_until = time.monotonic() + REST_SECONDS
            told, self._told_down = self._told_down, True
        if not told:
            print(exc.message, file=sys.stderr)  # each message names helperd

    def _tell_locked(self) -> None:
        with self._mutex:
            told, self._told_locked = self._told_locked, True
        if not told:
            print(LOCKED_HINT, file=sys.stderr)

    # --- writes: fail loudly, with the fix ------------------------------------------------

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store the password in helperd (``poetry config http-basic.NAME`` lands here)."""
        urls = _poetry_urls(service)
        try:
            self._client().set(None, password, service=service, username=username, urls=urls)
        except HelperdError as exc:
            raise PasswordSetError(f"helperd could not store the password: {exc.message}") from None

    def delete_password(self, service: str, username: str) -> None:
        """Delete the password from helperd (``poetry config --unset`` lands here)."""
        try:
            self._client().delete(None, username, service=service)
        except NotFoundError:
            raise PasswordDeleteError(f"helperd holds no password for {service!r}") from None
        except HelperdError as exc:
            raise PasswordDeleteError(
                f"helperd could not delete the password: {exc.message}"
            ) from None


def _poetry_urls(service: str) -> list[str] | None:
    """The URL Poetry's config.toml gives repository NAME, for ``poetry-repository-NAME``."""
    if not service.startswith(POETRY_PREFIX):
        return None
    import tomllib  # noqa: PLC0415 - only writes need it; keep imports light for every tool

    directory = os.environ.get("POETRY_CONFIG_DIR")
    if directory:
        config = os.path.join(directory, "config.toml")
    else:
        import platformdirs  # noqa: PLC0415

        base = platformdirs.user_config_path("pypoetry", appauthor=False, roaming=True)
        config = str(base / "config.toml")
    try:
        with open(config, "rb") as handle:
            url = tomllib.load(handle)["repositories"][service[len(POETRY_PREFIX) :]]["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [url] if isinstance(url, str) else None
