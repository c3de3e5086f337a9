"""Keys of the encrypted file store: key derivation and key files.

A store's *master key* comes from a passphrase (Argon2id, slow on purpose) or from a key file
(HKDF-SHA256: a key file already holds random bytes, and headless servers have nobody to type
a passphrase). Two subkeys come from the master key through HKDF-SHA256: the AES-256-GCM key
that encrypts the records, and a 16-byte *check* value kept in the file header, which tells a
wrong passphrase (or key file) apart from a damaged file. `KeySpec` is how a file header
records the derivation (source, salt, Argon2id cost, check). docs/file-format.md has the details.

Keys live in `helperd.stores.secret_memory.SecretBuffer` pages, derived into them in place, never
as ``bytes``: `StoreKey.wipe` zeroes them (docs/security.md, "Memory").
"""

from __future__ import annotations

import base64
import errno
import hmac
import os
import shlex
import stat
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from helperd_client.errors import BadRequestError, LockedError, StoreUnavailableError
from pydantic import SecretStr

from helperd.stores.secret_memory import SecretBuffer

__all__ = [
    "CHECK_BYTES",
    "INFO_AEAD",
    "INFO_CHECK",
    "INFO_KEY_FILE",
    "KEY_BYTES",
    "KEY_FILE",
    "MAX_KEY_FILE_BYTES",
    "MIN_KEY_FILE_BYTES",
    "PASSPHRASE",
    "SALT_BYTES",
    "KdfParams",
    "KeySpec",
    "StoreKey",
    "decode_b64",
    "kdf_runs",
    "key_file_key",
    "passphrase_key",
    "read_key_file",
    "read_private_file",
]

SALT_BYTES = 16
KEY_BYTES = 32
CHECK_BYTES = 16
MIN_KEY_FILE_BYTES = 32
"""A key file must hold at least a full AES-256 key's worth of bytes."""
MAX_KEY_FILE_BYTES = 64 * 1024
"""Anything larger is not a key file (and is not read whole into memory)."""

PASSPHRASE = "passphrase"  # noqa: S105 - the name of a key source, not a secret
KEY_FILE = "key_file"
_KDF_NAMES = {PASSPHRASE: "argon2id", KEY_FILE: "hkdf-sha256"}
_KEY_FIELDS = {
    PASSPHRASE: frozenset({"source", "kdf", "salt", "iterations", "memory_kib", "lanes"}),
    KEY_FILE: frozenset({"source", "kdf", "salt"}),
}

INFO_KEY_FILE = b"helperd file store v1 key"
INFO_AEAD = b"helperd file store v1 aead"
INFO_CHECK = b"helperd file store v1 check"

# Bounds on what a file header may ask of the KDF, so a damaged header is reported as
# damaged instead of asking for terabytes of memory or hours of work.
MAX_ITERATIONS = 1024
MAX_LANES = 255
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# A FIFO named as the key file must not hang the daemon on open().
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost parameters for passphrase stores.

    The defaults are RFC 9106's second recommended option (t=3, p=4, 64 MiB): a fraction of a
    second on a laptop, and a memory cost that makes guessing on GPUs expensive.

    Attributes:
        iterations: passes over memory (Argon2 ``t``).
        memory_kib: memory in KiB (Argon2 ``m``); at least ``8 * lanes``.
        lanes: degree of parallelism (Argon2 ``p``).

    Raises:
        ValueError: a parameter is out of range.
    """

    iterations: int = 3
    memory_kib: int = 65536
    lanes: int = 4

    def __post_init__(self) -> None:
        for value in (self.iterations, self.memory_kib, self.lanes):
            # bool is an int: a header saying `"lanes": true` is damaged, not 1.
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("Argon2id parameters must be integers")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}")
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError(f"lanes must be between 1 and {MAX_LANES}")
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError(f"memory_kib must be between 8 * lanes and {MAX_MEMORY_KIB}")


@dataclass(frozen=True)
class KeySpec:
    """How a store's master key is made, as its file header records it.

    Fixed from a store's creation until its next passphrase change.

    Attributes:
        source: `PASSPHRASE` or `KEY_FILE`.
        salt: 16 random bytes.
        check: the `StoreKey.check` of the master key.
        kdf: the Argon2id parameters of a passphrase store; None for a key-file store.
    """

    source: str
    salt: bytes
    check: bytes
    kdf: KdfParams | None = None

    def to_json(self) -> dict[str, Any]:
        """The header's ``key`` object (``check`` is a header field of its own)."""
        key: dict[str, Any] = {"source": self.source, "kdf": _KDF_NAMES[self.source]}
        key["salt"] = base64.b64encode(self.salt).decode("ascii")
        if self.kdf is not None:
            key |= {
                "iterations": self.kdf.iterations,
                "memory_kib": self.kdf.memory_kib,
                "lanes": self.kdf.lanes,
            }
        return key

    @classmethod
    def from_json(cls, key: object, check: object) -> KeySpec:
        """Read a header's ``key`` object and ``check`` field.

        Raises:
            ValueError: they are not valid; the message says what is wrong (never a secret).
        """
        source = key.get("source") if isinstance(key, dict) else None
        if not isinstance(key, dict) or not isinstance(source, str):
            raise ValueError("its key description is not valid")
        if source not in _KEY_FIELDS or set(key) != _KEY_FIELDS[source]:
            raise ValueError("its key description is not valid")
        if key["kdf"] != _KDF_NAMES[source]:
            raise ValueError(f"its {source} key must use {_KDF_NAMES[source]}")
        kdf = None
        if source == PASSPHRASE:
            try:
                kdf = KdfParams(key["iterations"], key["memory_kib"], key["lanes"])
            except ValueError:
                raise ValueError("its Argon2id parameters are out of range") from None
        salt = decode_b64(key["salt"], SALT_BYTES, "salt")
        return cls(source, salt, decode_b64(check, CHECK_BYTES, "check"), kdf)


