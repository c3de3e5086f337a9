"""Poetry gets its credentials from helperd, and ``poetry config`` writes through to it.

Poetry runs from its own cached venv, which holds the plugin (as ``poetry self add ./client``
would put it), with every config, cache and data folder inside the test's sandbox. The test
project's only source is the private index (``priority = "primary"``) and it is not a package
(``package-mode = false``), so nothing is fetched from public PyPI.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from helperd_client import DEFAULT_TIMEOUT, NotFoundError

from helperd.testing import Daemon
from tests.e2e.harness import Result, Sandbox, files_containing
from tests.e2e.index import MODULE, PACKAGE, VERSION, Index
from tests.e2e.toolenv import Tools

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FAIL_BOUND = 5 * DEFAULT_TIMEOUT + 30.0
"""Seconds Poetry may take to give up when helperd cannot answer: 5 client timeouts + start-up."""

PUBLISHED = "helperd-e2e-pubpkg"


def _project(sandbox: Sandbox, index: Index, *, dependency: bool = False) -> Path:
    """A non-package project whose only source is the private index (named ``acme``)."""
    project = sandbox.root / "app"
    project.mkdir()
    dependencies = f'["{PACKAGE}=={VERSION}"]' if dependency else "[]"
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "helperd-e2e-app"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        f"dependencies = {dependencies}\n"
        "\n[tool.poetry]\n"
        "package-mode = false\n"
        "\n[[tool.poetry.source]]\n"
        'name = "acme"\n'
        f'url = "{index.url}"\n'
        'priority = "primary"\n'
    )
    return project


def _poetry(tools: Tools, sandbox: Sandbox, *args: str, cwd: Path | None = None) -> Result:
    return sandbox.run([tools.poetry, "--no-ansi", *args], cwd=cwd)


def _ok(result: Result) -> Result:
    assert 0 == result.returncode, result.describe()
    return result


def _installed(project: Path) -> bool:
    return any(project.glob(f".venv/lib/python*/site-packages/{MODULE}/__init__.py"))


def _auth_toml(sandbox: Sandbox) -> str:
    path = sandbox.poetry_config / "auth.toml"
    return path.read_text() if path.exists() else ""


def _assert_clean_failure(result: Result) -> None:
    assert 0 != result.returncode, result.describe()
    assert result.seconds < FAIL_BOUND, result.describe()
    assert "Traceback" not in result.output, result.describe()
    assert "helperd_client" not in result.output, result.describe()


# --- reading credentials --------------------------------------------------------------------


def test_poetry_add_from_private_source(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """``poetry add --source acme`` installs the private package with nothing in auth.toml."""
    project = _project(sandbox, acme)
    _ok(_poetry(tools, sandbox, "add", "--source", "acme", PACKAGE, cwd=project))

    assert _installed(project)
    assert PACKAGE in (project / "poetry.lock").read_text()
    assert "" == _auth_toml(sandbox)
    assert [] == files_containing(sandbox.root, acme.password)


def test_poetry_install_from_lock(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """``poetry lock`` then ``poetry install`` fetch the private package through helperd."""
    project = _project(sandbox, acme, dependency=True)
    _ok(_poetry(tools, sandbox, "lock", cwd=project))
    _ok(_poetry(tools, sandbox, "install", cwd=project))

    assert _installed(project)
    assert [] == files_containing(sandbox.root, acme.password)


# --- writing through ``poetry config`` ------------------------------------------------------


def test_http_basic_writes_through(
    tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """``poetry config http-basic.acme alice PW`` stores the record in helperd, not auth.toml."""
    _ok(_poetry(tools, sandbox, "config", "repositories.acme", index.url))
    _ok(_poetry(tools, sandbox, "config", "http-basic.acme", index.username, index.password))

    with helperd.client() as client:
        record = client.get(name="acme")
    assert (index.username, index.password, "basic") == (
        record.username,
        record.password,
        record.kind,
    )
    assert index.url in record.urls, "the URL comes from Poetry's config.toml"
    assert 'username = "alice"' in _auth_toml(sandbox)
    assert [] == files_containing(sandbox.root, index.password)


def test_written_credential_serves_poetry_add(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """A password stored by ``poetry config http-basic`` is what a later ``poetry add`` uses."""
    _ok(_poetry(tools, sandbox, "config", "repositories.acme", index.url))
    _ok(_poetry(tools, sandbox, "config", "http-basic.acme", index.username, index.password))
    project = _project(sandbox, index)
    _ok(_poetry(tools, sandbox, "add", "--source", "acme", PACKAGE, cwd=project))

    assert _installed(project)
    assert [] == files_containing(sandbox.root, index.password)


def test_pypi_token_beside_http_basic(
    tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """``pypi-token.acme`` and ``http-basic.acme`` become two records under one name."""
    _ok(_poetry(tools, sandbox, "config", "http-basic.acme", index.username, index.password))
    _ok(_poetry(tools, sandbox, "config", "pypi-token.acme", index.token))

    with helperd.client() as client:
        token = client.get(name="acme", username="__token__")
        basic = client.get(name="acme", username=index.username)
    assert ("__token__", index.token, "token") == (token.username, token.password, token.kind)
    assert (index.username, index.password, "basic") == (
        basic.username,
        basic.password,
        basic.kind,
    )
    assert [] == files_containing(sandbox.root, index.token)
    assert [] == files_containing(sandbox.root, index.password)


def test_unset_deletes(tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon) -> None:
    """``poetry config --unset`` of http-basic and pypi-token deletes the records in helperd."""
    _ok(_poetry(tools, sandbox, "config", "http-basic.acme", index.username, index.password))
    _ok(_poetry(tools, sandbox, "config", "pypi-token.acme", index.token))

    _ok(_poetry(tools, sandbox, "config", "--unset", "http-basic.acme"))
    with helperd.client() as client, pytest.raises(NotFoundError):
        client.get(name="acme", username=index.username)
    assert "http-basic" not in _auth_toml(sandbox)

    _ok(_poetry(tools, sandbox, "config", "--unset", "pypi-token.acme"))
    with helperd.client() as client, pytest.raises(NotFoundError):
        client.get(name="acme", username="__token__")


def test_publish_with_token_from_helperd(
    tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """``poetry publish -r acme`` uploads with the API token that helperd holds."""
    with helperd.client() as client:
        client.set("acme", index.token, username="__token__", kind="token", urls=[index.upload_url])
    _ok(_poetry(tools, sandbox, "config", "repositories.acme", index.upload_url))
    project = sandbox.root / "pub"
    (project / "helperd_e2e_pubpkg").mkdir(parents=True)
    (project / "helperd_e2e_pubpkg" / "__init__.py").write_text('"""Published by a test."""\n')
    (project / "pyproject.toml").write_text(
        "[project]\n"
        f'name = "{PUBLISHED}"\n'
        'version = "0.0.1"\n'
        'requires-python = ">=3.11"\n'
        "\n[build-system]\n"
        'requires = ["poetry-core>=2.0"]\n'
        'build-backend = "poetry.core.masonry.api"\n'
    )
    _ok(_poetry(tools, sandbox, "publish", "--build", "-r", "acme", cwd=project))

    assert list(index.packages.glob("helperd_e2e_pubpkg-0.0.1*"))
    assert [] == files_containing(sandbox.root, index.token)


# --- helperd down, gone or hung: Poetry fails cleanly and promptly ----------------------------


def test_lock_with_stopped_daemon(
    tools: Tools, acme: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """A daemon stopped cleanly removes its socket: the plugin steps aside, Poetry fails fast."""
    project = _project(sandbox, acme, dependency=True)
    helperd.stop()
    assert not helperd.socket.exists()
    _assert_clean_failure(_poetry(tools, sandbox, "lock", cwd=project))


def test_lock_with_killed_daemon(
    tools: Tools, acme: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """A killed daemon leaves a stale socket: connecting is refused, Poetry fails fast."""
    project = _project(sandbox, acme, dependency=True)
    helperd.process.send_signal(signal.SIGKILL)
    helperd.process.wait(timeout=10)
    assert helperd.socket.exists()
    _assert_clean_failure(_poetry(tools, sandbox, "lock", cwd=project))


def test_lock_with_hung_daemon(
    tools: Tools, acme: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """A frozen daemon (SIGSTOP) accepts and never answers: Poetry still finishes promptly."""
    project = _project(sandbox, acme, dependency=True)
    helperd.process.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{helperd.process.pid}/stat").read_text().rpartition(")")[2].split()[
        0
    ] not in {
        "T",
        "t",
    }:
        assert time.monotonic() < deadline, "the daemon did not stop"
        time.sleep(0.01)
    _assert_clean_failure(_poetry(tools, sandbox, "lock", cwd=project))


def test_lock_with_locked_store(tools: Tools, index: Index, locked_sandbox: Sandbox) -> None:
    """With the store locked, ``poetry lock`` fails at once and says ``helperctl unlock`` once."""
    project = _project(locked_sandbox, index, dependency=True)
    done = _poetry(tools, locked_sandbox, "lock", cwd=project)
    _assert_clean_failure(done)
    assert 1 == done.output.count("helperctl unlock"), done.describe()


def test_http_basic_with_killed_daemon_fails_without_plaintext(
    tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """With a stale socket, ``poetry config http-basic`` fails and writes no password anywhere."""
    helperd.process.send_signal(signal.SIGKILL)
    helperd.process.wait(timeout=10)
    done = _poetry(tools, sandbox, "config", "http-basic.acme", index.username, index.password)
    assert 0 != done.returncode, done.describe()
    assert done.seconds < FAIL_BOUND, done.describe()
    assert "helperd" in done.output, done.describe()
    assert [] == files_containing(sandbox.root, index.password)


def test_http_basic_with_locked_store_says_unlock(
    tools: Tools, index: Index, locked_sandbox: Sandbox
) -> None:
    """With the store locked, ``poetry config http-basic`` fails, names the fix, stores nothing."""
    done = _poetry(
        tools, locked_sandbox, "config", "http-basic.acme", index.username, index.password
    )
    assert 0 != done.returncode, done.describe()
    assert "helperctl unlock" in done.output, done.describe()
    assert [] == files_containing(locked_sandbox.root, index.password)
