"""Key derivation and key files of the encrypted file store (docs/file-format.md, "Keys")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from helperd_client.errors import StoreUnavailableError
from pydantic import SecretStr

from helperd.stores.keys import (
    KEY_FILE,
    PASSPHRASE,
    KdfParams,
    KeySpec,
    decode_b64,
    key_file_key,
    passphrase_key,
    read_key_file,
)
from tests.support.tools import require_root

CHEAP = KdfParams(iterations=1, memory_kib=8, lanes=1)
SALT = bytes(range(16))


def hkdf_sha256(material: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    """RFC 5869 with the standard library only: an independent statement of the format."""
    prk = hmac.new(salt or bytes(32), material, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def write_key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Write a key file with exactly ``mode``, whatever the umask."""
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_default_kdf_params_are_rfc_9106_second_choice() -> None:
    """New passphrase stores use t=3, m=64 MiB, p=4 (RFC 9106, section 4, second option)."""
    assert (KdfParams().iterations, KdfParams().memory_kib, KdfParams().lanes) == (3, 65536, 4)


@pytest.mark.parametrize(
    ("iterations", "memory_kib", "lanes"),
    [
        (0, 8, 1),
        (1, 7, 1),
        (1, 16, 4),  # below 8 KiB per lane
        (1, 8, 0),
        (1025, 8, 1),
        (1, 4 * 1024 * 1024 + 1, 1),
        (True, 8, 1),
        ("1", 8, 1),
    ],
)
def test_kdf_params_out_of_range_are_refused(
    iterations: object, memory_kib: object, lanes: object
) -> None:
    """Parameters Argon2id refuses, or that would exhaust the machine, raise ValueError."""
    with pytest.raises(ValueError, match="must"):
        KdfParams(iterations, memory_kib, lanes)  # type: ignore[arg-type]


def test_key_file_key_follows_the_documented_derivation() -> None:
    """Master = HKDF(key file, salt, "...v1 key"); check = HKDF(master, "...v1 check")."""
    material = b"K" * 32
    master = hkdf_sha256(material, SALT, b"helperd file store v1 key", 32)
    aead_key = hkdf_sha256(master, None, b"helperd file store v1 aead", 32)
    expected_check = hkdf_sha256(master, None, b"helperd file store v1 check", 16)

    key = key_file_key(material, SALT)

    assert expected_check == key.check
    sealed = key.encrypt(bytes(12), b"hello", b"ad")
    assert AESGCM(aead_key).decrypt(bytes(12), sealed, b"ad") == b"hello"


def test_passphrase_key_depends_on_passphrase_salt_and_params() -> None:
    """The same inputs give the same key; changing any one of them gives another."""
    base = passphrase_key(SecretStr("correct horse"), SALT, CHEAP).check

    assert base == passphrase_key(SecretStr("correct horse"), SALT, CHEAP).check
    assert base != passphrase_key(SecretStr("correct horsf"), SALT, CHEAP).check
    assert base != passphrase_key(SecretStr("correct horse"), bytes(16), CHEAP).check
    assert base != passphrase_key(SecretStr("correct horse"), SALT, KdfParams(2, 8, 1)).check


def test_passphrase_key_is_stable() -> None:
    """Argon2id of a fixed passphrase, salt and parameters never changes (files stay openable)."""
    key = passphrase_key(SecretStr("correct horse"), bytes([1]) * 16, CHEAP)

    assert base64.b64encode(key.check).decode() == "7+R78jK4dR3e5FqnYso2gw=="


def test_passphrase_is_nfc_normalised() -> None:
    """ "é" typed precomposed or as e + combining accent opens the same store."""
    composed = passphrase_key(SecretStr("caf\u00e9"), SALT, CHEAP)
    decomposed = passphrase_key(SecretStr("cafe\u0301"), SALT, CHEAP)

    assert composed.matches(decomposed.check)


def test_store_key_matches_only_its_own_check() -> None:
    """`matches` accepts the key's own check value and nothing else."""
    key = key_file_key(b"K" * 32, SALT)

    assert (key.matches(key.check), key.matches(bytes(16))) == (True, False)


def test_store_key_repr_hides_key_material() -> None:
    """A StoreKey in a log or traceback shows nothing of the key."""
    assert repr(key_file_key(b"K" * 32, SALT)) == "StoreKey(<hidden>)"


def test_key_spec_json_round_trip() -> None:
    """A KeySpec survives its header form, for both sources."""
    specs = [
        KeySpec(PASSPHRASE, SALT, bytes(16), CHEAP),
        KeySpec(KEY_FILE, SALT, bytes(16)),
    ]
    for spec in specs:
        assert spec == KeySpec.from_json(spec.to_json(), "AAAAAAAAAAAAAAAAAAAAAA==")


@pytest.mark.parametrize(
    "key",
    [
        None,
        [],
        {"source": ["x"], "kdf": "argon2id", "salt": "AAECAwQFBgcICQoLDA0ODw=="},
        {"source": "key_file", "kdf": "argon2id", "salt": "AAECAwQFBgcICQoLDA0ODw=="},
        {"source": "key_file", "kdf": "hkdf-sha256"},
        {"source": "key_file", "kdf": "hkdf-sha256", "salt": "AAEC"},
        {"source": "key_file", "kdf": "hkdf-sha256", "salt": "not base64!"},
        {"source": "key_file", "kdf": "hkdf-sha256", "salt": "AAECAwQFBgcICQoLDA0ODw==", "x": 1},
        {
            "source": "passphrase",
            "kdf": "argon2id",
            "salt": "AAECAwQFBgcICQoLDA0ODw==",
            "iterations": 1,
            "memory_kib": 1 << 40,
            "lanes": 1,
        },
    ],
)
def test_key_spec_refuses_malformed_key_objects(key: object) -> None:
    """Any malformed ``key`` header object raises ValueError (never another exception)."""
    with pytest.raises(ValueError, match="its"):
        KeySpec.from_json(key, "AAAAAAAAAAAAAAAAAAAAAA==")


