"""Client certificates: the bundle rule, the service's cert records and the files it keeps."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from helperd_client.errors import BadRequestError, LockedError, NotFoundError, StoreUnavailableError
from pydantic import SecretStr

from helperd.core.certs import CertKeeper, KeyPassphraseNeeded, bundle
from helperd.core.protocol import (
    CertPathRequest,
    DeleteRequest,
    GetRequest,
    ListRequest,
    LockRequest,
    SetRequest,
    UnlockRequest,
)
from helperd.core.service import Service
from helperd.stores.cert_files import FolderCertFiles, filesystem_type
from tests.support.certs import TestCA, make_ca
from tests.unit.test_service import T0, MemoryStore


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


def _body(path: Path) -> str:
    """A piece of a PEM file's base64 body, which no message may quote."""
    return [line for line in path.read_text().splitlines() if not line.startswith("-----")][1]


def mountinfo(tmp_path: Path, point: Path, fs: str) -> Path:
    """A mount table with ``point`` mounted as ``fs`` (its path written the way the kernel does)."""
    table = tmp_path / "mountinfo"
    escaped = str(point).replace(" ", "\\040")
    table.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"36 22 0:30 / {escaped} rw,nosuid shared:9 - {fs} {fs} rw,size=1024k\n"
    )
    return table


# --- bundle --------------------------------------------------------------------------------


def test_bundle_decrypts_the_key_once_and_joins_cert_and_key(ca: TestCA) -> None:
    """An encrypted key with its passphrase gives the certificate, then the key unencrypted."""
    pem = bundle(ca.client_cert.read_bytes(), ca.client_key.read_bytes(), ca.passphrase.encode())

    assert pem.startswith(ca.client_cert.read_text())
    assert pem.endswith(ca.client_key_plain.read_text())
    assert "ENCRYPTED" not in pem


def test_bundle_takes_a_combined_file(ca: TestCA) -> None:
    """A file holding certificate and key together needs no --key."""
    combined = ca.client_cert.read_bytes() + ca.client_key_plain.read_bytes()

    assert combined.decode() == bundle(combined)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no passphrase", "the private key is encrypted"),
        ("wrong passphrase", "the private key cannot be read (a wrong passphrase)"),
        ("other key", "the private key does not belong to the client certificate"),
        ("no key", "the certificate file holds no PEM private key: give the key's file"),
        ("key file without a key", "the key file holds no PEM private key"),
        ("not a certificate", "the client certificate is not a PEM certificate"),
    ],
)
def test_bundle_refusals_never_quote_the_input(ca: TestCA, case: str, expected: str) -> None:
    """Each bad input is refused with its own message, which holds no PEM text."""
    cert, key, passphrase = ca.client_cert.read_bytes(), ca.client_key.read_bytes(), None
    if case == "wrong passphrase":
        passphrase = b"wrong"
    elif case == "other key":
        key = ca.server_key.read_bytes()
    elif case == "no key":
        key = None
    elif case == "not a certificate":
        cert = ca.client_key_plain.read_bytes()
    elif case == "key file without a key":
        key = ca.client_cert.read_bytes()

    with pytest.raises(BadRequestError) as raised:
        bundle(cert, key, passphrase)

    assert raised.value.message.startswith(expected)
    assert (case == "no key") == raised.value.message.endswith("with --key")
    assert (case == "no passphrase") == isinstance(raised.value, KeyPassphraseNeeded)
    for path in (ca.client_cert, ca.client_key, ca.client_key_plain, ca.server_key):
        assert _body(path) not in str(raised.value)


# --- the files -----------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    root.mkdir(mode=0o700)
    return root / "helperd" / "certs"


def test_files_are_0600_in_0700_folders(tmp_path: Path, folder: Path) -> None:
    """A write makes both folders 0700 and the file 0600 with exactly the PEM, nothing else."""
    files = FolderCertFiles(folder, mountinfo=mountinfo(tmp_path, tmp_path / "run", "tmpfs"))

    files.write("corp", SecretStr("PEM"))

    path = folder / "corp.pem"
    assert folder / "corp.pem" == files.path("corp")
    assert b"PEM" == path.read_bytes()
    assert 0o600 == stat.S_IMODE(path.stat().st_mode)
    assert (0o700, 0o700) == (
        stat.S_IMODE(folder.stat().st_mode),
        stat.S_IMODE(folder.parent.stat().st_mode),
    )
    assert ["corp.pem"] == os.listdir(folder)


