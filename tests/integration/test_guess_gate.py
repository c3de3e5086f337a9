"""The daemon-wide passphrase gate through the real daemon: parallel guesses, restarts, others.

SPEC.md: after the n-th wrong passphrase in a row no passphrase is checked for min(2^(n-1), 30)
seconds; while a check runs or the gate is closed, every unlock is refused at once with
``too many wrong passphrases: try again in N s``; the state survives a restart.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from helperd_client import BadPassphraseError, Client, HelperdError

from helperd.core.gate import interval
from helperd.testing import Daemon, start_daemon, wait_for_gate

PASSPHRASE = "correct horse battery staple"
GATE_MESSAGE = re.compile(r"too many wrong passphrases: try again in [1-9][0-9]* s")
GUESSERS = 20


def locked_store(daemon: Daemon) -> None:
    """Create the store with one record, then lock it."""
    with daemon.client(timeout=90) as client:
        client.init(PASSPHRASE)
        client.set("foo", "pw", username="u")
        client.lock()


def test_parallel_wrong_passphrases_run_the_kdf_at_most_once_per_interval(daemon: Daemon) -> None:
    """Twenty wrong unlocks on twenty connections at once: the KDF runs at most once per gate
    interval; the others are answered at once with the gate's message."""
    locked_store(daemon)
    before = daemon.client().status().kdf_runs
    barrier = threading.Barrier(GUESSERS)
    messages: list[str] = []
    clients = [Client(daemon.socket, timeout=5.0, passphrase_timeout=90.0) for _ in range(GUESSERS)]

    def guess(client: Client, n: int) -> None:
        client.hello()  # connected before the barrier, so that all guesses leave together
        barrier.wait(30)
        try:
            client.unlock(f"wrong guess {n}")
        except BadPassphraseError as exc:
            messages.append(exc.message)

    threads = [threading.Thread(target=guess, args=(c, n)) for n, c in enumerate(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    runs = daemon.client().status().kdf_runs - before
    # The most checks the gate lets through in `elapsed` seconds: one, then one more each
    # time an interval (1, 2, 4, ... s after the previous wrong one) has passed.
    allowed, passed = 1, 0.0
    while passed + interval(allowed) <= elapsed:
        passed += interval(allowed)
        allowed += 1
    gated = [m for m in messages if GATE_MESSAGE.fullmatch(m)]
    checked = [m for m in messages if m.startswith("wrong passphrase")]
    assert GUESSERS == len(messages), "every guess was answered"
    assert 1 <= runs <= allowed, f"{runs} KDF runs in {elapsed:.1f} s"
    assert runs == len(checked)
    assert GUESSERS - runs == len(gated)


def test_a_restart_keeps_the_gate_closed(home: Path, daemon: Daemon) -> None:
    """Four wrong passphrases close the gate for 8 s; a restarted daemon still refuses, even
    the right passphrase, without running the KDF."""
    locked_store(daemon)
    with daemon.client(timeout=90) as client:
        for _ in range(4):
            wait_for_gate(client)
            with pytest.raises(BadPassphraseError, match=r"^wrong passphrase"):
                client.unlock("wrong")
    daemon.stop()
    again = start_daemon(home, "--store", "file")
    try:
        with again.client(timeout=90) as client:
            status = client.status()
            assert status.passphrase_retry_in > 0
            assert 0 == status.kdf_runs
            with pytest.raises(BadPassphraseError) as refused:
                client.unlock(PASSPHRASE)
            assert GATE_MESSAGE.fullmatch(refused.value.message)
            assert (0, True) == (client.status().kdf_runs, client.status().locked)
            wait_for_gate(client)
            client.unlock(PASSPHRASE)
            assert "pw" == client.get(name="foo").password
    finally:
        again.stop()
    assert 0o600 == (home / "passphrase-gate.json").stat().st_mode & 0o777


def test_gets_and_hellos_are_served_while_a_guess_runs_and_the_gate_is_closed(
    daemon: Daemon,
) -> None:
    """While a wrong passphrase's KDF runs, and after, while the gate is closed, other
    connections' gets and hellos are answered (within the client's default timeout)."""
    with daemon.client(timeout=90) as client:
        client.init(PASSPHRASE)
        client.set("foo", "pw", username="u")  # stays unlocked: a wrong unlock only checks
        with pytest.raises(BadPassphraseError):
            client.unlock("wrong")  # the guess below is the second: the gate closes for 2 s
        wait_for_gate(client)
    outcome: list[HelperdError] = []

    def guess() -> None:
        with daemon.client(timeout=90) as guesser:
            try:
                guesser.unlock("wrong")
            except HelperdError as exc:
                outcome.append(exc)

    other = daemon.client()  # the default timeout, 2 s
    runs = other.status().kdf_runs
    thread = threading.Thread(target=guess)
    thread.start()
    while other.status().kdf_runs == runs and thread.is_alive():
        time.sleep(0.01)  # until the KDF has started
    during = [other.get(name="foo").password, other.hello().daemon]
    still_running = thread.is_alive()
    thread.join(90)
    closed = other.status().passphrase_retry_in
    after = [other.get(name="foo").password, other.hello().daemon]
    closed_after = other.status().passphrase_retry_in
    other.close()
    assert ["pw", "helperd"] == during
    assert still_running, "the get and hello were answered while the KDF ran"
    assert ["wrong passphrase"] == [e.message.split(" for ")[0] for e in outcome]
    assert ["pw", "helperd"] == after
    assert closed > 0
    assert closed_after > 0, "the get and hello were answered while the gate was closed"
