"""Store choice, the keyring store end to end, and migrate, on a real Secret Service."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helperd_client import Client, LockedError
from keyring.backends import SecretService as SecretServiceBackend

from helperd.stores.migration import MigrationMarker
from helperd.testing import Daemon, start_daemon
from tests.support.secret_service import SecretService

URL = "https://pkgs.example.test/simple/"
NEEDLE = "Zq8-keyring-secret"


def helperctl(daemon: Daemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the real helperctl against ``daemon``."""
    return subprocess.run(
        [sys.executable, "-c", "from helperd.ctl.main import main; main()", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=daemon.env,
        check=False,
    )


def test_auto_without_a_session_bus_picks_the_file_store(home: Path) -> None:
    """No D-Bus session bus: auto chooses the encrypted file and says why."""
    daemon = start_daemon(home)
    try:
        status = daemon.client().status()
        assert "file" == status.store
        assert "no usable OS keyring" in status.store_reason
    finally:
        daemon.stop()


def test_store_keyring_without_a_keyring_is_refused(home: Path) -> None:
    """--store keyring with no usable keyring: the daemon exits 1 with a clear message."""
    daemon = start_daemon(home, "--store", "keyring", wait=False)
    assert 1 == daemon.process.wait(30)
    assert "no usable OS keyring" in daemon.log.read_text()


def test_auto_with_a_secret_service_keeps_secrets_there(
    home: Path, secret_service: SecretService
) -> None:
    """auto picks the keyring store; the secret is in the Secret Service and in no file."""
    daemon = start_daemon(home, env=secret_service.env)
    try:
        with daemon.client() as client:
            status = client.status()
            assert ("keyring", False) == (status.store, status.locked)
            assert "GNOME Keyring" in status.store_reason
            client.set("acme", NEEDLE, username="alice", urls=[URL])
        assert NEEDLE == SecretServiceBackend.Keyring().get_password("helperd:acme", "alice")
        for path in home.rglob("*"):
            if path.is_file():
                assert NEEDLE.encode() not in path.read_bytes(), path
    finally:
        daemon.stop()
    again = start_daemon(home, env=secret_service.env)
    try:
        assert NEEDLE == again.client().get(url=URL + "pkg/").password
    finally:
        again.stop()


def test_auto_with_a_locked_collection_picks_the_keyring_store(
    home: Path, secret_service: SecretService
) -> None:
    """auto with the collection locked from the start still picks the keyring store.

    The store reports locked and its reason says how to unlock: the probe counts a locked
    collection as a keyring that answers, and the file store is not created behind its back.
    """
    secret_service.lock_collection()
    daemon = start_daemon(home, env=secret_service.env)
    try:
        status = daemon.client().status()
        assert ("keyring", True) == (status.store, status.locked)
        assert status.store_reason.endswith(
            "Secret Service (GNOME Keyring) is locked (`helperctl unlock` opens it)"
        ), status.store_reason
        assert [] == list(home.rglob("store.enc"))
    finally:
        daemon.stop()


def test_locked_collection_answers_exit_5_in_time(
    home: Path, secret_service: SecretService
) -> None:
    """A locked collection: get answers locked (helperctl exit 5) well within the bound."""
    daemon = start_daemon(home, env=secret_service.env)
    try:
        daemon.client().set("acme", NEEDLE, username="alice")
        secret_service.lock_collection()
        started = time.monotonic()
        with pytest.raises(LockedError), daemon.client() as client:
            client.get(name="acme")
        elapsed = time.monotonic() - started
        assert elapsed < 5 * 2.0, "bounded by the 2 s keyring timeout"
        result = helperctl(daemon, "get", "acme")
        assert 5 == result.returncode, result.stderr
        assert NEEDLE not in result.stdout + result.stderr
        assert helperctl(daemon, "status", "--json").returncode == 0
    finally:
        daemon.stop()


def test_frozen_keyring_at_the_default_bounds_is_named_not_unreachable(
    home: Path, secret_service: SecretService
) -> None:
    """gnome-keyring frozen (SIGSTOP), every bound at its default (no keyring_timeout, no
    HELPERD_TIMEOUT): helperctl get exits 1 naming the OS keyring, not 3 ("helperd did not
    answer"), because the keyring call's bound sits inside the daemon's answer bound, which
    sits inside the client's 2 s; status still answers."""
    daemon = start_daemon(home, "--store", "keyring", env=secret_service.env)
    try:
        daemon.client().set("acme", NEEDLE, username="alice")
        assert "HELPERD_TIMEOUT" not in daemon.env
        assert not (home / "config.toml").exists()
        with secret_service.paused_keyring():
            result = helperctl(daemon, "get", "acme")
            status = helperctl(daemon, "status", "--json")
        assert 1 == result.returncode, result.stderr
        assert "the OS keyring (Secret Service) did not answer" in result.stderr
        assert NEEDLE not in result.stdout + result.stderr
        assert 0 == status.returncode, status.stderr
        assert "keyring" == json.loads(status.stdout)["store"]
    finally:
        daemon.stop()


def test_migrate_both_ways(home: Path, key_file: Path, secret_service: SecretService) -> None:
    """file -> keyring -> file moves every record, verified, and deletes the source."""
    env = {**secret_service.env, "HELPERD_KEY_FILE": str(key_file)}
    daemon = start_daemon(home, "--store", "file", env=env)
    try:
        with daemon.client() as client:
            client.set("acme", NEEDLE, username="alice", urls=[URL])
            client.set("acme", "tok", kind="token")
            client.set("some-app", "generic-pw", username="me", kind="generic")
        result = helperctl(daemon, "migrate", "--to", "keyring")
        assert 0 == result.returncode, result.stderr
        assert "moved 3 records" in result.stderr
        assert not (home / "store.enc").exists()
        with daemon.client() as client:
            assert "keyring" == client.status().store
            assert NEEDLE == client.get(url=URL).password
        native = SecretServiceBackend.Keyring()
        assert "generic-pw" == native.get_password("some-app", "me")
        result = helperctl(daemon, "migrate", "--to", "file")
        assert 0 == result.returncode, result.stderr
        assert not (home / "keyring-index.json").exists()
        assert None is native.get_password("helperd:acme", "alice")
        with daemon.client() as client:
            assert "file" == client.status().store
            assert "tok" == client.get(name="acme", username="__token__").password
    finally:
        daemon.stop()


def test_unfinished_migration_keeps_the_source(
    home: Path, key_file: Path, secret_service: SecretService
) -> None:
    """A migration cut short (marker left, partial target) restarts on the intact source."""
    env = {**secret_service.env, "HELPERD_KEY_FILE": str(key_file)}
    daemon = start_daemon(home, "--store", "file", env=env)
    daemon.client().set("acme", NEEDLE, username="alice")
    daemon.stop()
    # What a kill -9 in the middle of the copy leaves: the marker and a partial index.
    MigrationMarker(home / "migrating-to").begin("keyring")
    (home / "keyring-index.json").write_text(
        json.dumps({"format": "helperd-keyring-index", "version": 1, "records": []})
    )
    (home / "keyring-index.json").chmod(0o600)
    again = start_daemon(home, env=env)
    try:
        status = again.client().status()
        assert "file" == status.store
        assert "did not finish" in status.store_reason
        assert NEEDLE == again.client().get(name="acme").password
        assert 0 == helperctl(again, "migrate", "--to", "keyring").returncode
        assert not (home / "migrating-to").exists()
    finally:
        again.stop()
    final = start_daemon(home, env=env)
    try:
        assert "keyring" == final.client().status().store
        assert NEEDLE == Client(final.socket).get(name="acme").password
    finally:
        final.stop()
