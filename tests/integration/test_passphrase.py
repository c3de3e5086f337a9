"""The passphrase-protected file store through the real daemon: init, lock, unlock, passwd."""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path

import pytest
from helperd_client import (
    BadPassphraseError,
    BadRequestError,
    Client,
    LockedError,
    StoreUnavailableError,
)

from helperd.testing import Daemon, start_daemon, wait_for_gate

PASSPHRASE = "correct horse battery staple"


def test_init_unlock_lock_passwd(daemon: Daemon) -> None:
    """The whole passphrase life cycle, each step seen in status."""
    with daemon.client() as client:
        status = client.status()
        assert (False, True) == (status.initialized, status.locked)
        client.init(PASSPHRASE)
        assert not client.status().locked
        client.set("foo", "pw", username="u")
        client.lock()
        assert (True, None) == (client.status().locked, client.status().repositories)
        with pytest.raises(LockedError, match="helperctl unlock"):
            client.get(name="foo")
        client.unlock(PASSPHRASE)
        assert "pw" == client.get(name="foo").password
        client.passwd(PASSPHRASE, "new passphrase")
        client.lock()
        with pytest.raises(BadPassphraseError):
            client.unlock(PASSPHRASE)
        wait_for_gate(client)  # 1 s after one wrong passphrase
        client.unlock("new passphrase")
        assert "pw" == client.get(name="foo").password


def test_daemon_starts_locked_and_unlock_never_creates(home: Path, daemon: Daemon) -> None:
    """Unlock on a missing store says to run init; after a restart the store is locked."""
    with daemon.client() as client:
        with pytest.raises(LockedError, match="helperctl init"):
            client.unlock(PASSPHRASE)
        assert not (home / "store.enc").exists()
        client.init(PASSPHRASE)
        with pytest.raises(BadRequestError, match="already exists"):
            client.init(PASSPHRASE)
    daemon.stop()
    again = start_daemon(home, "--store", "file")
    try:
        assert again.client().status().locked
    finally:
        again.stop()


def test_tampered_store_is_refused_and_left_untouched(home: Path, daemon: Daemon) -> None:
    """A flipped byte makes unlock fail with store_unavailable; the file stays byte-identical."""
    with daemon.client() as client:
        client.init(PASSPHRASE)
        client.set("foo", "pw", username="u")
    daemon.stop()
    store = home / "store.enc"
    data = bytearray(store.read_bytes())
    data[-5] ^= 0x01
    store.write_bytes(bytes(data))
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    again = start_daemon(home, "--store", "file")
    try:
        with again.client() as client:
            with pytest.raises(StoreUnavailableError, match="untouched"):
                client.unlock(PASSPHRASE)
            with pytest.raises((LockedError, StoreUnavailableError)):
                client.set("bar", "pw2", username="u")
    finally:
        again.stop()
    assert before == hashlib.sha256(store.read_bytes()).hexdigest()


def test_truncated_store_is_refused(home: Path, daemon: Daemon) -> None:
    """A truncated store file is refused with a clear error and not rewritten."""
    with daemon.client() as client:
        client.init(PASSPHRASE)
        client.set("foo", "pw", username="u")
    daemon.stop()
    store = home / "store.enc"
    store.write_bytes(store.read_bytes()[:-20])
    before = store.read_bytes()
    again = start_daemon(home, "--store", "file")
    try:
        with pytest.raises(StoreUnavailableError), again.client() as client:
            client.unlock(PASSPHRASE)
    finally:
        again.stop()
    assert before == store.read_bytes()


def test_passphrase_never_reaches_a_file(home: Path, daemon: Daemon) -> None:
    """Neither the passphrase nor the secret is in any file under the home."""
    with daemon.client() as client:
        client.init(PASSPHRASE)
        client.set("foo", "Zq8-unique-secret", username="u")
        client.lock()
        with pytest.raises(BadPassphraseError):
            client.unlock("wrong-Zq8")
    for path in home.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            for needle in (PASSPHRASE, "Zq8-unique-secret", "wrong-Zq8"):
                assert needle.encode() not in raw, path


def test_idle_store_locks_itself(home: Path) -> None:
    """With idle_lock_seconds set, an unused passphrase store locks itself."""
    (home / "config.toml").write_text("idle_lock_seconds = 1\n")
    daemon = start_daemon(home, "--store", "file")
    try:
        client = Client(daemon.socket)
        client.init(PASSPHRASE)
        deadline = time.monotonic() + 10
        while not client.status().locked and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.status().locked
    finally:
        daemon.stop()


def test_sighup_reloads_config_and_keeps_the_store_unlocked(home: Path) -> None:
    """SIGHUP applies config.toml's new log level; the unlocked store stays unlocked, and a
    broken config.toml is logged and ignored."""
    (home / "config.toml").write_text('log_level = "info"\n')
    daemon = start_daemon(home, "--store", "file")
    try:
        client = Client(daemon.socket)
        client.init(PASSPHRASE)
        client.status()
        assert "status ok" not in daemon.log.read_text()
        (home / "config.toml").write_text('log_level = "debug"\n')
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "SIGHUP: reloaded" not in daemon.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not client.status().locked
        assert "status ok" in daemon.log.read_text()
        (home / "config.toml").write_text("not toml at all\n")
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "keeping the current" not in daemon.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "keeping the current settings" in daemon.log.read_text()
        assert not client.status().locked
        client.close()
    finally:
        daemon.stop()
