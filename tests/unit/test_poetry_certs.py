"""Poetry's client-cert settings: found, pointed elsewhere with the rest kept, keys stripped."""

from __future__ import annotations

from pathlib import Path

import pytest

from helperd.integrations.auth_file import PoetryFileError, read_auth
from helperd.integrations.poetry_certs import ClientCert, client_certs, replace_paths, strip_key
from tests.support.certs import TestCA, make_ca

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
