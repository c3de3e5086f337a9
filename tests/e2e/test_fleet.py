"""A fleet runner: the index's password is held only in a real ``bao server -dev``; helperd reads
it through ``[upstream]`` and Poetry, pip and uv install from the private index on a machine
where the password was never typed (docs/fleet.md).

Also: the password rotated upstream (and in the index's htpasswd) is served after the TTL; the
engine stopped, installs go on from the cache until ``max_stale``, then fail with a message
that names the engine's address; a secret deleted upstream disappears.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helperd_client import Client
from helperd_client.errors import NotFoundError, StoreUnavailableError

from helperd.testing import Daemon, start_daemon
from tests.e2e.harness import Result, Sandbox, files_containing
from tests.e2e.index import MODULE, PACKAGE, Index, running_index
from tests.e2e.toolenv import Tools
from tests.integration.upstream import RUNNER_POLICY, policy_token, put, root
from tests.support.bao import Bao, running_bao

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

BOUND = 60.0
"""Seconds a change may take to show: far above the 2 s TTL (no speed is asserted)."""

_HASH = """
import sys
from passlib.hash import apr_md5_crypt
print(f"alice:{apr_md5_crypt.hash(sys.stdin.read())}")
"""


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[Bao]:
    """A real ``bao server -dev`` on 127.0.0.1, stopped by PID afterwards."""
    folder = tmp_path / "bao"
    folder.mkdir(mode=0o700)
    with running_bao(folder) as server:
        yield server


@pytest.fixture
def own_index(tools: Tools, private_wheel: Path, tmp_path: Path) -> Iterator[Index]:
    """This test's own pypiserver (its htpasswd is rewritten when the password rotates)."""
    folder = tmp_path / "index"
    folder.mkdir()
    with running_index(tools.pypiserver_env, folder, private_wheel) as served:
        yield served


def runner(home: Path, key_file: Path, bao: Bao, *, max_stale: int = 86_400) -> Daemon:
    """A runner's helperd: a key-file store, ``[upstream]`` with the read-only runner policy's
    token, a 2 s TTL."""
    token_file = home / "bao-token"
    token_file.write_text(policy_token(bao, RUNNER_POLICY) + "\n")
    token_file.chmod(0o600)
    config = home / "config.toml"
    config.write_text(
        f'[upstream]\naddress = "{bao.address}"\ntoken_file = "{token_file}"\n'
        f"ttl_seconds = 2\nmax_stale_seconds = {max_stale}\n"
    )
    config.chmod(0o600)
    return start_daemon(
        home, "--store", "file", "--log-level", "debug", env={"HELPERD_KEY_FILE": str(key_file)}
    )


@contextlib.contextmanager
def stopping(daemon: Daemon) -> Iterator[Daemon]:
    """Stop ``daemon`` however the test ends."""
    try:
        yield daemon
    finally:
        daemon.stop()


def until(check: Callable[[], object], what: str) -> None:
    """Poll ``check`` until it is true (a daemon error counts as not yet)."""
    deadline = time.monotonic() + BOUND
    while True:
        with contextlib.suppress(NotFoundError, StoreUnavailableError):
            if check():
                return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def served(client: Client, index: Index) -> str:
    """The password helperd serves for the index's URL."""
    return client.get(url=index.url).password


def pip_install(tools: Tools, sandbox: Sandbox, index: Index) -> Result:
    """pip (beside the plugin) installs the private package into a fresh folder."""
    target = sandbox.root / f"site-{secrets.token_hex(4)}"
    return sandbox.run(
        [
            tools.plugin_python,
            *("-m", "pip", "install", "--no-input", "--no-deps", "--no-cache-dir"),
            *("--keyring-provider", "import", "--index-url", index.url),
            *("--target", str(target), PACKAGE),
        ]
    )


def installed(result: Result, sandbox: Sandbox) -> bool:
    """Whether the install succeeded and the package is there."""
    return 0 == result.returncode and any(sandbox.root.glob(f"site-*/{MODULE}/__init__.py"))


