"""The OS keyring, reached safely: a backend chosen by hand, every call bounded in time, no prompts.

helperd never goes through ``keyring.get_keyring()``: once helperd's own plugin is installed,
that would call the daemon from inside the daemon. `pick_backend` chooses among the real OS
backends instead, `BoundedKeyring` runs each call in a worker thread with a deadline, and
`probe` is the one test of whether a keyring answers (the store choice uses it).

The Secret Service is reached without keyring's backend, which pops unlock prompts: see
`helperd.stores.secret_service`. Only `BoundedKeyring.unlock` asks for the unlock prompt.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, cast

import keyring.backend
import keyring.errors
from helperd_client.errors import HelperdError, LockedError, StoreUnavailableError
from keyring.backend import KeyringBackend
from keyring.backends import SecretService
from pydantic import SecretStr

from helperd.stores.secret_service import (
    LOCKED_ERRORS,
    LOCKED_MESSAGE,
    SecretServiceCalls,
    dbus_error_name,
    seconds,
)

__all__ = ["BoundedKeyring", "pick_backend", "probe"]

T = TypeVar("T")

PROBE_SERVICE = "helperd-probe"
"""The service `probe` reads: nobody stores anything there."""

# Only keyring's own OS backends may hold helperd's secrets. Everything else is left out:
# helperd's own plugin (it would call the daemon), keyring's chainer (it may reach that
# plugin), the placeholders, keyrings.alt's files, and third-party backends such as
# keyrings.cryptfile, which prompts on the terminal for its passphrase.
_OS_MODULES = (
    "keyring.backends.SecretService",
    "keyring.backends.libsecret",
    "keyring.backends.kwallet",
    "keyring.backends.macOS",
    "keyring.backends.Windows",
)

_LABELS = {
    "keyring.backends.SecretService": "Secret Service",
    "keyring.backends.libsecret": "Secret Service (libsecret)",
    "keyring.backends.kwallet": "KWallet",
    "keyring.backends.macOS": "macOS Keychain",
    "keyring.backends.Windows": "Windows Credential Locker",
}


def _excluded(backend: KeyringBackend) -> bool:
    module = type(backend).__module__
    if not any(module == name or module.startswith(name + ".") for name in _OS_MODULES):
        return True
    return "plaintext" in f"{module} {type(backend).__name__} {backend.name}".lower()


def pick_backend(backends: Iterable[KeyringBackend] | None = None) -> KeyringBackend | None:
    """Choose the OS keyring backend helperd keeps secrets in, or None when there is none.

    Never the configured backend (``keyring.get_keyring()``): that may be helperd's own plugin.
    Among ``backends`` (default: every backend keyring can build in this process, a list keyring
    computes once per process), only keyring's own OS backends count (Secret Service, libsecret,
    KWallet, macOS Keychain, Windows Credential Locker) with a priority above 0; the highest
    wins. helperd's plugin, chainers, ``fail``, ``null`` and third-party backends never do.
    """
    candidates = keyring.backend.get_all_keyring() if backends is None else list(backends)
    best: KeyringBackend | None = None
    best_priority = 0.0
    for backend in candidates:
        if _excluded(backend):
            continue
        try:
            priority = float(backend.priority)
        except Exception:  # noqa: S112 - a backend says "not viable" by raising from priority
            continue
        if priority > best_priority:
            best, best_priority = backend, priority
    return best


def _label(backend: KeyringBackend) -> str:
    return _LABELS.get(type(backend).__module__, str(backend.name))


def _reason(exc: BaseException, secret: str | None) -> str:
    """A short text for ``exc`` that is known not to contain ``secret``."""
    text = " ".join(str(exc).split())[:200]
    if not text or (secret and secret in text):
        return type(exc).__name__
    return text


class _Call(Generic[T]):
    """One keyring call handed to a worker thread."""

    def __init__(self, function: Callable[[], T]) -> None:
        self.function = function
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None
        self.abandoned = False


class BoundedKeyring:
    """An OS keyring backend whose every call returns within a deadline.

    Each call runs in a daemon worker thread; the caller waits ``timeout`` seconds at most. A
    call still running past its deadline is "stuck": it keeps its thread until the keyring
    answers. Once ``max_stuck`` calls are stuck, new calls are refused at once, so a hung
    keyring cannot pile up threads without limit.

    Calls take turns, in their worker threads, and one whose caller gave up while it waited for
    its turn is dropped: after a hung keyring comes back, a write that was refused can never land
    after a newer one that was acknowledged. `unlock` takes no turn, as its prompt waits for a
    person.

    Args:
        backend: a backend from `pick_backend` (never helperd's own plugin).
        timeout: seconds one call may take.
        max_stuck: how many calls may be stuck before new ones are refused.
        unlock_timeout: seconds `unlock` waits for someone to answer the unlock prompt.
    """

    def __init__(
        self,
        backend: KeyringBackend,
        *,
        timeout: float = 2.0,
        max_stuck: int = 4,
        unlock_timeout: float = 20.0,
    ) -> None:
        self.backend = backend
        self.timeout = timeout
        self.max_stuck = max_stuck
        self.unlock_timeout = unlock_timeout
        self.name = _label(backend)
        """What messages call this keyring: "Secret Service", "macOS Keychain"..."""
        self._secret_service = (
            SecretServiceCalls(backend) if isinstance(backend, SecretService.Keyring) else None
        )
        self._guard = threading.Lock()
        self._stuck = 0
        self._turn = threading.Lock()

    @property
    def stuck(self) -> int:
        """How many calls are still running past their deadline."""
        with self._guard:
            return self._stuck

    def get_password(self, service: str, username: str) -> SecretStr | None:
        """The password stored for (``service``, ``username``), or None."""
        calls = self._secret_service
        read = calls.get_password if calls is not None else self.backend.get_password
        found = self._run("read an entry", lambda: read(service, username))
        return None if found is None else SecretStr(found)

    def get_credential(self, service: str, username: str | None) -> tuple[str, SecretStr] | None:
        """The first (username, password) stored for ``service`` (and ``username`` if given)."""
        calls = self._secret_service
        read = calls.get_credential if calls is not None else self._backend_credential
        found = self._run("read an entry", lambda: read(service, username))
        return None if found is None else (found[0], SecretStr(found[1]))

    def _backend_credential(self, service: str, username: str | None) -> tuple[str, str] | None:
        credential = self.backend.get_credential(service, username)
        if credential is None or credential.username is None or credential.password is None:
            return None
        return str(credential.username), str(credential.password)

    def set_password(self, service: str, username: str, password: SecretStr) -> None:
        """Store ``password`` for (``service``, ``username``), replacing any earlier one."""
        secret = password.get_secret_value()
        calls = self._secret_service
        write = calls.set_password if calls is not None else self.backend.set_password
        self._run("write an entry", lambda: write(service, username, secret), secret=secret)

    def delete_password(self, service: str, username: str) -> bool:
        """Delete the password of (``service``, ``username``); False when there was none."""
        calls = self._secret_service
        delete = calls.delete_password if calls is not None else self._backend_delete
        return self._run("delete an entry", lambda: delete(service, username))

    def _backend_delete(self, service: str, username: str) -> bool:
        try:
            self.backend.delete_password(service, username)
        except keyring.errors.PasswordDeleteError:
            return False  # keyring's backends say "not found" this way
        return True

    def is_locked(self) -> bool | None:
        """Whether the collection is locked; None when the backend cannot tell."""
        if self._secret_service is None:
            return None
        calls = self._secret_service
        return self._run("say whether it is locked", calls.is_locked)

    def unlock(self, timeout: float | None = None) -> None:
        """Ask the OS keyring to unlock its collection: the one call that may show a prompt.

        Waits ``timeout`` seconds (default ``unlock_timeout``) for someone to answer it.

        Raises:
            LockedError: the prompt was dismissed, could not be shown (no desktop session),
                or nobody answered in time.
            StoreUnavailableError: the keyring did not answer at all.
        """
        if self._secret_service is None:
            return  # other backends unlock (and prompt) by themselves when read
        calls = self._secret_service
        wait = self.unlock_timeout if timeout is None else timeout
        self._run(
            "unlock its collection",
            lambda: calls.unlock(wait),
            timeout=wait + self.timeout,
            take_turn=False,
        )

    def close(self) -> None:
        """Let go of the connection to the OS keyring, if one is kept (the Secret Service's)."""
        if self._secret_service is not None:
            self._secret_service.close()

    def describe(self) -> str:
        """The keyring's name, with the Secret Service provider when known; never raises."""
        if self._secret_service is None:
            return self.name
        try:
            provider = self._run("name its provider", self._secret_service.provider)
        except HelperdError:
            return self.name
        return self.name if provider is None else f"{self.name} ({provider})"

    def _run(
        self,
        what: str,
        function: Callable[[], T],
        *,
        timeout: float | None = None,
        secret: str | None = None,
        take_turn: bool = True,
    ) -> T:
        limit = self.timeout if timeout is None else timeout
        with self._guard:
            if self._stuck >= self.max_stuck:
                raise StoreUnavailableError(
                    f"the OS keyring ({self.name}) is hung: {self._stuck} earlier calls are still"
                    " waiting for an answer, so helperd refuses new ones until they return"
                    " (restart the keyring daemon, or use the file store)"
                )
        call = _Call(function)
        worker = threading.Thread(
            target=self._work, args=(call, take_turn), name="helperd-keyring", daemon=True
        )
        try:
            worker.start()
        except RuntimeError:  # no thread to be had: out of memory or a process limit
            raise StoreUnavailableError(
                f"the OS keyring ({self.name}) could not be asked: no worker thread could start"
            ) from None
        if not call.done.wait(limit):
            with self._guard:
                if not call.done.is_set():
                    call.abandoned = True
                    self._stuck += 1
                    raise StoreUnavailableError(
                        f"the OS keyring ({self.name}) did not answer within {seconds(limit)} s"
                        f" (asked to {what}); it may be hung or waiting for a prompt"
                    )
        if call.error is not None:
            raise self._translate(call.error, what, secret) from None
        return cast("T", call.value)

    def _work(self, call: _Call[Any], take_turn: bool) -> None:
        try:
            with self._turn if take_turn else contextlib.nullcontext():
                with self._guard:
                    given_up = call.abandoned
                if not given_up:
                    call.value = call.function()
        except BaseException as exc:  # handed to the caller's thread
            call.error = exc
        finally:
            with self._guard:
                call.done.set()
                if call.abandoned:
                    self._stuck -= 1

    def _translate(self, exc: BaseException, what: str, secret: str | None) -> HelperdError:
        """Map a backend or D-Bus error to helperd's errors, never quoting the secret."""
        if isinstance(exc, HelperdError):
            return exc
        if isinstance(exc, LOCKED_ERRORS):
            return LockedError(LOCKED_MESSAGE)
        dbus_error = dbus_error_name(exc) if self._secret_service is not None else None
        if dbus_error is not None:
            detail = f"refused to {what}: D-Bus error {dbus_error}"
        elif type(exc).__name__ == "SecretServiceNotAvailableException":
            detail = f"is not available: {_reason(exc, secret)}"
        elif isinstance(exc, UnicodeDecodeError):
            detail = "holds an entry that is not UTF-8 text"
        elif isinstance(exc, OSError):
            detail = f"could not be reached: {exc.strerror or type(exc).__name__}"
        else:
            detail = f"failed to {what}: {_reason(exc, secret)}"
        return StoreUnavailableError(f"the OS keyring ({self.name}) {detail}")


def probe(keyring: BoundedKeyring) -> tuple[bool, str]:
    """Whether ``keyring`` answers a harmless read within its deadline, and a verdict saying so.

    The one probe of an OS keyring: the store choice (helperd.stores.choice) and the tests use
    it alike. A locked collection answers: it is usable, and the keyring store reports
    ``locked`` until ``helperctl unlock`` (or the desktop session) opens it.

    Returns:
        (usable, verdict): verdict is a sentence for ``status``'s ``store_reason``, such as
        "Secret Service (GNOME Keyring) answered", "Secret Service (GNOME Keyring) is locked
        (`helperctl unlock` opens it)" or, when not usable, the error that says why.
    """
    try:
        keyring.get_password(PROBE_SERVICE, "probe")
    except LockedError:
        return True, f"{keyring.describe()} is locked (`helperctl unlock` opens it)"
    except StoreUnavailableError as exc:
        return False, exc.message
    return True, f"{keyring.describe()} answered"
