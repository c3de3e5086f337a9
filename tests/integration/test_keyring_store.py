"""The keyring store and its bounded OS keyring, against a real gnome-keyring.

Each test that needs a Secret Service gets its own private D-Bus bus and gnome-keyring
(`tests.support.secret_service`); `TestPickBackend` uses fake backend classes only.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helperd_client.errors import (
    BadRequestError,
    LockedError,
    NotFoundError,
    StoreUnavailableError,
)
from keyring.backends import SecretService as SecretServiceBackend
from keyring.backends import fail, null
from pydantic import SecretStr

from helperd.core.record import Kind, Record
from helperd.core.store import StoreState
from helperd.stores import keyring_store
from helperd.stores.keyring_store import KeyringStore, location
from helperd.stores.os_keyring import BoundedKeyring, pick_backend, probe
from tests.support.secret_service import SecretService
from tests.support.tools import require_tool

TIMEOUT = 0.5
"""The keyring deadline in these tests: short, so that the hung-keyring tests stay quick."""

DIFFICULT = [
    "plain-ascii-token",
    "pä$$wörd ✓ 🔑 with spaces",
    "two\nlines\r\nand a tab\t, quotes \" ' and a backslash \\",
    "  leading and trailing blanks  ",
    "x" * 4000,
]
"""Passwords that break naive handling: Unicode, newlines, blanks, length."""

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(name: str, username: str = "alice", kind: Kind = Kind.BASIC) -> Record:
    """A record with fixed times and one URL (none for a generic entry)."""
    urls = () if kind is Kind.GENERIC else (f"https://{name}.example/simple/",)
    return Record(
        name=name, username=username, kind=kind, urls=urls, created_at=NOW, updated_at=NOW
    )


def assert_no_dangling(store: KeyringStore) -> None:
    """Every index entry's secret is in the OS keyring."""
    for held in store.records():
        store.password(held)


@pytest.fixture
def backend(secret_service: SecretService) -> SecretServiceBackend.Keyring:
    """keyring's own Secret Service backend, pointed at the private gnome-keyring."""
    return SecretServiceBackend.Keyring()


@pytest.fixture
def bounded(backend: SecretServiceBackend.Keyring) -> Iterator[BoundedKeyring]:
    """The backend with a short deadline and room for two stuck calls."""
    keyring = BoundedKeyring(backend, timeout=TIMEOUT, max_stuck=2)
    yield keyring
    keyring.close()


@pytest.fixture
def index_path(home: Path) -> Path:
    """Where the store keeps its index, inside the test's private home."""
    return home / "keyring-index.json"


@pytest.fixture
def store(index_path: Path, bounded: BoundedKeyring) -> Iterator[KeyringStore]:
    """A keyring store on the private gnome-keyring."""
    opened = KeyringStore(index_path, bounded)
    try:
        yield opened
    finally:
        opened.close()


class FakeBackend:
    """Enough of a keyring backend for `pick_backend`, without registering with keyring."""

    def __init__(self, priority: float | None, name: str = "fake Keyring") -> None:
        self._priority = priority
        self.name = name

    @property
    def priority(self) -> float:
        """The given priority; None means "not viable", as keyring says it."""
        if self._priority is None:
            raise RuntimeError("not viable")
        return self._priority


def fake(module: str, priority: float | None, class_name: str = "Keyring") -> FakeBackend:
    """A fake backend instance whose class claims to live in ``module``."""
    cls = type(class_name, (FakeBackend,), {"__module__": module})
    return cls(priority, f"{module.rpartition('.')[2]} {class_name}")


