"""kill -9 at random moments during streams of ``set``: no acknowledged write is ever lost.

Four writer threads each own a few records and stream ``set``s; the test remembers, per
record, the last value the daemon acknowledged and the one in flight. After a SIGKILL at a
random moment the daemon restarts on the same store, which must open, and every record
must hold its last acknowledged value or the one in flight, never an older one, and never
a torn one (every value carries its own checksum). Both stores: the encrypted file with a
key file, and the keyring store on a real Secret Service with its index.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helperd_client import Client, DaemonUnreachableError, HelperdError, NotFoundError

from helperd.testing import Daemon
from tests.hardening import Figures, Spawn, sized, timeout_for
from tests.support.secret_service import SecretService

pytestmark = pytest.mark.timeout(timeout_for(150, 3600))

WRITERS = 4
RECORDS_PER_WRITER = 2
PLAINTEXT_MARK = "k9v|"


def make_value(round_: int, writer: int, sequence: int) -> str:
    """A value that says where it comes from and carries a checksum of itself."""
    body = f"{PLAINTEXT_MARK}{round_}|{writer}|{sequence}|" + "x" * (sequence % 97)
    return f"{body}|{hashlib.sha256(body.encode()).hexdigest()[:16]}"


def intact(value: str) -> bool:
    """Whether ``value`` is one `make_value` made, whole."""
    body, _, digest = value.rpartition("|")
    return (
        value.startswith(PLAINTEXT_MARK)
        and hashlib.sha256(body.encode()).hexdigest()[:16] == digest
    )


@dataclass
class Ledger:
    """Per record: the last acknowledged value, and the value sent but not yet acknowledged."""

    acked: dict[str, str] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    acks: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


KEYRING_RUNS = 3
"""Runs of the keyring store's test, when gnome-keyring exits by itself during one, or fails a
set, a get or a daemon's start with one of `SECRET_SERVICE_FAULTS`."""

SECRET_SERVICE_FAULTS = (
    "(Secret Service) failed to write an entry: Item does not exist!",
    "(Secret Service) failed to read an entry: Item does not exist!",
    "the Secret Service has no collection /org/freedesktop/secrets/aliases/default:",
)
"""Texts of helperd's answers when gnome-keyring says "no such object" for what it holds: an
item it has just created or found, or the default collection's alias. The first and the last
were seen in CI on 2026-12-04, the last also here once in 43 runs (gnome-keyring kept running;
the collection answered again 3 s later). gnome-keyring faults so when clients come and go
beside one replacing an item (`helperd.stores.secret_service` has the figures). A daemon keeps
one connection, but each kill and restart here is a client going and another coming beside the
writes. Such a set or get is refused, not acknowledged, so nothing is lost."""


class SecretServiceFault(AssertionError):
    """Every failed set of a round was one of `SECRET_SERVICE_FAULTS`."""


def secret_service_failed(exc: BaseException, secret_service: SecretService) -> bool:
    """Whether gnome-keyring failed the run: it exited, or a daemon could not start or a get
    was refused because of one of `SECRET_SERVICE_FAULTS` (sets are judged in `kill_rounds`)."""
    if isinstance(exc, pytest.fail.Exception | RuntimeError | HelperdError) and any(
        fault in str(exc) for fault in SECRET_SERVICE_FAULTS
    ):
        return True
    return secret_service.unexpected_exit(within=5) is not None


def writer(path: Path, index: int, round_: int, ledger: Ledger, stop: threading.Event) -> None:
    """Stream sets until the daemon dies (or ``stop``); record every acknowledgement."""
    names = [f"k9-{index}-{j}" for j in range(RECORDS_PER_WRITER)]
    sequence = 0
    with Client(path, timeout=5.0) as client:
        while not stop.is_set():
            sequence += 1
            name = names[sequence % len(names)]
            value = make_value(round_, index, sequence)
            with ledger.lock:
                ledger.pending[name] = value
            try:
                client.set(name, value, username="u")
            except DaemonUnreachableError:
                return  # killed: this value stays pending
            except HelperdError as exc:
                with ledger.lock:
                    ledger.errors.append(f"{exc.code}: {exc.message}")
                return
            with ledger.lock:
                ledger.acked[name] = value
                del ledger.pending[name]
                ledger.acks += 1


