"""Run a real helperd daemon for tests: your project's, or ours.

    from helperd.testing import running_daemon

    with running_daemon() as daemon:
        daemon.client().set("acme", "s3cret", username="alice")

The daemon runs in a subprocess with its own temporary ``HELPERD_HOME`` (a short path under
/tmp: Unix socket paths are limited to about 100 bytes), is stopped with SIGTERM when the
block ends, even on failure, and its home is removed. Nothing is written under the real home.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helperd_client import Client, DaemonUnreachableError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from helperd.core.record import Record, RecordKey

__all__ = [
    "Daemon",
    "child_processes",
    "fill_file_store",
    "running_daemon",
    "start_daemon",
    "wait_for_gate",
    "write_store",
]

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


@dataclass
class Daemon:
    """A helperd process started by `start_daemon`."""

    home: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(repr=False)

    @property
    def socket(self) -> Path:
        """Where the daemon listens."""
        return self.home / "helperd.sock"

    @property
    def log(self) -> Path:
        """The daemon's stderr."""
        return self.home / "daemon.log"

    def client(self, timeout: float = 5.0) -> Client:
        """A client connected to this daemon."""
        return Client(self.socket, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the daemon and wait for it; kill it if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def daemon_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a daemon (or a client) that lives entirely in ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPERD_")}
    for name in ("DBUS_SESSION_BUS_ADDRESS", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"):
        env.pop(name, None)
    env.update({"HELPERD_HOME": str(home), "HOME": str(home), "XDG_RUNTIME_DIR": str(home)})
    env["HELPERD_AUTOSTART"] = "0"  # a test's client never starts a daemon of its own
    env.update(extra or {})
    return env


def start_daemon(
    home: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> Daemon:
    """Start ``helperd`` with ``HELPERD_HOME=home`` and wait until it answers ``hello``.

    Raises:
        RuntimeError: the daemon exited or did not answer within `START_TIMEOUT` seconds
            (the message holds its log).
    """
    full_env = daemon_env(home, env)
    log = (home / "daemon.log").open("ab")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "helperd", *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    finally:
        log.close()
    daemon = Daemon(home, process, full_env)
    if wait:
        _wait_ready(daemon)
    return daemon


def _wait_ready(daemon: Daemon) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise RuntimeError(f"helperd exited with {daemon.process.returncode}: {_tail(daemon)}")
        with contextlib.suppress(DaemonUnreachableError), daemon.client(timeout=1.0) as client:
            client.hello()
            return
        time.sleep(0.02)
    daemon.stop(signal.SIGKILL)
    raise RuntimeError(f"helperd did not answer within {START_TIMEOUT} s: {_tail(daemon)}")


def _tail(daemon: Daemon) -> str:
    try:
        return daemon.log.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_daemon(
    *args: str, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Iterator[Daemon]:
    """Start a daemon in a fresh temporary home; stop it and remove the home afterwards."""
    own_home = home is None
    home = Path(tempfile.mkdtemp(prefix="hd", dir="/tmp")) if home is None else home
    try:
        daemon = start_daemon(home, *args, env=env)
        try:
            yield daemon
        finally:
            daemon.stop()
    finally:
        if own_home:
            shutil.rmtree(home, ignore_errors=True)


def child_processes(pid: int) -> list[int]:
    """The PIDs of the running children of process ``pid``, started by any of its threads (a
    daemon starts its writer process from a worker thread); none once it has ended."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(word) for word in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return found


def wait_for_gate(client: Client) -> None:
    """Sleep until the daemon checks passphrases again (after a wrong one, it waits a while)."""
    while (wait := client.status().passphrase_retry_in) > 0:
        time.sleep(wait)


def write_store(
    home: Path,
    records: Iterable[Mapping[str, Any]],
    *,
    key_file: Path | None = None,
    passphrase: str | None = None,
) -> Path:
    """Write the file store of a daemon whose ``HELPERD_HOME`` is ``home``, in one commit.

    Each record is a dict of the wire ``set`` fields: ``name``, ``password`` and optionally
    ``username`` (default: ``__token__`` for a token, else empty), ``kind`` (default
    ``basic``) and ``urls``. The store is opened by ``key_file`` (default: the file that
    ``$HELPERD_KEY_FILE`` names), or by ``passphrase`` when given. Returns the store's path.

    Filling a big store through a daemon would take one ``set`` (one durable write) per
    record; this writes the file once, through the store's own encoder and cipher, so it is
    exactly what the daemon would have written.
    """
    from helperd.core.lookup import check_url  # noqa: PLC0415 - only the builder needs these
    from helperd.core.record import TOKEN_USERNAME, Kind, Record  # noqa: PLC0415

    now = datetime.now(UTC)
    entries = {}
    for fields in records:
        kind = Kind(fields.get("kind", "basic"))
        default_user = TOKEN_USERNAME if kind is Kind.TOKEN else ""
        record = Record(
            name=fields["name"],
            username=fields.get("username", default_user),
            kind=kind,
            urls=tuple(check_url(url) for url in fields.get("urls", ())),
            created_at=now,
            updated_at=now,
        )
        entries[record.key] = (record, str(fields["password"]))
    if key_file is None and passphrase is None:
        key_file = Path(os.environ["HELPERD_KEY_FILE"])
    path = home / "store.enc"
    _write_entries(path, entries, key_file=None if passphrase else key_file, passphrase=passphrase)
    return path


def fill_file_store(
    path: Path,
    entries: Mapping[RecordKey, tuple[Record, SecretStr]],
    *,
    key_file: Path | None = None,
    passphrase: str | None = None,
) -> None:
    """Write a file store at ``path`` holding ``entries``, in one commit, before a daemon starts.

    As `write_store`, for records already built (the benchmarks' layouts).
    """
    plain = {key: (record, secret.get_secret_value()) for key, (record, secret) in entries.items()}
    _write_entries(path, plain, key_file=key_file, passphrase=passphrase)


def _write_entries(
    path: Path,
    entries: Mapping[RecordKey, tuple[Record, str]],
    *,
    key_file: Path | None,
    passphrase: str | None,
) -> None:
    """Commit ``entries`` to a new store at ``path``. It touches the store's private commit on
    purpose and only here: a test or a benchmark needs a big store, not the write path."""
    from pydantic import SecretStr  # noqa: PLC0415 - only the store builder needs these

    from helperd.stores.file_store import FileStore  # noqa: PLC0415

    store = FileStore(path, key_file=key_file)
    try:
        if key_file is None:
            store.create(SecretStr(passphrase or ""))
        else:
            store.unlock(None)  # a key-file store creates itself, empty, on first use
        with store._lock:
            opened = store._open
            assert opened is not None
            spec, generation = opened.header.spec, opened.header.generation + 1
            store._commit_all(entries.values(), opened.key, spec, generation)
    finally:
        store.close()
