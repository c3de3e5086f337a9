"""A private index that requires a client certificate serves Poetry, pip and uv, the key only
inside helperd: ``helperctl set-cert`` stores it, the daemon writes it to a tmpfs file while the
store is unlocked, ``helperctl cert-path`` names that file, and ``helperctl lock`` removes it.

In front of the authenticated pypiserver runs a TLS proxy on 127.0.0.1 (Python ``ssl``,
``CERT_REQUIRED``) that trusts only a test CA made with ``cryptography``. The client key handed
to ``set-cert`` is encrypted; the only plaintext copy is the daemon's file on the tmpfs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helperd.core.config import cert_folder
from helperd.testing import Daemon, start_daemon
from tests.e2e.harness import Result, Sandbox, files_containing
from tests.e2e.index import MODULE, PACKAGE, Index
from tests.e2e.tls_proxy import TlsProxy, running_proxy
from tests.e2e.toolenv import Tools
from tests.support.certs import TestCA, make_ca

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HELPERCTL = [sys.executable, "-c", "from helperd.ctl.main import main; main()"]
PASSPHRASE = "cert e2e passphrase"


@dataclass
class Mtls:
    """Everything one test needs: the daemon, its CA, the proxy and a sandbox."""

    daemon: Daemon
    ca: TestCA
    proxy: TlsProxy
    index: Index
    sandbox: Sandbox
    runtime: Path

    def helperctl(self, *args: str, stdin: str | None = None) -> Result:
        return self.sandbox.run([*HELPERCTL, *args], stdin=stdin)

    def cert_path(self) -> Path:
        shown = self.helperctl("cert-path", "acme")
        assert 0 == shown.returncode, shown.describe()
        return Path(shown.stdout.strip())

    @property
    def basic(self) -> str:
        return f"{self.index.username}:{self.index.password}"


@pytest.fixture
def mtls(tools: Tools, index: Index, home: Path, tmp_path: Path) -> Iterator[Mtls]:
    """A passphrase store holding alice's password and the client certificate, unlocked."""
    del tools  # built before the daemon starts, so that its build time is not the test's
    runtime = Path(tempfile.mkdtemp(prefix="hd-run-", dir="/dev/shm"))  # a tmpfs of our own
    ca = make_ca(tmp_path / "ca")
    daemon = start_daemon(
        home, "--store", "file", "--log-level", "debug", env={"XDG_RUNTIME_DIR": str(runtime)}
    )
    try:
        with running_proxy(index.port, ca.server_cert, ca.server_key, ca.ca) as proxy:
            sandbox = Sandbox(tmp_path / "sandbox", daemon.home)
            with daemon.client() as client:
                client.init(PASSPHRASE)
                client.set("acme", index.password, username=index.username, urls=[proxy.url()])
            setup = Mtls(daemon, ca, proxy, index, sandbox, runtime)
            stored = setup.helperctl(
                *("set-cert", "acme", "--client-cert", str(ca.client_cert)),
                *("--key", str(ca.client_key), "--key-passphrase-stdin"),
                stdin=ca.passphrase,
            )
            assert 0 == stored.returncode, stored.describe()
            yield setup
    finally:
        daemon.stop()
        shutil.rmtree(runtime, ignore_errors=True)


def _key_text(ca: TestCA) -> str:
    """The base64 body of the client's unencrypted key: what must never be in a file but one."""
    lines = ca.client_key_plain.read_text().splitlines()
    return "".join(line for line in lines if not line.startswith("-----"))[:48]


def _pip(mtls: Mtls, tools: Tools, target: Path, *cert: str) -> Result:
    return mtls.sandbox.run(
        [
            tools.pip_python,
            *("-m", "pip", "install", "--no-input", "--no-deps", "--no-cache-dir"),
            *("--index-url", mtls.proxy.url(mtls.basic), "--cert", str(mtls.ca.ca)),
            *cert,
            *("--target", str(target), PACKAGE),
        ]
    )


def _uv(mtls: Mtls, tools: Tools, target: Path, cert_file: Path | None) -> Result:
    env = {"SSL_CERT_FILE": str(mtls.ca.ca)}
    if cert_file is not None:
        env["SSL_CLIENT_CERT"] = str(cert_file)
    return mtls.sandbox.run(
        [
            tools.uv,
            *("pip", "install", "--no-deps", "--python", str(tools.pip_python)),
            *("--index-url", mtls.proxy.url(mtls.basic), "--target", str(target), PACKAGE),
        ],
        extra_env=env,
    )


def _installed(target: Path) -> bool:
    return (target / MODULE / "__init__.py").is_file()


def test_the_proxy_requires_a_client_certificate(tools: Tools, mtls: Mtls) -> None:
    """Without a client certificate pip and uv fail the handshake: it is what lets them in."""
    pip_refused = _pip(mtls, tools, mtls.sandbox.root / "pip")
    uv_refused = _uv(mtls, tools, mtls.sandbox.root / "uv", None)

    for refused in (pip_refused, uv_refused):
        assert 0 != refused.returncode, refused.describe()
    assert not _installed(mtls.sandbox.root / "pip")
    assert not _installed(mtls.sandbox.root / "uv")
    assert 2 <= len(mtls.proxy.refused), mtls.proxy.refused


