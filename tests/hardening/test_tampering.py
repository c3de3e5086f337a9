"""Tampering: damaged, truncated, rolled-back and symlinked stores and sockets.

A damaged store file is refused with a clear ``store_unavailable`` that names it and says it
was left untouched, and it is never written to (a later ``set`` is refused too), so a backup
can still be recovered. An older copy swapped in is not detected (docs/security.md says why:
only the user's own UID can do it); the test pins that it opens as what it is. Symlinks in
place of the store, its lock or the socket are refused, and their targets never written.
tests/integration/test_passphrase.py covers one flipped byte and one truncation of a
passphrase store; this file covers the key-file store at many offsets.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from helperd_client import BadRequestError, Client, StoreUnavailableError

from helperd.testing import Daemon
from tests.hardening import Spawn, timeout_for

pytestmark = pytest.mark.timeout(timeout_for(120, 300))

RECORDS = {f"repo{i}": f"secret-{i}-Tq3" for i in range(3)}


@pytest.fixture
def good_store(spawn: Spawn, home: Path) -> bytes:
    """A key-file store holding `RECORDS`, its daemon stopped; yields the file's bytes."""
    daemon = spawn()
    with daemon.client() as client:
        for name, secret in RECORDS.items():
            client.set(name, secret, username="u")
    daemon.stop()
    return (home / "store.enc").read_bytes()


def layout(data: bytes) -> dict[str, int]:
    """Offsets of interest in a store file: header, newline, ciphertext, tag."""
    newline = data.index(b"\n")
    return {
        "first byte": 0,
        "inside the header": newline // 2,
        "last header byte": newline - 1,
        "the newline": newline,
        "first ciphertext byte": newline + 1,
        "middle of the ciphertext": (newline + 1 + len(data) - 16) // 2,
        "first tag byte": len(data) - 16,
        "last byte": len(data) - 1,
    }


def header_field(data: bytes, name: str) -> int:
    """The offset of the first character of header field ``name``'s value."""
    return data.index(f'"{name}":'.encode()) + len(name) + 3 + (name != "generation")


def assert_refused_and_untouched(daemon: Daemon, store: Path, expected: str = "untouched") -> str:
    """Reads and writes are refused with a message naming the store; the file never changes."""
    before = hashlib.sha256(store.read_bytes()).hexdigest() if store.exists() else None
    with Client(daemon.socket, timeout=10.0) as client:
        with pytest.raises(StoreUnavailableError) as caught:
            client.get(name="repo0")
        message = caught.value.message
        with pytest.raises(StoreUnavailableError):
            client.set("repo0", "overwrite attempt", username="u")
        with pytest.raises(StoreUnavailableError):
            client.list()
    assert str(store) in message
    assert expected in message
    for secret in RECORDS.values():
        assert secret not in message
    after = hashlib.sha256(store.read_bytes()).hexdigest() if store.exists() else None
    assert before == after, "the store file was written"
    return message


WHERE = [
    "first byte",
    "inside the header",
    "last header byte",
    "the newline",
    "first ciphertext byte",
    "middle of the ciphertext",
    "first tag byte",
    "last byte",
]
FIELDS = ["aead", "check", "generation", "nonce", "salt"]


def test_flipped_byte_is_refused_and_never_written(
    spawn: Spawn, home: Path, good_store: bytes
) -> None:
    """One flipped bit anywhere (header fields, newline, ciphertext, tag) is refused.

    Each damaged variant is in place before its daemon starts (the daemon opens a key-file
    store at start, for its certificate files), and the daemon keeps running and refusing.
    """
    offsets = layout(good_store)
    offsets |= {f"header field {f}": header_field(good_store, f) for f in FIELDS}
    store = home / "store.enc"
    for where, offset in offsets.items():
        data = bytearray(good_store)
        data[offset] ^= 0x01
        store.write_bytes(bytes(data))
        daemon = spawn()
        try:
            assert_refused_and_untouched(daemon, store)
        except (AssertionError, pytest.fail.Exception) as exc:
            raise AssertionError(f"a bit flipped at {where} (offset {offset})") from exc
        daemon.stop()
    store.write_bytes(good_store)
    with spawn().client() as client:
        assert RECORDS["repo0"] == client.get(name="repo0").password, "the good file opens"


def test_truncated_store_is_refused_and_never_written(
    spawn: Spawn, home: Path, good_store: bytes
) -> None:
    """A store cut anywhere, down to an empty file, is refused, never taken for missing."""
    newline = good_store.index(b"\n")
    lengths = {
        "nothing": 0,
        "one byte": 1,
        "header without newline": newline,
        "header only": newline + 1,
        "half": len(good_store) // 2,
        "all but the tag": len(good_store) - 16,
        "all but one byte": len(good_store) - 1,
    }
    store = home / "store.enc"
    for keep, length in lengths.items():
        store.write_bytes(good_store[:length])
        daemon = spawn()
        try:
            assert_refused_and_untouched(daemon, store)
        except (AssertionError, pytest.fail.Exception) as exc:
            raise AssertionError(f"a store cut to {keep} ({length} bytes)") from exc
        daemon.stop()