def test_no_file_off_tmpfs_unless_configured(tmp_path: Path, folder: Path) -> None:
    """On a disk file system nothing is written, unless cert_files_on_disk says so."""
    table = mountinfo(tmp_path, tmp_path / "elsewhere", "tmpfs")
    refusing = FolderCertFiles(folder, mountinfo=table)
    allowed = FolderCertFiles(folder, on_disk=True, mountinfo=table)

    problem = refusing.problem()
    with pytest.raises(StoreUnavailableError):
        refusing.write("corp", SecretStr("PEM"))
    assert not folder.exists()
    allowed.write("corp", SecretStr("PEM"))

    assert problem is not None
    assert "is not on a tmpfs (file system ext4)" in problem
    assert "cert_files_on_disk = true" in problem
    assert allowed.exists("corp")


@pytest.mark.parametrize("unsafe", ["group-readable", "symlink", "other owner"])
def test_an_unsafe_folder_is_refused_never_fixed(tmp_path: Path, folder: Path, unsafe: str) -> None:
    """A folder open to others, a link, or another user's folder gets no key and keeps its mode."""
    files = FolderCertFiles(folder, mountinfo=mountinfo(tmp_path, tmp_path, "tmpfs"))
    if unsafe == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        folder.parent.mkdir(mode=0o700)
        folder.symlink_to(elsewhere)
    else:
        folder.mkdir(mode=0o700, parents=True)
        if unsafe == "group-readable":
            folder.chmod(0o750)
        elif os.getuid() == 0:
            os.chown(folder, 65534, 65534)
        else:
            pytest.skip("needs root to give the folder to another user")

    with pytest.raises(StoreUnavailableError) as raised:
        files.write("corp", SecretStr("PEM"))

    assert "refusing to keep private keys there" in raised.value.message
    if unsafe == "symlink":
        assert [] == os.listdir(tmp_path / "elsewhere")
    if unsafe == "group-readable":
        assert 0o750 == stat.S_IMODE(folder.stat().st_mode)
        assert [] == os.listdir(folder)


def test_clear_removes_pem_and_temporary_files_only(tmp_path: Path, folder: Path) -> None:
    """Stale ``*.pem`` and left-over temporary files go; anything else stays."""
    files = FolderCertFiles(folder, mountinfo=mountinfo(tmp_path, tmp_path / "run", "tmpfs"))
    files.write("old", SecretStr("PEM"))
    (folder / ".old.pem.abc.tmp").write_text("half")
    (folder / "notes.txt").write_text("mine")

    files.clear()

    assert ["notes.txt"] == os.listdir(folder)


def test_clear_of_a_missing_folder_makes_nothing(tmp_path: Path, folder: Path) -> None:
    """At start with no folder yet, nothing is created."""
    FolderCertFiles(folder).clear()

    assert not folder.parent.exists()


def test_filesystem_type_takes_the_deepest_mount(tmp_path: Path) -> None:
    """The mount closest to the path decides, and escaped spaces in mount points are read."""
    point = tmp_path / "with space"
    point.mkdir()
    table = mountinfo(tmp_path, point, "tmpfs")

    assert "tmpfs" == filesystem_type(point / "helperd" / "certs", table)
    assert "ext4" == filesystem_type(tmp_path / "other", table)
    assert filesystem_type(tmp_path, tmp_path / "no-such-table") is None


# --- the service ---------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, folder: Path) -> tuple[Service, MemoryStore]:
    store = MemoryStore()
    files = FolderCertFiles(folder, mountinfo=mountinfo(tmp_path, tmp_path / "run", "tmpfs"))
    service = Service(store, store_reason="test", certs=CertKeeper(files))
    return service, store


