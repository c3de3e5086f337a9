"""The client-certificate files: ``NAME.pem`` in a private folder on a tmpfs.

helperd.core.certs decides when a file is written or removed; this module does the I/O.
A file holds a private key in plaintext, so the rules are strict: the folder and the one
above it must be real directories owned by this user with no access for group or others
(0700), checked before every write and never chmod-ed into shape; a file is written 0600
through an ``O_EXCL`` temporary file and a rename (helperd.stores.durable); and the folder
must sit on a tmpfs (memory, never a disk) unless config.toml sets ``cert_files_on_disk``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from helperd_client.errors import StoreUnavailableError
from helperd_client.trust import folder_problem
from pydantic import SecretStr

from helperd.core.record import NAME_PATTERN
from helperd.stores.durable import write_atomic

__all__ = ["FolderCertFiles", "filesystem_type"]

SUFFIX = ".pem"
MOUNTINFO = Path("/proc/self/mountinfo")


class FolderCertFiles:
    """`helperd.core.certs.CertFiles` in one folder.

    Args:
        folder: where the files go (see helperd.core.config.cert_folder).
        on_disk: write them even when the folder is not on a tmpfs.
        mountinfo: the mount table to read the file system type from (tests give another).
    """

    def __init__(self, folder: Path, *, on_disk: bool = False, mountinfo: Path = MOUNTINFO) -> None:
        self.folder = Path(os.path.abspath(folder))
        self.on_disk = on_disk
        self._mountinfo = mountinfo

    def path(self, name: str) -> Path:
        """The absolute path of ``name``'s file."""
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError("not a repository name")  # never a path out of the folder
        return self.folder / f"{name}{SUFFIX}"

    def problem(self) -> str | None:
        """Why no file may be written here now, or None."""
        if self.on_disk:
            return None
        fs = filesystem_type(self.folder, self._mountinfo)
        if fs == "tmpfs":
            return None
        return (
            f"{self.folder} is not on a tmpfs (file system {fs or 'unknown'}): helperd writes no"
            " private key there unless config.toml sets cert_files_on_disk = true"
        )

    def exists(self, name: str) -> bool:
        """Whether ``name``'s file is there (a regular file, not a link)."""
        try:
            return stat.S_ISREG(os.lstat(self.path(name)).st_mode)
        except OSError:
            return False

    def write(self, name: str, pem: SecretStr) -> None:
        """Write ``name``'s file (0600), making the folder (0700) when missing.

        Raises:
            StoreUnavailableError: the folder is unsafe or the write failed.
        """
        problem = self.problem()
        if problem is not None:
            raise StoreUnavailableError(problem)
        self._private_folder(create=True)
        write_atomic(self.path(name), pem.get_secret_value().encode("ascii"))

    def remove(self, name: str) -> None:
        """Remove ``name``'s file, if it is there."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(name))

    def clear(self) -> None:
        """Remove every ``*.pem`` file and left-over temporary file in the folder."""
        try:
            self._private_folder(create=False)
        except FileNotFoundError:
            return  # nothing was ever written: nothing to make or remove
        for entry in os.scandir(self.folder):
            if entry.name.endswith((SUFFIX, ".tmp")):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)

    def _private_folder(self, *, create: bool) -> None:
        """Check (and make) the folder and its parent: ours, real directories, 0700.

        Raises:
            FileNotFoundError: it is missing and ``create`` is false.
            StoreUnavailableError: either folder is unsafe.
        """
        for folder in (self.folder.parent, self.folder):
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, 0o700)
            info = os.lstat(folder)
            problem = folder_problem(info, str(folder))
            if problem is None and stat.S_IMODE(info.st_mode) & 0o077:
                problem = f"{folder} is open to group or others (mode {info.st_mode & 0o777:o})"
            if problem is not None:
                raise StoreUnavailableError(f"{problem}: refusing to keep private keys there")


def filesystem_type(path: Path, mountinfo: Path = MOUNTINFO) -> str | None:
    """The file system type of the mount that holds ``path`` (or its nearest existing parent).

    Read from ``/proc/self/mountinfo``; None where there is none (macOS) or it is unreadable.
    """
    existing = Path(os.path.abspath(path))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = os.path.realpath(existing)
    try:
        lines = mountinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    best, found = -1, None
    for line in lines:
        fields = line.split(" ")
        if " - " not in line or len(fields) < 5:
            continue
        point = _unescape(fields[4])
        inside = where == point or where.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # the last of equal mounts is the one on top
            best, found = len(point), line.split(" - ", 1)[1].split(" ")[0]
    return found


def _unescape(field: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash as ``\040`` and the like."""
    return field.encode().decode("unicode_escape") if "\\" in field else field