def test_appended_bytes_are_refused(spawn: Spawn, home: Path, good_store: bytes) -> None:
    """Bytes added after the tag make the file fail its integrity check."""
    store = home / "store.enc"
    store.write_bytes(good_store + b"\0")
    daemon = spawn()
    assert "integrity" in assert_refused_and_untouched(daemon, store)


def test_older_copy_swapped_in_opens_as_what_it_is(spawn: Spawn, home: Path) -> None:
    """Rollback is not detected (out of scope: docs/security.md); the old copy opens as itself.

    The old copy is a valid store: it is served as it was, later records are absent, and the
    next write carries on from it. This pins the behaviour until rollback detection exists.
    """
    store, journal = home / "store.enc", home / "store.enc.journal"
    daemon = spawn()
    with daemon.client() as client:
        client.set("repo", "v1", username="u")
        old = store.read_bytes(), journal.read_bytes()  # the store is both files
        client.set("repo", "v2", username="u")
        client.set("later", "added after the copy", username="u")
    daemon.stop()
    store.write_bytes(old[0])
    journal.write_bytes(old[1])
    again = spawn()
    with again.client() as client:
        assert "v1" == client.get(name="repo").password
        assert ["repo"] == [r.name for r in client.list()]
        client.set("repo", "v3", username="u")
        assert "v3" == client.get(name="repo").password


def test_symlink_in_place_of_the_store_is_refused(
    spawn: Spawn, home: Path, good_store: bytes, tmp_path: Path
) -> None:
    """store.enc as a symlink (even to a valid store) is refused; the target is not written."""
    target = tmp_path / "elsewhere.enc"
    target.write_bytes(good_store)
    store = home / "store.enc"
    store.unlink()
    store.symlink_to(target)
    daemon = spawn()
    assert_refused_and_untouched(daemon, store, expected="symbolic link")
    assert store.is_symlink()
    assert good_store == target.read_bytes()


def test_dangling_symlink_in_place_of_the_store_is_never_followed(
    spawn: Spawn, home: Path, tmp_path: Path
) -> None:
    """A key-file store whose store.enc dangles: refused, and the target is never created."""
    target = tmp_path / "created-through-the-link.enc"
    store = home / "store.enc"
    store.symlink_to(target)
    daemon = spawn()
    assert_refused_and_untouched(daemon, store, expected="symbolic link")
    assert not target.exists()
    assert store.is_symlink()


def test_passphrase_store_init_never_writes_through_a_symlink(
    spawn: Spawn, home: Path, tmp_path: Path
) -> None:
    """init with a dangling store.enc symlink is refused; unlock too; no target created."""
    target = tmp_path / "created-through-the-link.enc"
    store = home / "store.enc"
    store.symlink_to(target)
    daemon = spawn(key=False)
    with daemon.client() as client:
        with pytest.raises(BadRequestError, match="already exists"):
            client.init("a passphrase")
        with pytest.raises(StoreUnavailableError, match="symbolic link"):
            client.unlock("a passphrase")
    assert not target.exists()
    assert store.is_symlink()


def test_symlink_in_place_of_the_lock_file_stops_the_start(
    spawn: Spawn, home: Path, good_store: bytes, tmp_path: Path
) -> None:
    """store.enc.lock as a symlink: the daemon exits 1 saying why; the target is untouched."""
    target = tmp_path / "lock-target"
    target.write_bytes(b"precious")
    (home / "store.enc.lock").unlink(missing_ok=True)
    (home / "store.enc.lock").symlink_to(target)
    daemon = spawn(wait=False)
    assert 1 == daemon.process.wait(15)
    assert "store.enc.lock" in daemon.log.read_text()
    assert b"precious" == target.read_bytes()
    assert good_store == (home / "store.enc").read_bytes()


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_symlink_in_place_of_the_socket_stops_the_start(
    spawn: Spawn, home: Path, tmp_path: Path, dangling: bool
) -> None:
    """helperd.sock as a symlink: exit 1, "not a socket"; the link and its target stay."""
    target = tmp_path / "socket-target"
    if not dangling:
        target.write_bytes(b"precious")
    link = home / "helperd.sock"
    link.symlink_to(target)
    daemon = spawn(wait=False)
    assert 1 == daemon.process.wait(15)
    assert f"{link} exists and is not a socket" in daemon.log.read_text()
    assert link.is_symlink()
    assert (b"precious" == target.read_bytes()) if not dangling else not target.exists()


def test_symlinked_socket_folder_stops_the_start(spawn: Spawn, home: Path, tmp_path: Path) -> None:
    """A socket folder that is a symlink (to a private folder) is refused: exit 1."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = home / "run"
    link.symlink_to(real)
    daemon = spawn(wait=False, env={"HELPERD_SOCKET": str(link / "helperd.sock")})
    assert 1 == daemon.process.wait(15)
    assert "is a symbolic link" in daemon.log.read_text()
    assert [] == os.listdir(real)