def test_decode_b64_checks_length() -> None:
    """A base64 field of the wrong length is refused, naming the field."""
    with pytest.raises(ValueError, match="its nonce is not 12 bytes long"):
        decode_b64("AAAA", 12, "nonce")


def test_read_key_file_returns_every_byte(tmp_path: Path) -> None:
    """A 0600 key file is read whole, trailing newline included."""
    data = os.urandom(32) + b"\n"

    assert data == read_key_file(write_key(tmp_path / "k", data))


def test_read_key_file_accepts_read_only_owner_mode(tmp_path: Path) -> None:
    """0400 (what systemd's LoadCredential= gives) is fine."""
    data = b"x" * 32

    assert data == read_key_file(write_key(tmp_path / "k", data, 0o400))


@pytest.mark.parametrize(("mode", "accepted"), [(0o440, True), (0o400, True), (0o444, False)])
def test_read_key_file_systemd_credential_shape(
    tmp_path: Path, mode: int, accepted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root:root read-only credential (newer systemd, with an ACL for us) in
    $CREDENTIALS_DIRECTORY is accepted; one that others can read is not."""
    require_root("creates a root-owned file")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    path = write_key(tmp_path / "k", b"x" * 32, mode)
    os.chown(path, 0, 0)
    if accepted:
        assert b"x" * 32 == read_key_file(path)
    else:
        with pytest.raises(StoreUnavailableError, match="open to group or others"):
            read_key_file(path)


@pytest.mark.parametrize("credentials", [None, "elsewhere"])
def test_read_key_file_refuses_root_credential_shape_outside_credentials_directory(
    tmp_path: Path, credentials: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """root:root 0440 is systemd's shape only in $CREDENTIALS_DIRECTORY: elsewhere it is refused."""
    require_root("creates a root-owned file")
    if credentials is None:
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    else:
        (tmp_path / credentials).mkdir()
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / credentials))
    path = write_key(tmp_path / "k", b"x" * 32, 0o440)
    os.chown(path, 0, 0)

    with pytest.raises(StoreUnavailableError) as info:
        read_key_file(path)

    assert f"key file {path} is open to group or others (mode 0440)" in info.value.message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o601])
def test_read_key_file_refuses_group_or_other_bits(tmp_path: Path, mode: int) -> None:
    """Any group or other permission bit is refused, with the chmod that fixes it."""
    path = write_key(tmp_path / "k", b"x" * 32, mode)

    with pytest.raises(StoreUnavailableError) as info:
        read_key_file(path)

    assert f"key file {path} is open to group or others (mode {mode:04o})" in info.value.message
    assert f"run `chmod 600 {path}`" in info.value.message


def test_read_key_file_refuses_symlink(tmp_path: Path) -> None:
    """A symbolic link is refused even when its target is a good key file."""
    target = write_key(tmp_path / "real", b"x" * 32)
    link = tmp_path / "link"
    link.symlink_to(target)

    with pytest.raises(StoreUnavailableError, match="is a symbolic link"):
        read_key_file(link)


def test_read_key_file_refuses_short_file(tmp_path: Path) -> None:
    """Fewer than 32 bytes is refused, saying how many and how to make a good one."""
    path = write_key(tmp_path / "k", b"x" * 31)

    with pytest.raises(StoreUnavailableError) as info:
        read_key_file(path)

    assert "holds 31 bytes, fewer than the 32 a key needs" in info.value.message
    assert "head -c 32 /dev/urandom" in info.value.message


def test_read_key_file_refuses_huge_file(tmp_path: Path) -> None:
    """More than 64 KiB is not a key file."""
    path = write_key(tmp_path / "k", b"x" * (64 * 1024 + 1))

    with pytest.raises(StoreUnavailableError, match="larger than 64 KiB"):
        read_key_file(path)


def test_read_key_file_refuses_missing_file(tmp_path: Path) -> None:
    """A missing key file is reported with the command that creates one."""
    path = tmp_path / "absent"

    with pytest.raises(StoreUnavailableError) as info:
        read_key_file(path)

    assert f"key file {path} does not exist" in info.value.message


def test_read_key_file_refuses_directory(tmp_path: Path) -> None:
    """A directory is not a regular file."""
    path = tmp_path / "d"
    path.mkdir(mode=0o700)

    with pytest.raises(StoreUnavailableError, match="is not a regular file"):
        read_key_file(path)


def test_read_key_file_refuses_fifo_without_hanging(tmp_path: Path) -> None:
    """A FIFO is refused at once, not waited on for a writer."""
    path = tmp_path / "fifo"
    os.mkfifo(path, 0o600)
    result: list[BaseException] = []

    def read() -> None:
        try:
            read_key_file(path)
        except StoreUnavailableError as exc:
            result.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)

    assert not thread.is_alive()
    assert len(result) == 1
    assert f"key file {path} is not a regular file" == str(result[0])


def test_read_key_file_refuses_other_owner(tmp_path: Path) -> None:
    """A key file that belongs to another user is refused, naming both uids."""
    require_root("only root can give a file to another user")
    path = write_key(tmp_path / "k", b"x" * 32)
    os.chown(path, 65534, -1)

    with pytest.raises(StoreUnavailableError) as info:
        read_key_file(path)

    expected = "belongs to another user (uid 65534), not to the user helperd runs as (uid 0)"
    assert expected in info.value.message