def decode_b64(value: object, size: int, what: str) -> bytes:
    """Decode a header's base64 field of exactly ``size`` bytes.

    Raises:
        ValueError: it is not a base64 string of ``size`` bytes; the message names ``what``.
    """
    try:
        if not isinstance(value, str):
            raise ValueError
        data = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error included
        raise ValueError(f"its {what} is not valid base64") from None
    if len(data) != size:
        raise ValueError(f"its {what} is not {size} bytes long")
    return data


class StoreKey:
    """What a master key opens: the records' AEAD and the header's check value.

    The AEAD key is ``HKDF(master, info=b"helperd file store v1 aead")``; it lives in a
    `SecretBuffer` of its own, and so does the master key while the subkeys are derived (it
    is zeroed right after). The AES-GCM object keeps a reference to that buffer, not a copy;
    OpenSSL expands the key into a cipher context that it clears when the object goes.
    `wipe` drops the object and zeroes the buffer.

    Args:
        master: a buffer holding the master key; zeroed here once the subkeys are made.

    Attributes:
        check: ``HKDF(master, info=b"helperd file store v1 check")``, 16 bytes; not secret
            (it is in the file header) but it proves the master key is the right one.
    """

    __slots__ = ("_aead", "_key", "check")

    _aead: AESGCM | None
    check: bytes

    def __init__(self, master: SecretBuffer) -> None:
        self._key = SecretBuffer(KEY_BYTES)
        try:
            _hkdf_into(master.view, salt=None, info=INFO_AEAD, out=self._key.view)
            self.check = _hkdf(master.view, salt=None, info=INFO_CHECK, length=CHECK_BYTES)
        finally:
            master.wipe()
        self._aead = AESGCM(self._key.view)

    def encrypt(self, nonce: bytes, data: bytes, associated: bytes) -> bytes:
        """AES-256-GCM encryption with this key (`LockedError` once wiped)."""
        return self._cipher().encrypt(nonce, data, associated)

    def decrypt(self, nonce: bytes, data: bytes, associated: bytes) -> bytes:
        """AES-256-GCM decryption (`InvalidTag`: wrong key or data; `LockedError` once wiped)."""
        return self._cipher().decrypt(nonce, data, associated)

    def matches(self, check: bytes) -> bool:
        """Whether this key is the one a header's ``check`` was made with (constant time)."""
        return hmac.compare_digest(self.check, check)

    def wipe(self) -> None:
        """Forget the key: drop the cipher (OpenSSL clears its context) and zero the buffer."""
        self._aead = None
        self._key.wipe()

    def _cipher(self) -> AESGCM:
        aead = self._aead
        if aead is None:
            raise LockedError("the store is locked: run `helperctl unlock`")
        return aead

    def __repr__(self) -> str:
        return "StoreKey(<hidden>)"


_Bytes = bytes | bytearray | memoryview

_runs_lock = threading.Lock()
_runs = 0


def kdf_runs() -> int:
    """How many times Argon2id ran on a passphrase in this process."""
    return _runs


def passphrase_key(passphrase: SecretStr, salt: bytes, params: KdfParams) -> StoreKey:
    """Derive a store's key from its passphrase with Argon2id (slow: call without locks held).

    The passphrase is NFC-normalised before UTF-8 encoding, so that the same text typed on
    two keyboards that compose accents differently opens the same store.

    Raises:
        BadRequestError: the passphrase is not encodable text (a lone surrogate).
        StoreUnavailableError: this build of cryptography has no Argon2id.
    """
    global _runs  # noqa: PLW0603 - a counter for status
    text = unicodedata.normalize("NFC", passphrase.get_secret_value())
    try:
        material = text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError("the passphrase is not valid Unicode text") from None
    try:
        kdf = Argon2id(
            salt=salt,
            length=KEY_BYTES,
            iterations=params.iterations,
            lanes=params.lanes,
            memory_cost=params.memory_kib,
        )
    except UnsupportedAlgorithm:
        raise StoreUnavailableError(
            "this build of the cryptography library has no Argon2id (it needs OpenSSL 3.2"
            " or later): upgrade cryptography, or use a key file (HELPERD_KEY_FILE)"
        ) from None
    with _runs_lock:
        _runs += 1
    master = SecretBuffer(KEY_BYTES)
    kdf.derive_into(material, master.view)
    return StoreKey(master)


