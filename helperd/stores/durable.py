"""Durable, atomic, private files: the one way helperd writes anything to disk.

A write goes to a fresh temporary file in the same directory (0600, ``O_EXCL``, never through
a symlink), is fsynced, renamed over the target, and the directory is fsynced, so that after a
crash or power loss the target holds either the old bytes or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from helperd_client.errors import StoreUnavailableError
from helperd_client.trust import folder_problem

__all__ = [
    "FileLock",
    "NotDurableError",
    "check_private_dir",
    "fsync_dir",
    "open_for_append",
    "read_private",
    "remove_stale_temps",
    "sync_files",
    "write_at",
    "write_atomic",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class NotDurableError(StoreUnavailableError):
    """`write_atomic` renamed the new file into place, then the folder's fsync failed: the new
    file is what a reader finds now, and a power loss may bring the old one back. ``reason``
    says why the fsync failed."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path} was written, but its folder could not be synced ({reason}): a power loss"
            " may bring back the file before"
        )
        self.reason = reason


def write_atomic(path: Path, data: bytes | Sequence[bytes], *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (bytes, or chunks written one after another, never
    joined in memory) atomically and durably, with permission bits ``mode``.

    Raises:
        StoreUnavailableError: the write failed (full disk, I/O error, permissions, a
            symbolic link at ``path``); the old file is intact, and no temporary file is
            left behind.
        NotDurableError: only the folder's fsync after the rename failed: the new file is
            in place, but may not survive a power loss.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    try:
        if path.is_symlink():
            raise StoreUnavailableError(f"{path} is a symbolic link: refusing to replace it")
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:  # nothing was created: whatever sits at tmp is not ours to remove
        raise StoreUnavailableError(f"could not write {path}: {exc.strerror or exc}") from None
    try:
        try:
            os.fchmod(fd, mode)  # exact, whatever the umask
            for chunk in [data] if isinstance(data, bytes) else data:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreUnavailableError(f"could not write {path}: {exc.strerror or exc}") from None
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        raise NotDurableError(path, exc.strerror or str(exc)) from None


def open_for_append(path: Path) -> int:
    """Open an existing file for `write_at` (never through a symbolic link).

    Raises:
        OSError: it cannot be opened.
    """
    return os.open(path, os.O_WRONLY | _NOFOLLOW | _CLOEXEC)


def write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (not durable until fsynced).

    Raises:
        OSError: the write failed; part of ``data`` may have been written.
    """
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def sync_files(*paths: Path) -> None:
    """Make what ``paths`` hold now durable, and their folders' entries (a file missing or
    unreadable is passed over: this only makes durable what is already there)."""
    folders = set()
    for path in paths:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            folders.add(path.parent)
    for folder in folders:
        with contextlib.suppress(OSError):
            fsync_dir(folder)


def remove_stale_temps(path: Path) -> None:
    """Delete temporary files a killed writer of ``path`` left behind (call with its lock held).

    They hold no more than ``path`` itself would (ciphertext, or an index without secrets),
    but nothing else would ever remove them.
    """
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private(path: Path) -> bytes | None:
    """Read a file helperd owns, or return None when it does not exist.

    Raises:
        StoreUnavailableError: it is a symlink or not a regular file, another user owns it,
            or it cannot be read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreUnavailableError(f"{path} is a symbolic link: refusing to read it") from None
        raise StoreUnavailableError(f"could not read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreUnavailableError(f"{path} is not a regular file")
        if info.st_uid != os.getuid():
            raise StoreUnavailableError(f"{path} belongs to another user (uid {info.st_uid})")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise StoreUnavailableError(f"could not read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def check_private_dir(directory: Path, *, create: bool = True) -> None:
    """Make sure ``directory`` is ours and private (0700), creating it when missing.

    A directory created here is 0700 from the start (no window with looser modes). An existing
    one that another user owns, or that group or others can write, is refused, never chmod-ed:
    someone else may be able to swap files in it.

    Raises:
        StoreUnavailableError: the directory is unsafe, not a directory, or cannot be made.
    """
    if create:
        try:
            directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreUnavailableError(
                f"could not create {directory}: {exc.strerror or exc}"
            ) from None
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise StoreUnavailableError(f"cannot use {directory}: {exc.strerror or exc}") from None
    # The same rule every client applies to the socket's folder (helperd_client.trust).
    problem = folder_problem(info, str(directory))
    if problem is not None:
        fix = f"; run: chmod 700 {directory}" if "written by group" in problem else ""
        raise StoreUnavailableError(f"{problem}: refusing to use it{fix}")


LOCK_WAIT = 1.0
"""Seconds a store's lock is waited for: the writer process of a daemon just killed may still
be finishing its write (it ends when it sees the daemon gone)."""


def _flock_within(fd: int, seconds: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, trying for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


class FileLock:
    """An exclusive OS lock (``flock``) on a lock file, held until `release`.

    Keeps two daemons from writing one store. The lock dies with the process, so a
    ``kill -9`` never leaves a stale lock behind.
    """

    def __init__(self, path: Path, *, held: int | None = None) -> None:
        self.path = path
        if held is not None:
            # The writer process's: the daemon that started it holds the lock and handed over
            # its descriptor, which shares the lock (helperd.daemon.writer).
            self._fd: int | None = held
            return
        flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise StoreUnavailableError(f"could not open {path}: {exc.strerror or exc}") from None
        if not _flock_within(self._fd, LOCK_WAIT):
            os.close(self._fd)
            self._fd = None
            raise StoreUnavailableError(
                f"another helperd is using this store ({path} is locked); stop it first"
            ) from None

    def fileno(self) -> int | None:
        """The descriptor that holds the lock (None once released)."""
        return self._fd

    def release(self) -> None:
        """Let go of the lock (closing the file releases it, once no process that was handed
        its descriptor still has it open)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
