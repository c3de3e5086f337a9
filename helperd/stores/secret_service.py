"""The Secret Service (GNOME Keyring, KWallet, KeePassXC on Linux), reached without prompts.

The calls go through ``secretstorage`` directly, with the item attributes and label that
keyring's own backend uses (`helperd.stores.secret_service_query`): keyring's backend unlocks
a locked collection on its own, which pops a prompt (or, headless, fails in a way that looks
like a missing password). Here a locked collection is a `LockedError`, and only
`SecretServiceCalls.unlock` asks for the unlock prompt. Every call here blocks; the caller
(`helperd.stores.os_keyring.BoundedKeyring`) runs it in a worker thread with a deadline.

The daemon keeps one D-Bus connection to the Secret Service, and its calls take turns on it
(a jeepney connection serves one thread at a time). gnome-keyring aborts (SIGABRT), or says for
a moment that the default collection or an item just written does not exist, when clients come
and go beside one replacing an item, as helperd's did with a connection per call. Measured, each
run 2,400 writes replacing items:
- helperd's own loop (four clients setting): 2 of 3 runs faulted with a connection per call,
  1 of 3 with those calls one at a time; none of 6 on the kept connection;
- secretstorage alone, beside two threads reading the collection's state: 5 of 6 runs faulted
  with a connection per call; none of 3 with a connection per thread, kept, all at once.
`unlock` alone opens a connection of its own: the unlock prompt answers with a signal to the
connection that asked, and the other calls go on while it waits for a person.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring.errors
from helperd_client.errors import LockedError, StoreUnavailableError
from keyring.backends import SecretService

from helperd.stores.secret_service_query import item_query, username_field

try:
    import secretstorage
    from jeepney import DBusErrorResponse
    from jeepney.bus_messages import message_bus
    from jeepney.io.blocking import DBusConnection, Proxy
    from secretstorage.collection import DEFAULT_COLLECTION, SERVICE_IFACE
    from secretstorage.defines import SS_PATH
    from secretstorage.util import PROMPT_IFACE, DBusAddressWrapper, exec_prompt, open_session
except ImportError:  # only Linux needs them; keyring does not install them elsewhere
    LOCKED_ERRORS: tuple[type[BaseException], ...] = (keyring.errors.KeyringLocked,)
else:
    LOCKED_ERRORS = (
        keyring.errors.KeyringLocked,
        secretstorage.LockedException,
        secretstorage.PromptDismissedException,
    )

__all__ = [
    "LOCKED_ERRORS",
    "LOCKED_MESSAGE",
    "SecretServiceCalls",
    "dbus_error_name",
    "seconds",
]

LOCKED_MESSAGE = (
    "the OS keyring collection is locked:"
    " run `helperctl unlock` or unlock it in your desktop session"
)

# What /proc/<pid>/comm of the org.freedesktop.secrets owner says, and who that is.
_PROVIDERS = (
    ("gnome-keyring", "GNOME Keyring"),
    ("kwalletd", "KWallet"),
    ("ksecretd", "KWallet"),
    ("keepassxc", "KeePassXC"),
)


def dbus_error_name(exc: BaseException) -> str | None:
    """The name of the D-Bus error ``exc`` carries ("org.freedesktop.DBus.Error..."), or None.

    Only a Secret Service call raises one, so only where secretstorage (and jeepney) imported.
    """
    if not isinstance(exc, DBusErrorResponse):
        return None
    return str(exc.name)


def seconds(value: float) -> str:
    """``value`` as messages write a number of seconds: "2", "0.5", "2.5"."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


_SESSION_IFACE = "org.freedesktop.Secret.Session"


