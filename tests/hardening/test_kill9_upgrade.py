"""kill -9 while a daemon rewrites a version 1, 2 or 3 store as version 4: nothing is ever lost.

The daemon upgrades the file when it first opens it (the first request that needs the
store); the test kills it at random moments around that write, then opens what is on disk
without a daemon: the old file or the version 4 one, every record and password whole.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helperd_client import Client, HelperdError

from helperd.core.record import Kind, Record
from helperd.stores.file_store import FileStore
from tests.hardening import Spawn, sized, timeout_for, write_key_file
from tests.support.old_stores import write_old_store

pytestmark = pytest.mark.timeout(timeout_for(300, 3600))

RECORDS = 3000
"""Enough that the open and the rewrite take a while to land a kill inside."""


@pytest.mark.parametrize("old", [1, 2, 3])
def test_kill9_during_the_upgrade_of_an_older_store(spawn: Spawn, home: Path, old: int) -> None:
    """After a SIGKILL anywhere in the first open of a version 1, 2 or 3 store, the file on disk
    opens with every record and password; over the rounds both versions are seen."""
    now = datetime.now(UTC)
    entries = {}
    for index in range(RECORDS):
        record = Record(
            name=f"r{index:05d}",
            username="u",
            kind=Kind.BASIC,
            urls=(f"https://h{index}.test/simple/",),
            created_at=now,
            updated_at=now,
        )
        entries[record.key] = (record, f"pw-{index}-\udc80")
    key_file = write_key_file(home / "helperd.key")  # the one spawn gives the daemon
    path = home / "store.enc"
    seen: dict[int, int] = {}
    rng = random.Random(9)
    delay = 0.6  # seconds from the daemon's start (it opens, so upgrades, the store before ready)
    for _ in range(sized(12, 60)):
        path.unlink(missing_ok=True)
        write_old_store(path, key_file, entries, old)
        daemon = spawn(wait=False)
        killed = threading.Event()
        asking = threading.Thread(target=_ask, args=(daemon.socket, killed), daemon=True)
        asking.start()
        time.sleep(delay * rng.uniform(0.8, 1.2))
        daemon.stop(signal.SIGKILL)
        killed.set()
        asking.join(30)
        version = int(path.read_bytes().partition(b'"version":')[2][:1])  # before we open it
        store = FileStore(path, key_file=key_file)
        try:
            records = store.records()
            assert [e[0] for e in sorted(entries.values(), key=lambda e: e[0].key)] == list(records)
            assert [entries[r.key][1] for r in records] == [
                store.password(r).get_secret_value() for r in records
            ]
        finally:
            store.close()
        seen[version] = seen.get(version, 0) + 1
        # Aim the next kill: earlier while only upgraded files are seen, later otherwise.
        delay = delay * 0.8 if version == 4 else delay * 1.25
    assert {old, 4} == set(seen), seen


def _ask(socket: Path, killed: threading.Event) -> None:
    """Ask for the store until the daemon answers or is killed (its first open upgrades the
    file); a call the kill cuts short fails at once."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not killed.is_set():
        with suppress(HelperdError, OSError), Client(socket, timeout=20.0) as client:
            client.list_page(1)
            return
        time.sleep(0.005)