def check_after_restart(daemon: Daemon, ledger: Ledger) -> int:
    """Every record holds its last acked or its pending value; returns how many were pending.

    The ledger is then brought up to date with what the store holds.
    """
    took_pending = 0
    names = sorted(set(ledger.acked) | set(ledger.pending))
    with Client(daemon.socket, timeout=10.0) as client:
        for name in names:
            acked, pending = ledger.acked.get(name), ledger.pending.get(name)
            try:
                got: str | None = client.get(name=name).password
            except NotFoundError:
                got = None
            assert got is None or intact(got), f"{name}: a torn value was served"
            assert got in (acked, pending), (
                f"{name}: holds {got!r}; last acknowledged {acked!r}, in flight {pending!r}"
            )
            took_pending += got == pending and pending is not None
            if got is not None:
                ledger.acked[name] = got
        listed = {r.name for r in client.list()}
    ledger.pending.clear()
    assert {n for n in names if n in ledger.acked} <= listed
    return took_pending


def kill_rounds(
    start: Callable[[], Daemon], rounds: int, seed: int, figures: Figures, store: str
) -> None:
    """Run ``rounds`` rounds of stream, SIGKILL, restart, check."""
    rng = random.Random(seed)
    ledger = Ledger()
    took_pending = 0
    restart_times: list[float] = []
    daemon = start()
    for round_ in range(rounds):
        stop = threading.Event()
        threads = [
            threading.Thread(target=writer, args=(daemon.socket, w, round_, ledger, stop))
            for w in range(WRITERS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(daemon.process.pid, signal.SIGKILL)
        daemon.process.wait(10)
        stop.set()
        for thread in threads:
            thread.join(10)
        assert not any(t.is_alive() for t in threads), "a writer hung after the kill"
        if ledger.errors and all(
            any(fault in error for fault in SECRET_SERVICE_FAULTS) for error in ledger.errors
        ):
            raise SecretServiceFault(f"round {round_}: {ledger.errors}")
        assert [] == ledger.errors, "a set failed other than by the kill"
        started = time.monotonic()
        daemon = start()
        restart_times.append(time.monotonic() - started)
        took_pending += check_after_restart(daemon, ledger)
    daemon.stop()
    figures(f"{store}: kill -9 rounds", rounds)
    figures(f"{store}: acknowledged writes (all kept)", ledger.acks)
    figures(f"{store}: in-flight writes found stored", took_pending)
    figures(f"{store}: restart after kill -9, max", max(restart_times), "s")
    figures(f"{store}: seed", seed)


def test_kill9_file_store(spawn: Spawn, home: Path, figures: Figures) -> None:
    """File store with a key file: no acked write lost, never torn, no plaintext on disk.

    A temporary file left by a kill mid-write is counted: it is ciphertext, never read.
    """
    seed = random.randrange(1 << 32)
    kill_rounds(spawn, sized(10, 100), seed, figures, "file store")
    leftovers = sorted(p.name for p in home.iterdir() if p.name.endswith(".tmp"))
    figures("file store: temporary files left by kills", len(leftovers))
    for path in home.iterdir():
        if path.is_file():
            assert PLAINTEXT_MARK.encode() not in path.read_bytes(), f"plaintext in {path.name}"


@pytest.mark.secret_service
def test_kill9_keyring_store(spawn: Spawn, home: Path, figures: Figures) -> None:
    """Keyring store (Secret Service + index): no acked write lost, never torn.

    gnome-keyring itself now and then aborts (SIGABRT) when a client it was answering is
    killed, or says for a moment that an item, or the default collection, does not exist
    (`SECRET_SERVICE_FAULTS`). A run whose Secret Service exited by itself or failed so proves
    nothing about helperd, so it starts over in a fresh home on a fresh Secret Service, at most
    ``KEYRING_RUNS`` runs in all; any other failure fails the test at once. That the daemon's own
    calls do not set gnome-keyring off is tested in tests/unit/test_secret_service_calls.py.
    """
    seed = random.randrange(1 << 32)
    for run in range(KEYRING_RUNS):
        run_home = home / f"run{run}"
        run_home.mkdir(mode=0o700)
        with SecretService() as secret_service:
            start = functools.partial(
                spawn, store="keyring", key=False, home=run_home, env=secret_service.env
            )
            try:
                kill_rounds(start, sized(10, 100), seed + run, figures, "keyring store")
            except SecretServiceFault:
                if run + 1 == KEYRING_RUNS:
                    raise
            except (Exception, pytest.fail.Exception) as exc:  # the latter: a daemon did not start
                if run + 1 == KEYRING_RUNS or not secret_service_failed(exc, secret_service):
                    raise
            else:
                figures("keyring store: runs started over (gnome-keyring died or failed)", run)
                break
    for path in home.rglob("*"):
        if path.is_file():
            assert PLAINTEXT_MARK.encode() not in path.read_bytes(), f"plaintext in {path.name}"
