"""helperd's `keyring` backend: Poetry, pip, uv and the ``keyring`` CLI ask helperd.

keyring discovers this module through the ``keyring.backends`` entry point. The backend is
always viable (``priority`` never connects and never raises) and outranks every other backend,
the chainer included, so that no other keyring, no Secret Service unlock prompt, and no
plaintext fallback is reached through a tool that has helperd.

It is a translator and nothing more: keyring's calls become requests to the daemon, which
owns every rule (what a service means, which record answers). When nothing listens on the
socket, a daemon is started on demand (`helperd_client.autostart`; ``HELPERD_AUTOSTART=0``
turns it off) and asked again. It never crashes or hangs the tool: a daemon that is down,
stale, hung or locked makes reads answer None at once or within the client's timeout, and
after one failure to reach or start a daemon the backend rests for `REST_SECONDS` so that a
tool asking for every URL of a run does not wait again and again. Writes that fail raise
`keyring.errors.PasswordSetError`/`PasswordDeleteError` with the fix in the message. A socket
whose folder or listener is not the user's own (`helperd_client.trust`) makes reads raise
`keyring.errors.KeyringError` and writes `PasswordSetError`, never a quiet answer.

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
from keyring.errors import KeyringError, PasswordDeleteError, PasswordSetError

from helperd_client.errors import (
    DaemonNotRunningError,
    DaemonUnreachableError,
    HelperdError,
    LockedError,
    NotFoundError,
    StoreUnavailableError,
    UntrustedSocketError,
)
from helperd_client.names import LOCKED_HINT, POETRY_CHECK, POETRY_PREFIX, keyring_username
from helperd_client.paths import socket_path

if TYPE_CHECKING:
    from helperd_client.client import Client, Credential

__all__ = ["PRIORITY", "REST_SECONDS", "HelperdKeyring"]

log = logging.getLogger(__name__)

PRIORITY = 20
"""Above the chainer's 10 (and the OS keyrings' 5): used alone whenever it is viable."""

REST_SECONDS = 30.0
"""After a daemon fails to answer in time, reads answer None at once for this long."""

T = TypeVar("T")


class _ClassProperty:
    """A read-only class attribute computed on access (keyring reads ``cls.priority``)."""

    def __init__(self, fget: Callable[[type[Any]], float]) -> None:
        self._fget = fget

    def __get__(self, instance: object, owner: type[Any]) -> float:
        return self._fget(owner)


def _priority(cls: type[Any]) -> float:
    # Always viable, never raising (also when named in PYTHON_KEYRING_BACKEND), and never
    # connecting: a plugin that stepped aside while the daemon was down let Poetry fall back
    # to its plaintext auth.toml. A missing daemon is started on demand instead, and an
    # untrusted socket makes every call fail loudly.
    return PRIORITY


class HelperdKeyring(KeyringBackend):
    """Credentials from the helperd daemon."""

    priority = _ClassProperty(_priority)

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._mutex = threading.Lock()
        self._starting = threading.Lock()
        self._rest_until = 0.0
        self._told_locked = False
        self._told_down = False
        self._told_unavailable = False
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
        asked = keyring_username(username)
        try:
            return self._call(lambda client: client.get(service=service, username=asked))
        except NotFoundError:
            return None
        except UntrustedSocketError as exc:
            raise KeyringError(exc.message) from None  # loud: never a quiet None from an impostor
        except LockedError:
            self._tell_locked()
        except DaemonUnreachableError as exc:
            self._rest(exc)
        except StoreUnavailableError as exc:
            self._tell_unavailable(exc)
        except HelperdError as exc:
            log.debug("helperd could not answer: %s", exc.message)
        return None

    def _call(self, ask: Callable[[Client], T]) -> T:
        """``ask(client)``; when nothing listens, a daemon is started on demand and asked again.

        Raises:
            HelperdError: the daemon's answer, or why none could be had.
        """
        client = self._client()
        try:
            return ask(client)
        except DaemonNotRunningError:
            pass
        with self._starting:  # threads of one tool start one daemon, not one each
            try:
                result = ask(client)  # another thread may have started it meanwhile
            except DaemonNotRunningError:
                # Loaded here, as the client is: every tool imports the plugin at start-up.
                from helperd_client.autostart import start_daemon  # noqa: PLC0415

                start_daemon(str(client.path), client.timeout)
                result = ask(client)
        with self._mutex:
            self._rest_until = 0.0  # a daemon answers again
        return result

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

    def _tell_unavailable(self, exc: StoreUnavailableError) -> None:
        # What holds the secret did not answer (an upstream engine past max_stale, a hung OS
        # keyring): the tool's own error would only say 401, so say why once on stderr.
        with self._mutex:
            told, self._told_unavailable = self._told_unavailable, True
        if not told:
            print(f"helperd: {exc.message}", file=sys.stderr)

    def _tell_locked(self) -> None:
        with self._mutex:
            told, self._told_locked = self._told_locked, True
        if not told:
            print(LOCKED_HINT, file=sys.stderr)

    # --- writes: fail loudly, with the fix ------------------------------------------------

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store the password in helperd (``poetry config http-basic.NAME`` lands here).

        Raises:
            PasswordSetError: helperd could not take it (not running and not startable, locked,
                untrusted socket); the message says why and what to do. The tool stops there,
                never writing the password elsewhere.
        """

        def store(client: Client) -> object:
            urls = _merged_urls(client, service, username)
            return client.set(None, password, service=service, username=username, urls=urls)

        try:
            self._call(store)
        except HelperdError as exc:
            raise PasswordSetError(f"helperd could not store the password: {exc.message}") from None

    def delete_password(self, service: str, username: str) -> None:
        """Delete the password from helperd (``poetry config --unset`` lands here)."""
        try:
            self._call(lambda client: client.delete(None, username, service=service))
        except NotFoundError:
            raise PasswordDeleteError(f"helperd holds no password for {service!r}") from None
        except HelperdError as exc:
            raise PasswordDeleteError(
                f"helperd could not delete the password: {exc.message}"
            ) from None


def _merged_urls(client: Client, service: str, username: str) -> list[str] | None:
    """The URLs to store for a Poetry write: the record's own, then config.toml's new one.

    A record may hold an index URL and an upload URL; ``poetry config http-basic.NAME`` must
    not drop either for the one URL config.toml gives NAME. None (keep the record's URLs) for
    every other service, and when config.toml names no URL.
    """
    new = _poetry_urls(service)
    if new is None:
        return None
    name = service[len(POETRY_PREFIX) :]
    # `list` carries no secret, unlike `get`.
    kept = [u for r in client.list() if (r.name, r.username) == (name, username) for u in r.urls]
    return kept + [u for u in new if u not in kept]


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