class TestPickBackend:
    """`pick_backend` chooses a real OS keyring, never helperd's plugin or a stand-in."""

    def test_excludes_own_plugin_chainer_fail_null_plaintext(self) -> None:
        """helperd's plugin, chainers, fail, null, plaintext, keyrings.alt and third-party
        backends such as keyrings.cryptfile (it prompts on the terminal) never win."""
        good = fake("keyring.backends.SecretService", 5)
        candidates = [
            fake("helperd_client.keyring_backend", 100, "HelperdKeyring"),
            fake("keyring.backends.chainer", 50, "ChainerBackend"),
            fake("keyring.backends.fail", 40),
            fake("keyring.backends.null", 30),
            fake("keyrings.alt.file", 20, "EncryptedKeyring"),
            fake("somevendor.backend", 15, "PlaintextKeyring"),
            fake("keyrings.cryptfile.cryptfile", 12, "CryptFileKeyring"),
            good,
            fake("keyring.backends.macOS", 4),
        ]

        assert good is pick_backend(candidates)

    def test_highest_priority_wins_and_non_viable_are_skipped(self) -> None:
        """Among real backends the highest priority wins; raising or <= 0 disqualifies."""
        best = fake("keyring.backends.kwallet", 5.1, "DBusKeyring")
        candidates = [
            fake("keyring.backends.SecretService", 5),
            best,
            fake("vendor.broken", None),
            fake("vendor.zero", 0),
        ]

        assert best is pick_backend(candidates)

    def test_none_when_only_stand_ins(self) -> None:
        """With only keyring's real fail and null backends there is no OS keyring."""
        assert None is pick_backend([fail.Keyring(), null.Keyring()])


