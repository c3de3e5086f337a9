"""Poetry's auth.toml on disk: read it, find every other place its secrets sit, rewrite it.

A secret moved out of auth.toml is gone only if no other name still reaches the old bytes:
a second hard link keeps the old inode alive after a rename, an editor's backup beside the
file keeps a copy, and a symbolic link means the file lives somewhere else (perhaps inside a
git work tree). `read_auth` records what the import needs to see all of that; `hard_links`,
`backups_holding`, `git_work_tree` find it; `write_back` replaces the file itself.
Nothing here writes a secret, and no message holds one.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from helperd_client.errors import HelperdError

from helperd.stores.durable import fsync_dir, write_atomic

__all__ = [
    "BACKUP_NAMES",
    "AuthFile",
    "PoetryFileError",
    "backups_beside",
    "backups_holding",
    "delete_backups",
    "git_work_tree",
    "hard_links",
    "read_auth",
    "write_back",
]

BACKUP_NAMES = ("{}~", ".{}.swp", "{}.bak", "{}.orig")
"""Where editors and people keep a copy of a file beside it (emacs, vim, by hand)."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class PoetryFileError(HelperdError):
    """Poetry's auth.toml or config.toml cannot be read, parsed or rewritten safely."""

    code: ClassVar[str] = "poetry_file"
    exit_code: ClassVar[int] = 1


@dataclass(frozen=True)
class AuthFile:
    """auth.toml as read: the path given, the file behind it, its bytes and its inode's facts.

    Attributes:
        path: the path given (perhaps a symbolic link).
        real: the file behind it, which is the one rewritten.
        raw: the bytes read; never shown by ``repr``.
        mode: the permission bits of ``real``, which the rewritten file keeps.
        links: how many hard links ``real`` has.
    """

    path: Path
    real: Path
    raw: bytes = field(repr=False)
    mode: int = 0o600
    links: int = 1

    @property
    def text(self) -> str:
        """The contents as text (checked to be UTF-8 by `read_auth`)."""
        return self.raw.decode("utf-8")

    @property
    def is_link(self) -> bool:
        """Whether the path given is a symbolic link to ``real``."""
        return self.path.is_symlink()


def read_auth(path: Path) -> AuthFile | None:
    """Read auth.toml, or return None when there is none.

    A symbolic link is followed: the file behind it is the one rewritten later.

    Raises:
        PoetryFileError: it cannot be read, is not a regular file, or is not UTF-8 text.
    """
    try:
        real = path.resolve(strict=True)
        fd = os.open(real, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PoetryFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PoetryFileError(f"{path} is not a regular file; nothing was changed")
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise PoetryFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PoetryFileError(f"{path} is not UTF-8 text; nothing was changed") from None
    return AuthFile(path, real, raw, stat.S_IMODE(info.st_mode), info.st_nlink)


def hard_links(auth: AuthFile) -> PoetryFileError | None:
    """The refusal to give when ``auth.real`` has other hard links, else None.

    Replacing the file by rename leaves every other link on the old inode, secrets and all,
    so the import must not pretend it removed them. The other names found in the folders of
    the path and its target are named; others can sit anywhere on the same file system.
    """
    if auth.links <= 1:
        return None
    try:
        me = os.stat(auth.real)
    except OSError:
        return None
    others: list[Path] = []
    for folder in dict.fromkeys((auth.real.parent, auth.path.parent)):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                there = entry.lstat()
            except OSError:
                continue
            same = (there.st_dev, there.st_ino) == (me.st_dev, me.st_ino)
            # the same name reached through a linked folder is no other link
            if same and entry.resolve() != auth.real and entry.resolve() not in others:
                others.append(entry.resolve())
    count = auth.links - 1
    named = f": {', '.join(str(p) for p in others)}" if others else ""
    return PoetryFileError(
        f"{auth.real} has {count} other hard link{'s' if count > 1 else ''}{named}, which would"
        " keep the secrets after the rewrite; nothing was changed."
        f" Check and remove the other link{'s' if count > 1 else ''}"
        f" (`find / -xdev -samefile {auth.real}` lists them all), then run"
        " `helperctl import-poetry` again"
    )


def backups_holding(auth: AuthFile, secrets: Sequence[str]) -> list[tuple[Path, int]]:
    """The backups beside auth.toml (see `BACKUP_NAMES`) holding any of ``secrets``, with how many.

    Both the path given and the file behind it are looked beside. Only regular files are
    read (a symbolic link named like a backup is no copy); a secret counts when its UTF-8
    bytes, or its escaped form in a TOML string, appear anywhere in the file.
    """
    found: list[tuple[Path, int]] = []
    for candidate, data in backups_beside(auth.path, auth.real):
        held = sum(1 for secret in secrets if any(form in data for form in _forms(secret)))
        if held:
            found.append((candidate, held))
    return found


def backups_beside(path: Path, real: Path) -> list[tuple[Path, bytes]]:
    """The backups (see `BACKUP_NAMES`) beside ``path`` and beside ``real``, the file behind
    it, each with its bytes. Only regular files are read, each once (a symbolic link named like
    a backup is no copy)."""
    found: list[tuple[Path, bytes]] = []
    seen: set[tuple[int, int]] = set()
    for place in dict.fromkeys((path, real)):
        for pattern in BACKUP_NAMES:
            candidate = place.with_name(pattern.format(place.name))
            data = _read_regular(candidate, seen)
            if data is not None:
                found.append((candidate, data))
    return found


def _forms(secret: str) -> tuple[bytes, ...]:
    plain = secret.encode("utf-8")
    escaped = json.dumps(secret)[1:-1].encode("utf-8")
    return (plain,) if plain == escaped else (plain, escaped)


def _read_regular(path: Path, seen: set[tuple[int, int]]) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) in seen:
            return None
        seen.add((info.st_dev, info.st_ino))
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def delete_backups(paths: Sequence[Path]) -> list[tuple[Path, str | None]]:
    """Delete ``paths``, durably; each with None when done, else why not."""
    done: list[tuple[Path, str | None]] = []
    for path in paths:
        try:
            path.unlink()
            fsync_dir(path.parent)
        except OSError as exc:
            done.append((path, exc.strerror or str(exc)))
        else:
            done.append((path, None))
    return done


def git_work_tree(path: Path) -> Path | None:
    """The git work tree ``path`` sits in (a folder above it holding ``.git``), else None."""
    for folder in path.parents:
        if (folder / ".git").exists():
            return folder
    return None


def write_back(auth: AuthFile, text: str) -> None:
    """Replace the file behind auth.toml with ``text``, atomically, durably, keeping its mode.

    The new file is written beside the target (a symbolic link stays a link) and renamed
    over it.

    Raises:
        PoetryFileError: the file changed since `read_auth` (someone else wrote it), or has
            gained a hard link.
        StoreUnavailableError: the write failed; the old file is intact.
    """
    again = read_auth(auth.path)
    if again is None or again.real != auth.real or again.raw != auth.raw:
        raise PoetryFileError(
            f"{auth.path} changed while importing, so it was left as it is now;"
            " run `helperctl import-poetry` again to remove the secrets it still holds"
        )
    refusal = hard_links(again)
    if refusal is not None:
        raise refusal
    write_atomic(auth.real, text.encode("utf-8"), mode=auth.mode)