def rotate_htpasswd(tools: Tools, index: Index, password: str) -> None:
    """Give alice ``password`` in the index's htpasswd (pypiserver reads it again)."""
    line = subprocess.run(
        [str(tools.pypiserver_env / "bin" / "python"), "-c", _HASH],
        input=password,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    (index.packages.parent / "htpasswd").write_text(line)
    index.password = password


def test_poetry_pip_uv_install_with_the_password_only_in_bao(
    *, tools: Tools, own_index: Index, bao: Bao, home: Path, key_file: Path, tmp_path: Path
) -> None:
    """Poetry, pip and uv install from the private index; the password was only ever written
    to bao, and it is in no file of the runner's."""
    index = own_index
    put(bao, "acme", username=index.username, password=index.password, urls=index.url)
    with stopping(runner(home, key_file, bao)) as daemon, daemon.client() as client:
        until(lambda: served(client, index) == index.password, "the first refresh")
        assert [("acme", "upstream")] == [(r.name, r.source) for r in client.list()]
        sandbox = Sandbox(tmp_path / "sandbox", daemon.home)

        pip = pip_install(tools, sandbox, index)
        assert installed(pip, sandbox), pip.describe()
        uv = sandbox.run(
            [
                tools.uv,
                *("pip", "install", "--no-deps", "--keyring-provider", "subprocess"),
                *("--index-url", index.url_with_user(), "--target", str(sandbox.root / "uv")),
                PACKAGE,
            ],
            path=(tools.keyring_bin,),
        )
        assert 0 == uv.returncode, uv.describe()
        project = sandbox.root / "app"
        project.mkdir()
        (project / "pyproject.toml").write_text(
            '[project]\nname = "fleet-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            "dependencies = []\n\n[tool.poetry]\npackage-mode = false\n\n"
            f'[[tool.poetry.source]]\nname = "acme"\nurl = "{index.url}"\npriority = "primary"\n'
        )
        poetry = sandbox.run(
            [tools.poetry, "--no-ansi", "add", "--source", "acme", PACKAGE], cwd=project
        )
        assert 0 == poetry.returncode, poetry.describe()
    assert [] == files_containing(home, index.password)
    assert [] == files_containing(sandbox.root, index.password)


def test_rotation_outage_max_stale_and_deletion(
    *, tools: Tools, own_index: Index, bao: Bao, home: Path, key_file: Path, tmp_path: Path
) -> None:
    """The password rotated upstream is served after the TTL and installs; with the engine
    stopped, installs go on from the cache until max_stale, then fail naming the engine."""
    index = own_index
    put(bao, "acme", username=index.username, password=index.password, urls=index.url)
    daemon = runner(home, key_file, bao, max_stale=20)
    with stopping(daemon), daemon.client() as client:
        sandbox = Sandbox(tmp_path / "sandbox", daemon.home)
        until(lambda: served(client, index) == index.password, "the first refresh")

        rotated = secrets.token_urlsafe(18)
        rotate_htpasswd(tools, index, rotated)
        put(bao, "acme", username=index.username, password=rotated, urls=index.url)
        until(lambda: served(client, index) == rotated, "the rotated password")
        again = pip_install(tools, sandbox, index)
        assert installed(again, sandbox), again.describe()

        bao.stop()
        until(lambda: client.status().upstream["result"] == "engine_down", "a failed refresh")
        down = pip_install(tools, sandbox, index)
        assert 0 == down.returncode, down.describe()

        until(lambda: client.status().upstream["state"] == "expired", "max_stale")
        refused = pip_install(tools, sandbox, index)
        assert 0 != refused.returncode, refused.describe()
        assert f"upstream secret engine {bao.address}" in refused.output, refused.describe()
        assert "Traceback" not in refused.output, refused.describe()


def test_secret_deleted_upstream_disappears(
    own_index: Index, bao: Bao, home: Path, key_file: Path
) -> None:
    """A secret deleted upstream is gone at the next refresh: not listed, not served."""
    index = own_index
    put(bao, "acme", username=index.username, password=index.password, urls=index.url)
    with stopping(runner(home, key_file, bao)) as daemon, daemon.client() as client:
        until(lambda: served(client, index), "the first refresh")
        root(bao).secrets.kv.v2.delete_metadata_and_all_versions(
            path="helperd/acme", mount_point="secret"
        )
        until(lambda: not client.list(), "the deletion")
        with pytest.raises(NotFoundError):
            client.get(url=index.url)
