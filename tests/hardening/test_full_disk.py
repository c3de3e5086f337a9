"""A full disk: ``set`` fails with a clear ``store_unavailable``, the store is intact, then works.

The daemon's home (socket, log and store) is a small tmpfs the test mounts, so "full" is
real: the kernel answers ENOSPC when a write finds no block, or when the temporary file of a
whole write finds no inode. Needs root and ``mount``: skipped otherwise, failed in CI.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from errno import ENOSPC
from pathlib import Path
from typing import BinaryIO

import pytest
from helperd_client import Client, StoreUnavailableError

from tests.hardening import Figures, Spawn, require_root, timeout_for
from tests.support.tools import in_ci, require_tool

pytestmark = pytest.mark.timeout(timeout_for(120, 300))


def run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a mount command; its failure is the caller's to judge."""
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def small_fs(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A fresh tmpfs (mode 0700, root's) on a short path; unmounted and removed after.

    Its options come from ``@pytest.mark.parametrize("small_fs", [...], indirect=True)``,
    else ``size=1m``.
    """
    require_root("mounts a tmpfs")
    mount = require_tool("mount")
    umount = require_tool("umount")
    options = getattr(request, "param", "size=1m")
    folder = Path(tempfile.mkdtemp(prefix="hdfs", dir="/tmp"))
    done = run(mount, "-t", "tmpfs", "-o", f"{options},mode=0700", "tmpfs", str(folder))
    if done.returncode != 0:
        folder.rmdir()
        message = f"cannot mount a tmpfs: {done.stderr.strip()}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield folder
    finally:
        for _ in range(50):  # the daemon's last files close as it exits
            if run(umount, str(folder)).returncode == 0:
                break
            time.sleep(0.1)
        else:
            run(umount, "-l", str(folder))
        folder.rmdir()


def fill(folder: Path) -> Path:
    """Fill the file system until the kernel says ENOSPC; return the filler file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (65_536, 4_096, 1):
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b"\0" * size)
    probe = folder / "probe"
    with probe.open("wb", buffering=0) as handle:
        assert ENOSPC == write_errno(handle, b"\0" * 4_096), "the disk is not full"
    probe.unlink()
    return filler


def write_errno(handle: BinaryIO, data: bytes) -> int:
    """The errno with which writing ``data`` fails (0 when it does not)."""
    try:
        handle.write(data)
    except OSError as exc:
        return exc.errno or 0
    return 0


def use_up_inodes(folder: Path) -> list[Path]:
    """Create empty files until the file system has no inode left; return them."""
    made: list[Path] = []
    while True:
        path = folder / f"inode{len(made)}"
        try:
            path.touch()
        except OSError as exc:
            if exc.errno != ENOSPC:
                raise
            return made
        made.append(path)


def temporaries(folder: Path) -> list[str]:
    """The store's temporary files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_full_disk_set_fails_cleanly_then_recovers(
    spawn: Spawn, small_fs: Path, figures: Figures
) -> None:
    """On a full disk: store_unavailable saying so, the store byte-identical, then success.

    The journal's last page may still take a few entries: sets go on until one finds no room
    (the append), then the next one (which writes the whole file) fails the same way."""
    daemon = spawn(home=small_fs)
    try:
        with daemon.client() as client:
            for i in range(5):
                client.set(f"repo{i}", f"pw{i}", username="u")
            store = small_fs / "store.enc"
            before = store.read_bytes()
            filler = fill(small_fs)
            stored, refused = set_until_full(client)
            figures("full disk: sets that still fit in the journal's last page", stored)
            for message in (refused, whole_write_error(client)):
                figures("full disk: the set answered", message)
                assert "No space left on device" in message
                assert str(store) in message
            assert before == store.read_bytes(), "the store file changed"
            assert [] == temporaries(small_fs), "a temporary file was left behind"
            assert stored == client.get(name="repo0").password, "reads still work"
            assert daemon.process.poll() is None
            filler.unlink()
            client.set("repo0", "a new password", username="u")
            assert "a new password" == client.get(name="repo0").password
    finally:
        daemon.stop()
    again = spawn(home=small_fs)
    try:
        with again.client() as client:
            assert "a new password" == client.get(name="repo0").password
            assert 5 == len(client.list())
    finally:
        again.stop()


def set_until_full(client: Client) -> tuple[str, str]:
    """Set repo0 until a set is refused: the last password stored, and the refusal's message
    (a 4 KiB page of the journal holds at most a few dozen entries)."""
    stored = "pw0"
    for attempt in range(500):
        try:
            client.set("repo0", f"fits {attempt}", username="u")
        except StoreUnavailableError as refused:
            return stored, refused.message
        stored = f"fits {attempt}"
    raise AssertionError("500 sets on a full disk, and none was refused")


def whole_write_error(client: Client) -> str:
    """The message of a set that must write the whole file (the append before it failed)."""
    with pytest.raises(StoreUnavailableError) as caught:
        client.set("repo0", "no room for the whole file either", username="u")
    return caught.value.message


@pytest.mark.parametrize("small_fs", ["size=1m,nr_inodes=64"], indirect=True)
def test_no_inode_left_set_fails_cleanly_then_recovers(
    spawn: Spawn, small_fs: Path, figures: Figures
) -> None:
    """No inode left for the temporary file of a whole write (the first write after the
    journal was lost: an append needs none): store_unavailable, store intact, then success."""
    first = spawn(home=small_fs)
    try:
        with first.client() as client:
            client.set("repo", "old", username="u")
    finally:
        first.stop()  # which folds the journal into the file
    (small_fs / "store.enc.journal").unlink()
    daemon = spawn(home=small_fs)
    try:
        with daemon.client() as client:
            assert "old" == client.get(name="repo").password
            store = small_fs / "store.enc"
            before = store.read_bytes()
            made = use_up_inodes(small_fs)
            with pytest.raises(StoreUnavailableError) as caught:
                client.set("repo", "new", username="u")
            figures("no inode left: the set answered", caught.value.message)
            assert "No space left on device" in caught.value.message
            assert before == store.read_bytes()
            assert "old" == client.get(name="repo").password
            for path in made:
                path.unlink()
            client.set("repo", "new", username="u")
            assert "new" == client.get(name="repo").password
    finally:
        daemon.stop()