def key_file_key(material: bytes, salt: bytes) -> StoreKey:
    """Derive a store's key from a key file's bytes with HKDF-SHA256 (fast)."""
    master = SecretBuffer(KEY_BYTES)
    _hkdf_into(material, salt=salt, info=INFO_KEY_FILE, out=master.view)
    return StoreKey(master)


def _hkdf_into(material: _Bytes, *, salt: bytes | None, info: bytes, out: memoryview) -> None:
    HKDF(algorithm=hashes.SHA256(), length=len(out), salt=salt, info=info).derive_into(
        material, out
    )


def _hkdf(material: _Bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(material)


def read_key_file(path: Path) -> bytes:
    """Read a key file, refusing one that anybody but its owner could have read or swapped.

    Every byte counts, a trailing newline included.

    Raises:
        StoreUnavailableError: the file is missing, a symbolic link, not a regular file,
            owned by another user, open to group or others, shorter than 32 bytes or larger
            than 64 KiB. The message names the path and the fix.
    """
    create_hint = f"(umask 077; head -c 32 /dev/urandom > {shlex.quote(str(path))})"
    data = read_private_file(
        path,
        what="key file",
        setting="HELPERD_KEY_FILE",
        missing_hint=(
            f"create one with `{create_hint}`, or point HELPERD_KEY_FILE at the right file"
        ),
        max_bytes=MAX_KEY_FILE_BYTES,
    )
    if len(data) < MIN_KEY_FILE_BYTES:
        raise StoreUnavailableError(
            f"key file {path} holds {len(data)} bytes, fewer than the {MIN_KEY_FILE_BYTES}"
            f" a key needs: fill it with random bytes, e.g. `{create_hint}`"
        )
    return data


def read_private_file(
    path: Path, *, what: str, setting: str, missing_hint: str, max_bytes: int
) -> bytes:
    """Read a small secret file (a key file, a token), refusing one that anybody but its owner
    could have read or swapped: the key file's rule, shared with every secret helperd reads.

    Accepted: a regular file owned by the user with no group or other bits (0600, 0400), or a
    systemd credential (root:root, 0440 at most, the service's user let in by an ACL).

    Args:
        path: the file.
        what: what the file is, for messages (``"key file"``).
        setting: the setting that names the file, for the symbolic-link fix.
        missing_hint: what to do when the file does not exist.
        max_bytes: the largest file accepted.

    Raises:
        StoreUnavailableError: the file is missing, a symbolic link, not a regular file,
            owned by another user, open to group or others, or larger than ``max_bytes``.
            The message names the path and the fix, never the content.
    """
    quoted = shlex.quote(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
    except FileNotFoundError:
        raise StoreUnavailableError(f"{what} {path} does not exist: {missing_hint}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreUnavailableError(
                f"{what} {path} is a symbolic link: refusing to follow it;"
                f" point {setting} at the file itself"
            ) from None
        raise StoreUnavailableError(
            f"could not read {what} {path}: {exc.strerror or exc}"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreUnavailableError(f"{what} {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        # Newer systemd hands credentials over as root:root 0440 plus an ACL for the service's
        # user: readable by root (out of scope) and by us only, so accept exactly that shape,
        # and only where systemd puts credentials (elsewhere, root:root 0440 may be readable
        # by others through an ACL nobody checked).
        systemd_credential = (
            info.st_uid == 0 and info.st_gid == 0 and not mode & 0o237 and _in_credentials_dir(path)
        )
        if info.st_uid != os.getuid() and not systemd_credential:
            raise StoreUnavailableError(
                f"{what} {path} belongs to another user (uid {info.st_uid}), not to the"
                f" user helperd runs as (uid {os.getuid()}): give it to that user"
                f" (`chown {os.getuid()} {quoted}`) or use a {what} of its own"
            )
        if mode & 0o077 and not systemd_credential:
            raise StoreUnavailableError(
                f"{what} {path} is open to group or others (mode {mode:04o}):"
                f" run `chmod 600 {quoted}`"
            )
        data = _read_at_most(fd, max_bytes + 1)
    except OSError as exc:
        raise StoreUnavailableError(
            f"could not read {what} {path}: {exc.strerror or exc}"
        ) from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise StoreUnavailableError(
            f"{what} {path} is larger than {max_bytes // 1024} KiB: it is not a {what}"
        )
    return data


def _in_credentials_dir(path: Path) -> bool:
    """Whether ``path`` sits in ``$CREDENTIALS_DIRECTORY`` (systemd's ``LoadCredential=``)."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return False
    return os.path.realpath(path.parent) == os.path.realpath(directory)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