def test_pip_and_uv_install_with_the_key_only_in_helperd(tools: Tools, mtls: Mtls) -> None:
    """pip --client-cert and uv's SSL_CLIENT_CERT take helperd's file and install the package;
    the file is 0600 in a 0700 folder on the tmpfs, and no other file holds the key."""
    path = mtls.cert_path()
    assert cert_folder(mtls.daemon.env) / "acme.pem" == path
    assert mtls.runtime / "helperd" == path.parent.parent
    assert (0o600, 0o700) == (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777)

    pip_done = _pip(mtls, tools, mtls.sandbox.root / "pip", "--client-cert", str(path))
    uv_done = _uv(mtls, tools, mtls.sandbox.root / "uv", path)

    assert 0 == pip_done.returncode, pip_done.describe()
    assert 0 == uv_done.returncode, uv_done.describe()
    assert _installed(mtls.sandbox.root / "pip")
    assert _installed(mtls.sandbox.root / "uv")
    key = _key_text(mtls.ca)
    assert [path] == files_containing(mtls.runtime, key)
    assert [] == files_containing(mtls.daemon.home, key)
    assert [] == files_containing(mtls.sandbox.root, key)
    assert key not in mtls.daemon.log.read_text()


def test_poetry_installs_through_the_client_certificate(tools: Tools, mtls: Mtls) -> None:
    """Poetry's certificates.acme.client-cert names helperd's file: ``poetry add`` installs."""
    sandbox = mtls.sandbox
    poetry = [tools.poetry, "--no-ansi"]
    path = str(mtls.cert_path())
    for key, value in (("client-cert", path), ("cert", str(mtls.ca.ca))):
        configured = sandbox.run([*poetry, "config", f"certificates.acme.{key}", value])
        assert 0 == configured.returncode, configured.describe()
    project = sandbox.root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "helperd-e2e-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        "dependencies = []\n\n[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "acme"\nurl = "{mtls.proxy.url()}"\n'
        'priority = "primary"\n'
    )

    added = sandbox.run([*poetry, "add", "--source", "acme", PACKAGE], cwd=project)

    assert 0 == added.returncode, added.describe()
    assert any(project.glob(f".venv/lib/python*/site-packages/{MODULE}/__init__.py"))
    assert [] == files_containing(sandbox.root, _key_text(mtls.ca))
    assert [] == files_containing(sandbox.root, mtls.index.password)


def test_after_lock_the_file_is_gone_and_installs_fail_cleanly(tools: Tools, mtls: Mtls) -> None:
    """``helperctl lock`` removes the file; cert-path exits 5, pip and uv fail without a
    traceback; after unlock the same path is back."""
    path = mtls.cert_path()

    locked = mtls.helperctl("lock")
    shown = mtls.helperctl("cert-path", "acme")
    pip_failed = _pip(mtls, tools, mtls.sandbox.root / "pip", "--client-cert", str(path))
    uv_failed = _uv(mtls, tools, mtls.sandbox.root / "uv", path)

    assert 0 == locked.returncode, locked.describe()
    assert not path.exists()
    assert [] == list(path.parent.iterdir())
    assert (5, "") == (shown.returncode, shown.stdout), shown.describe()
    for failed in (pip_failed, uv_failed):
        assert 0 != failed.returncode, failed.describe()
        assert "Traceback" not in failed.output, failed.describe()
    assert not _installed(mtls.sandbox.root / "pip")
    assert not _installed(mtls.sandbox.root / "uv")

    unlocked = mtls.helperctl("unlock", "--passphrase-stdin", stdin=PASSPHRASE)
    assert 0 == unlocked.returncode, unlocked.describe()
    assert path == mtls.cert_path()
    assert path.is_file()


def test_import_poetry_moves_the_client_cert_key(tools: Tools, mtls: Mtls) -> None:
    """``import-poetry --move-client-certs`` stores the key of Poetry's client-cert file in
    helperd, points the setting at helperd's file and leaves the certificate alone in the old
    file; Poetry then installs through the proxy with the key in no file of the sandbox."""
    sandbox = mtls.sandbox
    poetry = [tools.poetry, "--no-ansi"]
    old = sandbox.root / "client.pem"
    old.write_text(mtls.ca.client_cert.read_text() + mtls.ca.client_key_plain.read_text())
    old.chmod(0o600)
    for key, value in (("client-cert", str(old)), ("cert", str(mtls.ca.ca))):
        configured = sandbox.run([*poetry, "config", f"certificates.acme.{key}", value])
        assert 0 == configured.returncode, configured.describe()

    moved = mtls.helperctl("import-poetry", "--move-client-certs")

    assert 0 == moved.returncode, moved.describe()
    path = mtls.cert_path()
    auth = tomllib.loads((sandbox.poetry_config / "auth.toml").read_text())
    assert {"client-cert": str(path), "cert": str(mtls.ca.ca)} == auth["certificates"]["acme"]
    assert mtls.ca.client_cert.read_text() == old.read_text()
    key = _key_text(mtls.ca)
    assert key not in moved.output
    assert [] == files_containing(sandbox.root, key)
    project = sandbox.root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "helperd-e2e-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        "dependencies = []\n\n[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "acme"\nurl = "{mtls.proxy.url()}"\n'
        'priority = "primary"\n'
    )
    added = sandbox.run([*poetry, "add", "--source", "acme", PACKAGE], cwd=project)
    assert 0 == added.returncode, added.describe()
