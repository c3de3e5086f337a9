"""A real, private Secret Service for tests: gnome-keyring on a D-Bus session bus of its own.

``SecretService`` starts ``dbus-daemon`` with a minimal configuration (one Unix socket in a
temporary folder, no service activation, so nothing else is ever started behind our back) and
``gnome-keyring-daemon --foreground --unlock --components=secrets`` with the login password on
stdin. gnome-keyring gets private ``XDG_DATA_HOME``, ``XDG_RUNTIME_DIR``, ``XDG_CONFIG_HOME``
and ``HOME`` (else it would reuse the user's keyrings and an earlier run's items) and no
``DISPLAY``/``WAYLAND_DISPLAY``, so an unlock prompt fails at once instead of waiting.

Use it as a context manager; teardown stops exactly the two processes it started, by PID,
even when the test (or the start-up itself) failed::

    with SecretService() as service:
        service.apply(monkeypatch)            # in-process: keyring, secretstorage
        subprocess.run(cmd, env=service.environ())  # subprocesses

When gnome-keyring or its bus exits by itself (a crash in the middle of a test: seen twice in
full runs as "Message recipient disconnected" and "no collection"), `unexpected_exits` says so
with the exit status and the tail of its log; tests/conftest.py adds that to the report of a
failed test, so the cause can be read where the failure is.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

import pytest
import secretstorage
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, Proxy, open_dbus_connection
from secretstorage.util import DBusAddressWrapper, format_secret, open_session

from tests.support.tools import require_tool

__all__ = ["SecretService", "unexpected_exits"]

BUS_NAME = "org.freedesktop.secrets"
LOGIN_COLLECTION = "/org/freedesktop/secrets/collection/login"
DEFAULT_COLLECTION = "/org/freedesktop/secrets/aliases/default"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SecretService:
    """A private dbus-daemon and gnome-keyring, started by `start` and stopped by `stop`.

    Attributes:
        root: the temporary folder holding the bus socket, gnome-keyring's folders and logs.
        address: the bus address (``unix:path=...``) once started.
        password: the login keyring's password (fed to gnome-keyring on stdin).
    """

    UNSET: tuple[str, ...] = ("DISPLAY", "WAYLAND_DISPLAY")
    """Variables that must not reach a client (a display would make prompts wait)."""

    def __init__(
        self,
        *,
        password: str = "helperd-test-login",
        start_timeout: float = 15.0,
    ) -> None:
        self.password = password
        self.start_timeout = start_timeout
        self.root = Path()
        self.address = ""
        self.paused = False
        self._bus: subprocess.Popen[bytes] | None = None
        self._keyring: subprocess.Popen[bytes] | None = None
        self._told = False

    # -- environment ---------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The variables a client needs to reach this Secret Service."""
        return {"DBUS_SESSION_BUS_ADDRESS": self.address}

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A full environment for a subprocess: ``base`` (default os.environ) pointed here."""
        result = dict(os.environ if base is None else base)
        for name in self.UNSET:
            result.pop(name, None)
        result.update(self.env)
        return result

    def apply(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process at the Secret Service for the test's duration.

        keyring's SecretService backend and secretstorage read ``DBUS_SESSION_BUS_ADDRESS``
        each time they connect, so setting it in os.environ is enough.
        """
        for name in self.UNSET:
            monkeypatch.delenv(name, raising=False)
        for name, value in self.env.items():
            monkeypatch.setenv(name, value)

    @property
    def keyring_pid(self) -> int:
        """The PID of the gnome-keyring-daemon this harness started."""
        assert self._keyring is not None, "not started"
        return self._keyring.pid

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> SecretService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the bus and gnome-keyring, and wait until the login collection is unlocked."""
        dbus_daemon = require_tool("dbus-daemon")
        gnome_keyring = require_tool("gnome-keyring-daemon")
        self.root = Path(tempfile.mkdtemp(dir="/tmp", prefix="hd"))
        _live.add(self)
        try:
            self._start(dbus_daemon, gnome_keyring)
        except BaseException:
            self.stop()
            raise

    def _start(self, dbus_daemon: str, gnome_keyring: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        folders = {name: self.root / name for name in ("run", "data", "config", "cache", "home")}
        for folder in folders.values():
            folder.mkdir(mode=0o700)
        config = self.root / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=self.root / "bus"))
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folders["home"]),
            "XDG_RUNTIME_DIR": str(folders["run"]),
            "XDG_DATA_HOME": str(folders["data"]),
            "XDG_CONFIG_HOME": str(folders["config"]),
            "XDG_CACHE_HOME": str(folders["cache"]),
            "LANG": "C.UTF-8",
        }
        with (self.root / "bus.log").open("wb") as log:
            self._bus = subprocess.Popen(
                [dbus_daemon, f"--config-file={config}", "--nofork", "--print-address=1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=base,
                start_new_session=True,
            )
        self.address = self._read_address(deadline)
        with (self.root / "keyring.log").open("wb") as log:
            self._keyring = subprocess.Popen(
                [gnome_keyring, "--foreground", "--unlock", "--components=secrets"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**base, **self.env},
                start_new_session=True,
            )
        assert self._keyring.stdin is not None
        self._keyring.stdin.write(self.password.encode())
        self._keyring.stdin.close()
        self._wait_ready(deadline)

    def _read_address(self, deadline: float) -> str:
        assert self._bus is not None
        assert self._bus.stdout is not None
        ready, _, _ = select.select(
            [self._bus.stdout], [], [], max(0.0, deadline - time.monotonic())
        )
        line = self._bus.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("unix:"):
            raise RuntimeError(f"dbus-daemon printed no address: {self._log('bus.log')}")
        return line

    def _wait_ready(self, deadline: float) -> None:
        """Wait until org.freedesktop.secrets has an owner and the login collection is open."""
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self._keyring is not None
            if self._keyring.poll() is not None:
                raise RuntimeError(
                    f"gnome-keyring-daemon exited ({self._keyring.returncode}):"
                    f" {self._log('keyring.log')}"
                )
            try:
                with self.connection() as connection:
                    proxy = Proxy(message_bus, connection, timeout=1.0)
                    if proxy.NameHasOwner(BUS_NAME)[0] == 1:
                        if not secretstorage.Collection(connection, DEFAULT_COLLECTION).is_locked():
                            return
                        last = "the login collection is locked"
                    else:
                        last = f"{BUS_NAME} has no owner"
            except (secretstorage.SecretStorageException, OSError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        raise RuntimeError(
            f"the Secret Service did not come up ({last}): {self._log('keyring.log')}"
        )

    def stop(self) -> None:
        """Stop gnome-keyring, then the bus (by PID; SIGKILL after 5 s), and remove the folder."""
        _live.discard(self)
        note = self.unexpected_exit()  # before the log goes with the folder
        if note is not None:
            _notes.append(note)
        for process in (self._keyring, self._bus):
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
                process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for process in (self._keyring, self._bus):
            if process is not None:
                for stream in (process.stdin, process.stdout):
                    if stream is not None:
                        stream.close()
        self.paused = False
        if self.root != Path() and self.root.is_dir():
            shutil.rmtree(self.root, ignore_errors=True)

    def unexpected_exit(self, within: float = 0.0) -> str | None:
        """What exited by itself since the start (gnome-keyring, the bus), with its status and
        the tail of its log; None while both run (a paused one runs). Said once.

        ``within``: seconds to give gnome-keyring to finish exiting first: its clients can see
        it gone (the kernel closes its bus connection as it exits) a moment before it is reaped.
        """
        if self._told:
            return None
        if within > 0 and self._keyring is not None and not self.paused:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._keyring.wait(timeout=within)
        gone = [
            f"{name} (PID {process.pid}) exited by itself, {_status(process.returncode)};"
            f" the end of its log:\n{self._log(log)}"
            for name, process, log in (
                ("gnome-keyring-daemon", self._keyring, "keyring.log"),
                ("dbus-daemon", self._bus, "bus.log"),
            )
            if process is not None and process.poll() is not None
        ]
        if not gone:
            return None
        self._told = True
        return "\n".join(gone)

    def _log(self, name: str) -> str:
        try:
            return (self.root / name).read_text(errors="replace")[-2000:].strip() or "(empty log)"
        except OSError:
            return "(no log)"

    # -- talking to it -------------------------------------------------------------------

    @contextlib.contextmanager
    def connection(self) -> Iterator[DBusConnection]:
        """A D-Bus connection to this bus, whatever os.environ says."""
        connection = open_dbus_connection(bus=self.address)
        try:
            yield connection
        finally:
            connection.close()

    def is_locked(self) -> bool:
        """Whether the default collection is locked."""
        with self.connection() as connection:
            return bool(secretstorage.Collection(connection, DEFAULT_COLLECTION).is_locked())

    def lock_collection(self) -> None:
        """Lock the default (login) collection, as a desktop's "lock keyring" does."""
        with self.connection() as connection:
            secretstorage.Collection(connection, DEFAULT_COLLECTION).lock()
        assert self.is_locked()

    def unlock_collection(self) -> None:
        """Unlock the login collection with its password, without a prompt.

        Uses gnome-keyring's own (unsupported, but stable since 2011) interface that its PAM
        module and ``gnome-keyring-daemon --unlock`` rely on.
        """
        with self.connection() as connection:
            session = open_session(connection)
            internal = DBusAddressWrapper(
                "/org/freedesktop/secrets",
                "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface",
                connection,
            )
            internal.call(
                "UnlockWithMasterPassword",
                "o(oayays)",
                LOGIN_COLLECTION,
                format_secret(session, self.password.encode(), "text/plain"),
            )
        assert not self.is_locked()

    def read_secret(self, service: str, username: str) -> str | None:
        """The secret keyring would read for (service, username), straight from the collection."""
        with self.connection() as connection:
            collection = secretstorage.Collection(connection, DEFAULT_COLLECTION)
            for item in collection.search_items({"service": service, "username": username}):
                return bytes(item.get_secret()).decode("utf-8")
        return None

    def count_items(self, attributes: Mapping[str, str]) -> int:
        """How many items in the default collection match ``attributes``."""
        with self.connection() as connection:
            collection = secretstorage.Collection(connection, DEFAULT_COLLECTION)
            return len(list(collection.search_items(dict(attributes))))

    def pause(self) -> None:
        """Freeze gnome-keyring (SIGSTOP): the bus stays up, calls to it never return."""
        os.kill(self.keyring_pid, signal.SIGSTOP)
        self.paused = True
        deadline = time.monotonic() + 5
        while _process_state(self.keyring_pid) not in {"T", "t"}:
            if time.monotonic() > deadline:
                raise RuntimeError("gnome-keyring-daemon did not stop")
            time.sleep(0.01)

    def resume(self) -> None:
        """Let a paused gnome-keyring run again (SIGCONT)."""
        os.kill(self.keyring_pid, signal.SIGCONT)
        self.paused = False

    @contextlib.contextmanager
    def paused_keyring(self) -> Iterator[None]:
        """Keep gnome-keyring frozen for the block, and always let it go afterwards."""
        self.pause()
        try:
            yield
        finally:
            self.resume()


_live: set[SecretService] = set()
"""Started and not stopped yet."""
_notes: list[str] = []
"""What `SecretService.stop` found exited by itself, until `unexpected_exits` hands it out."""


def unexpected_exits() -> list[str]:
    """What exited by itself, in every Secret Service started since the last call (running
    or stopped since); each exit is told once."""
    found = [note for service in list(_live) if (note := service.unexpected_exit()) is not None]
    found += _notes
    _notes.clear()
    return found


def _status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _process_state(pid: int) -> str:
    """The one-letter state of ``pid`` from /proc (R, S, T...)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]