class SecretServiceCalls:
    """keyring's Secret Service backend minus its unlock prompts, on one kept D-Bus connection."""

    def __init__(self, backend: SecretService.Keyring) -> None:
        self._backend = backend
        self._path = str(getattr(backend, "preferred_collection", "") or DEFAULT_COLLECTION)
        self._turn = threading.Lock()
        """Held by a call from its first message to its last: a connection is not shared."""
        self._state = threading.Lock()
        """Guards the fields below, never held across a call (`close` must not wait for one)."""
        self._connection: DBusConnection | None = None
        self._busy = False
        self._closed = False
        self._release: Callable[[], object] = lambda: None

    def close(self) -> None:
        """Close the kept connection now, or as the call still using it ends; none is kept after."""
        with self._state:
            self._closed = True
            if not self._busy:  # a stuck call may hold it for good: never wait for one
                self._drop()

    @contextlib.contextmanager
    def _connected(self) -> Iterator[DBusConnection]:
        """The kept connection, opened when there is none, for this call alone.

        An OSError (the bus closed the connection) drops it: the next call opens another.
        """
        with self._turn:
            with self._state:
                self._busy = True
                connection = self._connection
            try:
                if connection is None:
                    connection = secretstorage.dbus_init()
                    with self._state:
                        self._connection = connection
                        # Closed with this object even if nobody calls close(): else the
                        # socket would wait for the cycle collector and warn then.
                        self._release = weakref.finalize(self, connection.close)
                yield connection
            except OSError:
                with self._state:
                    self._drop()
                raise
            finally:
                with self._state:
                    self._busy = False
                    if self._closed:
                        self._drop()

    def _drop(self) -> None:
        """Close the kept connection (the caller holds ``_state``)."""
        if self._connection is not None:
            self._release()
            self._connection = None

    @contextlib.contextmanager
    def _collection(self, *, allow_locked: bool = False) -> Iterator[secretstorage.Collection]:
        """The collection, for this call alone; a session its secrets took is closed after."""
        with self._connected() as connection:
            collection = self._open(connection, allow_locked=allow_locked)
            try:
                yield collection
            finally:
                session = collection.session
                if session is not None and session.object_path:
                    with contextlib.suppress(Exception):
                        DBusAddressWrapper(session.object_path, _SESSION_IFACE, connection).call(
                            "Close", ""
                        )

    def _open(
        self, connection: DBusConnection, *, allow_locked: bool = False
    ) -> secretstorage.Collection:
        try:
            collection = secretstorage.Collection(connection, self._path)
        except secretstorage.ItemNotFoundException:
            # secretstorage would create it, with a prompt: tell the user instead.
            raise StoreUnavailableError(
                f"the Secret Service has no collection {self._path}: create a default keyring"
                " in your desktop session (for example with Seahorse) first"
            ) from None
        if not allow_locked and collection.is_locked():
            raise LockedError(LOCKED_MESSAGE)
        return collection

    @staticmethod
    def _secret(collection: secretstorage.Collection, item: secretstorage.Item) -> str:
        """The secret of ``item``, through the session of ``collection`` (opened if none)."""
        if collection.session is None:
            collection.session = open_session(collection.connection)
        item.session = collection.session
        return bytes(item.get_secret()).decode("utf-8")

    def _first(self, collection: secretstorage.Collection, query: dict[str, str]) -> Any:
        for item in collection.search_items(query):
            if item.is_locked():
                raise LockedError(LOCKED_MESSAGE)
            return item
        return None

    def get_password(self, service: str, username: str) -> str | None:
        with self._collection() as collection:
            item = self._first(collection, item_query(self._backend, service, username))
            return None if item is None else self._secret(collection, item)

    def get_credential(self, service: str, username: str | None) -> tuple[str, str] | None:
        field = username_field(self._backend)
        with self._collection() as collection:
            for item in collection.search_items(item_query(self._backend, service, username)):
                if item.is_locked():
                    raise LockedError(LOCKED_MESSAGE)
                found = item.get_attributes().get(field)
                if found is not None:  # a credential without a username is of no use to a client
                    return found, self._secret(collection, item)
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        attributes = item_query(self._backend, service, username, write=True)
        label = f"Password for '{username}' on '{service}'"
        with self._collection() as collection:
            collection.create_item(label, attributes, password.encode("utf-8"), replace=True)

    def delete_password(self, service: str, username: str) -> bool:
        with self._collection() as collection:
            item = self._first(collection, item_query(self._backend, service, username))
            if item is None:
                return False
            item.delete()
            return True

    def is_locked(self) -> bool:
        with self._collection(allow_locked=True) as collection:
            return collection.is_locked()

    def unlock(self, prompt_timeout: float) -> None:
        if not self.is_locked():
            return
        # A connection of its own: the prompt answers with a signal to the connection that
        # asked, and the calls on the kept one go on while a person is asked.
        with contextlib.closing(secretstorage.dbus_init()) as connection:
            collection = self._open(connection, allow_locked=True)
            service = DBusAddressWrapper(SS_PATH, SERVICE_IFACE, connection)
            _unlocked, prompt = service.call("Unlock", "ao", [self._path])
            if prompt != "/":
                try:
                    dismissed, _result = exec_prompt(connection, prompt, timeout=prompt_timeout)
                except TimeoutError:
                    # Take the dialog away again rather than leave it for someone to find.
                    with contextlib.suppress(Exception):
                        DBusAddressWrapper(prompt, PROMPT_IFACE, connection).call("Dismiss", "")
                    raise LockedError(
                        f"nobody answered the OS keyring's unlock prompt within"
                        f" {seconds(prompt_timeout)} s; the collection stays locked"
                    ) from None
                if dismissed:
                    raise LockedError(
                        "the OS keyring did not unlock: its unlock prompt was dismissed or could"
                        " not be shown (no desktop session here?); unlock the collection in your"
                        " desktop session"
                    )
            if collection.is_locked():
                raise LockedError(LOCKED_MESSAGE)

    def provider(self) -> str | None:
        """Who owns ``org.freedesktop.secrets`` (GNOME Keyring, KWallet...), when Linux says."""
        with self._connected() as connection:
            pid = Proxy(message_bus, connection).GetConnectionUnixProcessID(
                "org.freedesktop.secrets"
            )[0]
        try:
            comm = Path(f"/proc/{int(pid)}/comm").read_text().strip()
        except OSError:
            return None
        for prefix, provider in _PROVIDERS:
            if comm.startswith(prefix):
                return provider
        return comm or None
