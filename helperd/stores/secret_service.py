"""The Secret Service (GNOME Keyring, KWallet, KeePassXC on Linux), reached without prompts.

The calls go through ``secretstorage`` directly, with the item attributes and label that
keyring's own backend uses (`helperd.stores.secret_service_query`): keyring's backend unlocks
a locked collection on its own, which pops a prompt (or, headless, fails in a way that looks
like a missing password). Here a locked collection is a `LockedError`, and only
`SecretServiceCalls.unlock` asks for the unlock prompt. Every call here blocks; the caller
(`helperd.stores.os_keyring.BoundedKeyring`) runs it in a worker thread with a deadline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
    from jeepney.io.blocking import Proxy
    from secretstorage.collection import DEFAULT_COLLECTION, SERVICE_IFACE
    from secretstorage.defines import SS_PATH
    from secretstorage.util import PROMPT_IFACE, DBusAddressWrapper, exec_prompt
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


class SecretServiceCalls:
    """keyring's Secret Service backend minus its unlock prompts; one D-Bus connection per call."""

    def __init__(self, backend: SecretService.Keyring) -> None:
        self._backend = backend
        self._path = str(getattr(backend, "preferred_collection", "") or DEFAULT_COLLECTION)

    @contextlib.contextmanager
    def _collection(self, *, allow_locked: bool = False) -> Iterator[secretstorage.Collection]:
        connection = secretstorage.dbus_init()
        try:
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
            yield collection
        finally:
            connection.close()

    def _first(self, collection: secretstorage.Collection, query: dict[str, str]) -> Any:
        for item in collection.search_items(query):
            if item.is_locked():
                raise LockedError(LOCKED_MESSAGE)
            return item
        return None

    def get_password(self, service: str, username: str) -> str | None:
        with self._collection() as collection:
            item = self._first(collection, item_query(self._backend, service, username))
            return None if item is None else bytes(item.get_secret()).decode("utf-8")

    def get_credential(self, service: str, username: str | None) -> tuple[str, str] | None:
        field = username_field(self._backend)
        with self._collection() as collection:
            for item in collection.search_items(item_query(self._backend, service, username)):
                if item.is_locked():
                    raise LockedError(LOCKED_MESSAGE)
                found = item.get_attributes().get(field)
                if found is not None:  # a credential without a username is of no use to a client
                    return found, bytes(item.get_secret()).decode("utf-8")
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
        with self._collection(allow_locked=True) as collection:
            if not collection.is_locked():
                return
            service = DBusAddressWrapper(SS_PATH, SERVICE_IFACE, collection.connection)
            _unlocked, prompt = service.call("Unlock", "ao", [self._path])
            if prompt != "/":
                try:
                    dismissed, _result = exec_prompt(
                        collection.connection, prompt, timeout=prompt_timeout
                    )
                except TimeoutError:
                    # Take the dialog away again rather than leave it for someone to find.
                    with contextlib.suppress(Exception):
                        DBusAddressWrapper(prompt, PROMPT_IFACE, collection.connection).call(
                            "Dismiss", ""
                        )
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
        with contextlib.closing(secretstorage.dbus_init()) as connection:
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