@pytest.mark.secret_service
class TestBoundedKeyring:
    """Every call into the OS keyring returns within its deadline, and prompts never pop."""

    def test_probe_answers(self, bounded: BoundedKeyring) -> None:
        """A running, unlocked gnome-keyring passes the probe, named in the verdict."""
        assert (True, "Secret Service (GNOME Keyring) answered") == probe(bounded)

    def test_pick_backend_finds_secret_service(self, secret_service: SecretService) -> None:
        """With real backends, the Secret Service wins over fail and null."""
        candidates = [fail.Keyring(), null.Keyring(), SecretServiceBackend.Keyring()]

        assert isinstance(pick_backend(candidates), SecretServiceBackend.Keyring)

    def test_probe_without_session_bus(
        self, bounded: BoundedKeyring, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No D-Bus session bus: the probe says so instead of failing."""
        monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS")

        usable, reason = probe(bounded)

        assert not usable
        assert reason.startswith("the OS keyring (Secret Service) is not available: "), reason
        assert "DBUS_SESSION_BUS_ADDRESS" in reason

    def test_locked_collection_is_locked_error_fast(
        self, secret_service: SecretService, bounded: BoundedKeyring
    ) -> None:
        """A locked collection gives LockedError at once, and no unlock is attempted."""
        bounded.set_password("svc", "u", SecretStr("s3cret"))
        secret_service.lock_collection()

        start = time.monotonic()
        with pytest.raises(LockedError, match="helperctl unlock"):
            bounded.get_password("svc", "u")
        elapsed = time.monotonic() - start

        print(f"\nlocked-collection get: {elapsed * 1000:.1f} ms")
        assert elapsed < TIMEOUT
        assert secret_service.is_locked()

    def test_probe_counts_a_locked_collection_as_usable(
        self, secret_service: SecretService, bounded: BoundedKeyring
    ) -> None:
        """A locked collection answers the probe: usable, with a verdict that says how to unlock.

        The store choice uses this same probe, so `--store auto` keeps the keyring store.
        """
        secret_service.lock_collection()

        expected = (
            True,
            "Secret Service (GNOME Keyring) is locked (`helperctl unlock` opens it)",
        )
        assert expected == probe(bounded)
        assert secret_service.is_locked()

    def test_unlock_without_display_fails_at_once(
        self, secret_service: SecretService, bounded: BoundedKeyring
    ) -> None:
        """Asked to unlock with no desktop, the prompt cannot show: LockedError, quickly."""
        secret_service.lock_collection()

        start = time.monotonic()
        with pytest.raises(LockedError, match="could not be shown"):
            bounded.unlock()

        assert time.monotonic() - start < TIMEOUT
        assert secret_service.is_locked()

    def test_paused_keyring_is_bounded_and_stuck_calls_capped(
        self, secret_service: SecretService, bounded: BoundedKeyring
    ) -> None:
        """A frozen gnome-keyring: calls end within the deadline, then are refused at once."""
        bounded.set_password("svc", "u", SecretStr("s3cret"))
        times = []
        with secret_service.paused_keyring():
            for _ in range(bounded.max_stuck):
                start = time.monotonic()
                with pytest.raises(StoreUnavailableError, match=r"did not answer within 0\.5 s"):
                    bounded.get_password("svc", "u")
                times.append(time.monotonic() - start)
            assert bounded.max_stuck == bounded.stuck

            start = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="is hung"):
                bounded.get_password("svc", "u")
            refused = time.monotonic() - start

        print(
            f"\npaused keyring: calls ended after {times} s; refusal took {refused * 1000:.2f} ms"
        )
        assert all(TIMEOUT * 0.9 <= took < TIMEOUT * 5 for took in times)
        assert refused < 0.05
        deadline = time.monotonic() + 5
        while bounded.stuck and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 0 == bounded.stuck
        assert SecretStr("s3cret") == bounded.get_password("svc", "u")

    def test_probe_of_paused_keyring(
        self, secret_service: SecretService, backend: SecretServiceBackend.Keyring
    ) -> None:
        """A frozen gnome-keyring fails the probe within the bound."""
        with secret_service.paused_keyring():
            start = time.monotonic()
            keyring = BoundedKeyring(backend, timeout=TIMEOUT, max_stuck=1)
            usable, reason = probe(keyring)
            elapsed = time.monotonic() - start
            keyring.close()  # as the stuck call ends

        assert not usable
        assert "did not answer within 0.5 s" in reason
        assert elapsed < TIMEOUT * 5


@pytest.mark.secret_service
class TestKeyringStore:
    """Secrets in gnome-keyring, public facts in a private index file."""

    @pytest.mark.parametrize("password", DIFFICULT, ids=range(len(DIFFICULT)))
    def test_round_trip(
        self, store: KeyringStore, secret_service: SecretService, password: str
    ) -> None:
        """put, password, replace and remove keep any text intact, in the Secret Service."""
        held = record("repo")

        store.put(held, SecretStr(password))

        assert [held] == list(store.records())
        assert password == store.password(held).get_secret_value()
        assert password == secret_service.read_secret("helperd:repo", "alice")

        store.put(held, SecretStr(password + " v2"))

        assert password + " v2" == store.password(held).get_secret_value()
        assert 1 == secret_service.count_items({"service": "helperd:repo", "username": "alice"})

        store.remove([held.key])

        assert [] == list(store.records())
        assert None is secret_service.read_secret("helperd:repo", "alice")
        with pytest.raises(NotFoundError):
            store.password(held)

    def test_secret_tool_reads_it(self, store: KeyringStore, secret_service: SecretService) -> None:
        """Another Secret Service client (libsecret's secret-tool) reads the same secret."""
        secret_tool = require_tool("secret-tool")
        password = "pä$$ wörd\nline two"
        store.put(record("repo", "bob", Kind.TOKEN), SecretStr(password))

        result = subprocess.run(
            [secret_tool, "lookup", "service", "helperd:repo", "username", "bob"],
            env=secret_service.environ(),
            cwd=secret_service.root,  # where a core dump would land
            capture_output=True,
            timeout=10,
            check=True,
        )

        assert password.encode() == result.stdout

    def test_secret_gone_from_the_keyring_is_no_record(
        self, store: KeyringStore, secret_service: SecretService
    ) -> None:
        """A secret removed from the OS keyring behind helperd's back: not found, with a
        message that starts `no record` as every not-found does, and says how to fix it."""
        secret_tool = require_tool("secret-tool")
        held = record("repo")
        store.put(held, SecretStr("pw"))
        subprocess.run(
            [secret_tool, "clear", "service", "helperd:repo", "username", "alice"],
            env=secret_service.environ(),
            cwd=secret_service.root,
            capture_output=True,
            timeout=10,
            check=True,
        )

        with pytest.raises(NotFoundError) as raised:
            store.password(held)

        assert raised.value.message.startswith("no record"), raised.value.message
        assert "helperctl set" in raised.value.message

    def test_secret_in_no_file(
        self, store: KeyringStore, secret_service: SecretService, home: Path, index_path: Path
    ) -> None:
        """No password appears in any file of helperd's home or of gnome-keyring's folders."""
        for number, password in enumerate(DIFFICULT):
            store.put(record(f"repo{number}"), SecretStr(password))
        store.put(record("https://gen.example/", "carl", Kind.GENERIC), SecretStr("gen-s3cret"))

        files = [
            path
            for root in (home, secret_service.root)
            for path in root.rglob("*")
            if path.is_file() and not path.is_symlink()
        ]
        contents = {path: path.read_bytes() for path in files}
        assert index_path in contents
        for password in [*DIFFICULT, "gen-s3cret"]:
            for path, data in contents.items():
                assert password.encode() not in data, f"a password is in {path}"
        assert 0o600 == stat.S_IMODE(index_path.stat().st_mode)
        assert 0o700 == stat.S_IMODE(home.stat().st_mode)

    def test_reopen_keeps_data(
        self, store: KeyringStore, index_path: Path, bounded: BoundedKeyring
    ) -> None:
        """A new store on the same index serves the same records and secrets."""
        held = [record("one"), record("two", "__token__", Kind.TOKEN)]
        for number, item in enumerate(held):
            store.put(item, SecretStr(f"pw{number}"))
        store.close()

        reopened = KeyringStore(index_path, bounded)
        try:
            assert held == list(reopened.records())
            assert ["pw0", "pw1"] == [reopened.password(r).get_secret_value() for r in held]
        finally:
            reopened.close()

    def test_second_store_on_same_index_refused(
        self, store: KeyringStore, index_path: Path, bounded: BoundedKeyring
    ) -> None:
        """The index's file lock keeps a second store (a second daemon) out."""
        with pytest.raises(StoreUnavailableError, match="another helperd"):
            KeyringStore(index_path, bounded)

    def test_generic_entry_where_keyring_puts_it(
        self, store: KeyringStore, backend: SecretServiceBackend.Keyring
    ) -> None:
        """A generic entry lives under its own service and username: plain keyring reads it."""
        service = "https://files.example/simple/"
        held = record(service, "bob", Kind.GENERIC)

        store.put(held, SecretStr("gen pw ✓"))

        assert "gen pw ✓" == backend.get_password(service, "bob")
        assert None is backend.get_password("helperd:" + service, "bob")
        assert [held] == list(store.records())

    def test_kind_change_moves_the_entry(
        self, store: KeyringStore, backend: SecretServiceBackend.Keyring
    ) -> None:
        """A generic record replaced by a repository record leaves no entry behind."""
        store.put(record("pypi", "alice", Kind.GENERIC), SecretStr("old"))

        store.put(record("pypi", "alice", Kind.BASIC), SecretStr("new"))

        assert None is backend.get_password("pypi", "alice")
        assert "new" == backend.get_password("helperd:pypi", "alice")

    def test_foreign_password(
        self, store: KeyringStore, backend: SecretServiceBackend.Keyring
    ) -> None:
        """An entry written before helperd, by keyring itself, is found by the fallback."""
        backend.set_password("legacy-tool", "carol", "legacy ✓\npw")
        store.put(record("repo"), SecretStr("mine"))

        by_user = store.foreign_password("legacy-tool", "carol")
        any_user = store.foreign_password("legacy-tool", None)

        assert ("carol", SecretStr("legacy ✓\npw")) == by_user
        assert ("carol", SecretStr("legacy ✓\npw")) == any_user
        assert None is store.foreign_password("absent-tool", None)
        assert None is store.foreign_password("legacy-tool", "dave")
        assert None is store.foreign_password("helperd:repo", "alice")

    def test_foreign_delete(
        self, store: KeyringStore, backend: SecretServiceBackend.Keyring
    ) -> None:
        """An entry helperd does not hold can be deleted; helperd's own services cannot."""
        backend.set_password("legacy-tool", "carol", "legacy")
        store.put(record("repo"), SecretStr("mine"))

        assert store.foreign_delete("legacy-tool", "carol")
        assert not store.foreign_delete("legacy-tool", "carol")
        assert not store.foreign_delete("helperd:repo", "alice")
        assert None is backend.get_password("legacy-tool", "carol")
        assert "mine" == store.password(record("repo")).get_secret_value()

    def test_reserved_service_refused(self, store: KeyringStore) -> None:
        """A generic entry cannot take a service in helperd's own namespace."""
        with pytest.raises(BadRequestError, match="reserved"):
            store.put(record("helperd:repo", "alice", Kind.GENERIC), SecretStr("x"))

    def test_lock_refused_with_working_advice(
        self, store: KeyringStore, secret_service: SecretService
    ) -> None:
        """helperd does not lock the OS keyring for the whole session; the advice given works."""
        with pytest.raises(BadRequestError, match="secret-tool lock") as raised:
            store.lock()
        advice = raised.value.message.rpartition("with: ")[2].split()

        # libsecret 0.20.5 (Debian 12) crashes after locking: judge by the lock, not the status.
        subprocess.run(
            [require_tool("secret-tool"), *advice[1:]],
            env=secret_service.environ(),
            cwd=secret_service.root,  # where a core dump would land
            capture_output=True,
            timeout=10,
            check=False,
        )

        assert StoreState.LOCKED == store.state

    def test_locked_collection(
        self, store: KeyringStore, secret_service: SecretService, index_path: Path
    ) -> None:
        """Locked: state says so, reads and writes give LockedError fast, nothing changes."""
        held = record("repo")
        store.put(held, SecretStr("s3cret"))
        before = index_path.read_bytes()
        secret_service.lock_collection()

        assert StoreState.LOCKED == store.state
        start = time.monotonic()
        with pytest.raises(LockedError) as raised:
            store.password(held)
        elapsed = time.monotonic() - start
        with pytest.raises(LockedError):
            store.put(record("other"), SecretStr("other"))
        with pytest.raises(LockedError):
            store.remove([held.key])
        with pytest.raises(LockedError):
            store.foreign_password("legacy-tool", None)
        with pytest.raises(LockedError):
            store.unlock(None)

        print(f"\nkeyring store, locked-collection password(): {elapsed * 1000:.1f} ms")
        assert elapsed < TIMEOUT
        assert "s3cret" not in raised.value.message
        assert before == index_path.read_bytes()
        assert [held] == list(store.records())

        secret_service.unlock_collection()

        assert StoreState.UNLOCKED == store.state
        assert "s3cret" == store.password(held).get_secret_value()

    def test_paused_keyring(self, store: KeyringStore, secret_service: SecretService) -> None:
        """A frozen keyring: the store answers store_unavailable in time, then recovers."""
        held = record("repo")
        store.put(held, SecretStr("s3cret"))

        with secret_service.paused_keyring():
            start = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="did not answer"):
                store.password(held)
            with pytest.raises(StoreUnavailableError):
                store.put(record("other"), SecretStr("other"))
            with pytest.raises(StoreUnavailableError, match="is hung"):
                store.remove([held.key])
            elapsed = time.monotonic() - start
            assert [held] == list(store.records())
            assert StoreState.UNLOCKED == store.state  # can't tell: the index still serves

        assert elapsed < 2 * TIMEOUT * 5
        deadline = time.monotonic() + 5
        while store.keyring.stuck and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "s3cret" == store.password(held).get_secret_value()

    def test_failed_index_write_leaves_index_alone(
        self, store: KeyringStore, index_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """put fails when the index cannot be written; the old index still holds, no dangling."""
        store.put(record("repo"), SecretStr("first"))

        def full_disk(path: Path, data: bytes) -> None:
            raise StoreUnavailableError(f"could not write {path}: No space left on device")

        monkeypatch.setattr(keyring_store, "write_atomic", full_disk)
        with pytest.raises(StoreUnavailableError, match="No space"):
            store.put(record("new"), SecretStr("second"))

        assert [record("repo")] == list(store.records())
        assert_no_dangling(store)

    def test_damaged_index(self, index_path: Path, bounded: BoundedKeyring) -> None:
        """A damaged index is refused with its path, never with its content."""
        index_path.parent.mkdir(mode=0o700, exist_ok=True)
        index_path.write_text('{"format": "something-else", "records": ["quoted-content"]}')
        index_path.chmod(0o600)

        with pytest.raises(StoreUnavailableError, match="not a helperd keyring index") as raised:
            KeyringStore(index_path, bounded)

        assert "quoted-content" not in raised.value.message


CHILD = """
import json, os, signal, sys
from pydantic import SecretStr
from keyring.backends import SecretService
from helperd.core.record import Record
from helperd.stores import keyring_store
from helperd.stores.keyring_store import KeyringStore
from helperd.stores.os_keyring import BoundedKeyring

plan = json.load(sys.stdin)
store = KeyringStore(keyring_store.Path(plan["index"]), BoundedKeyring(SecretService.Keyring()))
for item, password in plan["before"]:
    store.put(Record.model_validate(item), SecretStr(password))

def crash(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if plan["crash"] == "put":  # the secret is written; kill -9 before the index is
    keyring_store.write_atomic = crash
    item, password = plan["then"]
    store.put(Record.model_validate(item), SecretStr(password))
else:  # the index is written; kill -9 before the secret is deleted
    BoundedKeyring.delete_password = crash
    store.remove([tuple(key) for key in plan["then"]])
sys.exit("not killed")
"""


@pytest.mark.secret_service
class TestCrashSafety:
    """kill -9 between the two writes never leaves an index entry without its secret."""

    def run_child(self, secret_service: SecretService, plan: dict[str, object]) -> None:
        """Run the plan in a child process that kills itself with SIGKILL mid-way."""
        child = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=json.dumps(plan).encode(),
            env=secret_service.environ(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert -signal.SIGKILL == child.returncode, child.stderr.decode()

    def test_killed_between_secret_and_index(
        self, secret_service: SecretService, index_path: Path, bounded: BoundedKeyring
    ) -> None:
        """put killed after the secret: the store opens, the old entries all have secrets."""
        kept, lost = record("kept"), record("lost")
        self.run_child(
            secret_service,
            {
                "index": str(index_path),
                "before": [[kept.model_dump(mode="json"), "kept pw"]],
                "crash": "put",
                "then": [lost.model_dump(mode="json"), "lost pw"],
            },
        )

        store = KeyringStore(index_path, bounded)
        try:
            assert [kept] == list(store.records())
            assert_no_dangling(store)
            # The orphan secret is harmless, and the next put of that record takes its place.
            assert "lost pw" == secret_service.read_secret(*location(lost))
            store.put(lost, SecretStr("lost pw, again"))
            assert "lost pw, again" == store.password(lost).get_secret_value()
            assert 1 == secret_service.count_items({"service": "helperd:lost"})
        finally:
            store.close()

    def test_killed_replacing_a_record(
        self, secret_service: SecretService, index_path: Path, bounded: BoundedKeyring
    ) -> None:
        """A replace killed after the secret: the entry still has a secret (the new one)."""
        held = record("repo")
        self.run_child(
            secret_service,
            {
                "index": str(index_path),
                "before": [[held.model_dump(mode="json"), "old pw"]],
                "crash": "put",
                "then": [held.model_copy(update={"urls": ()}).model_dump(mode="json"), "new pw"],
            },
        )

        store = KeyringStore(index_path, bounded)
        try:
            assert [held] == list(store.records())
            assert "new pw" == store.password(held).get_secret_value()
        finally:
            store.close()

    def test_killed_between_index_and_secret(
        self, secret_service: SecretService, index_path: Path, bounded: BoundedKeyring
    ) -> None:
        """remove killed after the index: the store opens without it, the rest intact."""
        gone, kept = record("gone"), record("kept", "__token__", Kind.TOKEN)
        self.run_child(
            secret_service,
            {
                "index": str(index_path),
                "before": [
                    [gone.model_dump(mode="json"), "gone pw"],
                    [kept.model_dump(mode="json"), "kept pw"],
                ],
                "crash": "remove",
                "then": [list(gone.key)],
            },
        )

        store = KeyringStore(index_path, bounded)
        try:
            assert [kept] == list(store.records())
            assert_no_dangling(store)
            assert "gone pw" == secret_service.read_secret(*location(gone))  # an orphan
        finally:
            store.close()


@pytest.mark.secret_service
def test_child_does_not_inherit_display(secret_service: SecretService) -> None:
    """The environment handed to subprocesses points at the private bus and has no display."""
    env = secret_service.environ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "PATH": "/bin"})

    assert {"DBUS_SESSION_BUS_ADDRESS": secret_service.address, "PATH": "/bin"} == env
    assert os.environ["DBUS_SESSION_BUS_ADDRESS"] == secret_service.address