def _pem(ca: TestCA) -> str:
    return ca.client_cert.read_text() + ca.client_key_plain.read_text()


def _set_cert(service: Service, ca: TestCA, name: str = "corp") -> None:
    request = SetRequest(v=1, id=1, op="set", name=name, kind="cert", password=SecretStr(_pem(ca)))
    service.handle(request, T0)


def _cert_path(service: Service, name: str = "corp") -> object:
    return service.handle(CertPathRequest(v=1, id=2, op="cert_path", name=name), T0)


def test_a_cert_record_is_listed_and_written_but_never_served(
    served: tuple[Service, MemoryStore], folder: Path, ca: TestCA
) -> None:
    """A cert record is listed (username __cert__) and written to its file; get finds none."""
    service, _store = served

    _set_cert(service, ca)

    listed = service.handle(ListRequest(v=1, id=3, op="list"), T0)
    assert [("corp", "__cert__", "cert")] == [
        (r.name, r.username, r.kind.value)
        for r in listed.records  # type: ignore[union-attr]
    ]
    assert _pem(ca) == (folder / "corp.pem").read_text()
    for asked in ({"name": "corp"}, {"service": "corp"}, {"service": "poetry-repository-corp"}):
        with pytest.raises(NotFoundError):
            service.handle(GetRequest(v=1, id=4, op="get", **asked), T0)


def test_the_file_follows_lock_unlock_delete_and_idle_lock(
    served: tuple[Service, MemoryStore], folder: Path, ca: TestCA
) -> None:
    """lock removes the file, unlock writes it again, delete and the idle lock remove it."""
    service, _store = served
    _set_cert(service, ca)
    path = folder / "corp.pem"

    service.handle(LockRequest(v=1, id=5, op="lock"), T0)
    after_lock = path.exists()
    service.handle(UnlockRequest(v=1, id=6, op="unlock", passphrase=SecretStr("right")), T0)
    after_unlock = path.exists()
    service.handle(DeleteRequest(v=1, id=7, op="delete", name="corp"), T0)
    after_delete = path.exists()
    _set_cert(service, ca)
    service.idle_lock = timedelta(minutes=1)
    service.tick(T0 + timedelta(minutes=2))

    assert (False, True, False, False) == (after_lock, after_unlock, after_delete, path.exists())


def test_cert_path_answers(served: tuple[Service, MemoryStore], folder: Path, ca: TestCA) -> None:
    """cert_path: the path when written, not_found without a cert, locked while locked."""
    service, _store = served
    _set_cert(service, ca)
    service.handle(SetRequest(v=1, id=8, op="set", name="plain", password=SecretStr("pw")), T0)
    (folder / "corp.pem").unlink()  # somebody removed it: cert_path writes it again

    found = _cert_path(service)
    with pytest.raises(NotFoundError) as missing:
        _cert_path(service, "plain")
    service.handle(LockRequest(v=1, id=9, op="lock"), T0)
    with pytest.raises(LockedError):
        _cert_path(service)

    assert (str(folder / "corp.pem"), True) == (found.path, found.present)  # type: ignore[attr-defined]
    assert "no record named 'plain' holds a client certificate" == missing.value.message


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "cert", "password": "not a pem"},
        {"kind": "cert", "urls": ["https://x.example.test/"]},
        {"kind": "cert", "username": "alice"},
        {"kind": "basic", "username": "__cert__"},
    ],
)
def test_set_refuses_bad_cert_records(
    served: tuple[Service, MemoryStore], ca: TestCA, fields: dict[str, object]
) -> None:
    """A cert record needs a valid bundle, no URLs, username __cert__; no basic replaces it."""
    service, _store = served
    _set_cert(service, ca)
    args: dict[str, object] = {"name": "corp", "password": _pem(ca), **fields}
    args["password"] = SecretStr(str(args["password"]))

    with pytest.raises(BadRequestError) as raised:
        service.handle(SetRequest(v=1, id=10, op="set", **args), T0)  # type: ignore[arg-type]

    assert _body(ca.client_key_plain) not in raised.value.message
