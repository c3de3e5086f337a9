"""Poetry's client-cert settings: found, pointed elsewhere with the rest kept, keys stripped."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

import pytest

from helperd.ctl.import_certs import move_client_certs
from helperd.integrations.auth_file import PoetryFileError, read_auth
from helperd.integrations.poetry_certs import (
    ClientCert,
    client_certs,
    linked_elsewhere,
    replace_paths,
    strip_key,
)
from tests.support.certs import TestCA, make_ca

if TYPE_CHECKING:
    from helperd.ctl.session import Session

AUTH = """\
# mine
[http-basic.acme]
username = "alice"

[certificates.acme]
cert = "/etc/ca.pem"  # the CA
client-cert = "client.pem"

[certificates.other]
cert = true
"""


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


def test_client_certs_finds_each_setting_relative_to_the_folder(tmp_path: Path) -> None:
    """Only client-cert settings count; a relative path is taken from the file's folder."""
    assert [ClientCert("acme", tmp_path / "client.pem")] == client_certs(AUTH, tmp_path)


def test_replace_paths_keeps_everything_else(tmp_path: Path) -> None:
    """Only the client-cert value changes: comments, other keys and the mode stay."""
    path = tmp_path / "auth.toml"
    path.write_text(AUTH)
    path.chmod(0o640)
    auth = read_auth(path)
    assert auth is not None

    replace_paths(auth, {"acme": "/run/user/1/helperd/certs/acme.pem"})

    expected = AUTH.replace('"client.pem"', '"/run/user/1/helperd/certs/acme.pem"')
    assert (expected, 0o640) == (path.read_text(), path.stat().st_mode & 0o777)


def test_strip_key_leaves_the_certificate(tmp_path: Path, ca: TestCA) -> None:
    """A combined file keeps its certificate only; a file without a key is left alone."""
    combined = tmp_path / "client.pem"
    combined.write_text(ca.client_cert.read_text() + ca.client_key_plain.read_text())
    combined.chmod(0o600)

    stripped = strip_key(combined)
    again = strip_key(combined)

    assert (True, False) == (stripped, again)
    assert ca.client_cert.read_text() == combined.read_text()
    assert 0o600 == combined.stat().st_mode & 0o777


def test_strip_key_refuses_a_key_without_certificate(tmp_path: Path, ca: TestCA) -> None:
    """A file holding only a key is not emptied."""
    key = tmp_path / "key.pem"
    key.write_text(ca.client_key_plain.read_text())

    with pytest.raises(PoetryFileError):
        strip_key(key)

    assert ca.client_key_plain.read_text() == key.read_text()


def test_a_hard_linked_key_file_is_refused_and_left_alone(tmp_path: Path, ca: TestCA) -> None:
    """A PEM file with another hard link would keep the key in it after a rewrite: it is
    named as linked elsewhere, and strip_key refuses, changing neither name."""
    combined = tmp_path / "client.pem"
    text = ca.client_cert.read_text() + ca.client_key_plain.read_text()
    combined.write_text(text)
    (tmp_path / "client.pem.orig").hardlink_to(combined)

    linked = linked_elsewhere(combined)
    with pytest.raises(PoetryFileError) as raised:
        strip_key(combined)

    assert linked is not None
    assert f"has 1 other hard link: {tmp_path / 'client.pem.orig'}" in linked.message
    assert linked.message == raised.value.message
    assert (text, text) == (combined.read_text(), (tmp_path / "client.pem.orig").read_text())


def test_a_key_file_with_one_link_is_not_linked_elsewhere(tmp_path: Path, ca: TestCA) -> None:
    """The usual case: one name, nothing to refuse."""
    combined = tmp_path / "client.pem"
    combined.write_text(ca.client_cert.read_text() + ca.client_key_plain.read_text())

    assert None is linked_elsewhere(combined)


class _NoDaemon:
    """A helperctl session that fails the test if the daemon is asked anything."""

    timeout = None

    def client(self) -> NoReturn:
        raise AssertionError("the daemon was asked to take a key that stays on disk")


def test_move_client_certs_leaves_a_hard_linked_key_file_before_storing_it(
    tmp_path: Path, ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """--move-client-certs leaves a key file with another hard link as it is (the setting too),
    says why, and never stores the key: moving it would leave a copy in the other link."""
    combined = tmp_path / "client.pem"
    text = ca.client_cert.read_text() + ca.client_key_plain.read_text()
    combined.write_text(text)
    (tmp_path / "client.pem.orig").hardlink_to(combined)
    auth = tmp_path / "auth.toml"
    auth.write_text(AUTH)

    moved = move_client_certs(cast("Session", _NoDaemon()), auth, dry_run=False)

    assert 0 == moved
    assert "left auth.toml: certificates.acme.client-cert:" in capsys.readouterr().err
    assert (AUTH, text) == (auth.read_text(), combined.read_text())


def test_move_client_certs_sends_an_encrypted_key_to_set_cert(
    tmp_path: Path, ca: TestCA, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key file whose key is encrypted is left as it is, with the `set-cert` command that
    stores it (import-poetry has no passphrase option of its own)."""
    combined = tmp_path / "client.pem"
    text = ca.client_cert.read_text() + ca.client_key.read_text()
    combined.write_text(text)
    auth = tmp_path / "auth.toml"
    auth.write_text(AUTH)

    moved = move_client_certs(cast("Session", _NoDaemon()), auth, dry_run=False)

    err = capsys.readouterr().err
    assert 0 == moved
    assert (
        "left auth.toml: certificates.acme.client-cert: its private key is encrypted; store it"
        f" with `helperctl set-cert acme --client-cert {combined} --key-passphrase-stdin`"
    ) in err
    assert (AUTH, text) == (auth.read_text(), combined.read_text())
