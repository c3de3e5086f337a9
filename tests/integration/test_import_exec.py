"""``helperctl import-poetry`` and ``helperctl exec`` as a user runs them: the console script,
a real daemon, real files and a real child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helperd.testing import Daemon

HELPERCTL = str(Path(sys.executable).parent / "helperctl")
ACME_URL = "https://pkgs.acme.test/simple/"
AUTH_TOML = """\
# Poetry credentials, from before helperd
[http-basic.acme]  # the company index
username = "alice"
password = "acme-pw-Q1"

[certificates.acme]
cert = "/etc/ssl/acme-ca.pem"

[pypi-token]
# for poetry publish
pypi = "pypi-token-Z9"
"""
SECRETS = ("acme-pw-Q1", "pypi-token-Z9")
CHILD = (
    "import json, os, sys;"
    "print(json.dumps({k: v for k, v in os.environ.items()"
    " if k.startswith(('POETRY_HTTP', 'POETRY_PYPI', 'UV_', 'TWINE_'))}));"
    "sys.exit(int(sys.argv[1]))"
)


@pytest.fixture
def env(key_daemon: Daemon, tmp_path: Path) -> dict[str, str]:
    """helperctl's environment: the daemon's HELPERD_HOME and a private Poetry config folder."""
    config = tmp_path / "pypoetry"
    config.mkdir()
    return {**key_daemon.env, "POETRY_CONFIG_DIR": str(config)}


def helperctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the helperctl console script with no terminal: stdin is /dev/null."""
    return subprocess.run(
        [HELPERCTL, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_import_poetry_moves_real_file(key_daemon: Daemon, env: dict[str, str]) -> None:
    """A dry run changes nothing; the import leaves no secret in any file of Poetry's config
    folder (no backup, no temporary file), keeps the rest, and the daemon serves the secrets."""
    config = Path(env["POETRY_CONFIG_DIR"])
    (config / "auth.toml").write_text(AUTH_TOML)
    (config / "config.toml").write_text(f'[repositories.acme]\nurl = "{ACME_URL}"\n')

    dry = helperctl(env, "import-poetry", "--dry-run")
    assert 0 == dry.returncode, dry.stderr
    assert AUTH_TOML == (config / "auth.toml").read_text()

    done = helperctl(env, "import-poetry")

    assert 0 == done.returncode, done.stderr
    for output in (dry.stdout, dry.stderr, done.stdout, done.stderr):
        assert all(secret not in output for secret in SECRETS)
    files = sorted(p for p in config.rglob("*") if p.is_file())
    assert ["auth.toml", "config.toml"] == [p.name for p in files]
    for path in files:
        assert all(secret.encode() not in path.read_bytes() for secret in SECRETS)
    rewritten = (config / "auth.toml").read_text()
    assert (
        "# Poetry credentials, from before helperd\n[http-basic.acme]  # the company index\n"
        in (rewritten)
    )
    assert '[certificates.acme]\ncert = "/etc/ssl/acme-ca.pem"\n' in rewritten
    with key_daemon.client() as client:
        acme = client.get(url=ACME_URL + "privpkg/")
        token = client.get(service="poetry-repository-pypi", username="__token__")
    assert ("alice", SECRETS[0], "basic") == (acme.username, acme.password, acme.kind)
    assert ("__token__", SECRETS[1], "token") == (token.username, token.password, token.kind)

    again = helperctl(env, "import-poetry")
    assert 0 == again.returncode
    assert "nothing to import" in again.stderr


def test_exec_gives_the_child_its_variables(key_daemon: Daemon, env: dict[str, str]) -> None:
    """The child sees the read variables of the chosen repository (no upload variables without
    --upload), and its exit status is helperctl's."""
    with key_daemon.client() as client:
        client.set("my-repo.x", "pw-exec-1", username="bob", urls=["https://m.test/upload/"])
        client.set("other", "pw-other", username="carol")

    result = helperctl(env, "exec", "--repo", "my-repo.x", "--", sys.executable, "-c", CHILD, "3")

    assert 3 == result.returncode, result.stderr
    assert {
        "POETRY_HTTP_BASIC_MY_REPO_X_USERNAME": "bob",
        "POETRY_HTTP_BASIC_MY_REPO_X_PASSWORD": "pw-exec-1",
        "UV_INDEX_MY_REPO_X_USERNAME": "bob",
        "UV_INDEX_MY_REPO_X_PASSWORD": "pw-exec-1",
    } == json.loads(result.stdout)
    assert "" == result.stderr


def test_exec_exit_codes(env: dict[str, str], tmp_path: Path) -> None:
    """Unknown repository 125, command not found 127, command not runnable 126."""
    unknown = helperctl(env, "exec", "--repo", "nope", "--", sys.executable, "-c", "")
    missing = helperctl(env, "exec", "--all", "--", str(tmp_path / "no-such-command"))
    not_runnable = helperctl(env, "exec", "--all", "--", str(tmp_path))

    assert (125, 127, 126) == (unknown.returncode, missing.returncode, not_runnable.returncode)
    assert "no basic or token record named 'nope'" in unknown.stderr


def test_exec_without_daemon_exits_125(tmp_path: Path) -> None:
    """With no daemon to ask, exec fails on its own behalf: 125, and nothing runs."""
    marker = tmp_path / "ran"
    env = {"HELPERD_SOCKET": str(tmp_path / "none.sock"), "PATH": "/usr/bin:/bin"}

    result = helperctl(env, "exec", "--all", "--", "touch", str(marker))

    assert 125 == result.returncode
    assert "not running" in result.stderr
    assert not marker.exists()
