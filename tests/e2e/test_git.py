"""git, pip and uv authenticate to a private git server through git-credential-helperd.

The server is git's own ``git http-backend`` behind HTTP Basic auth on 127.0.0.1
(tests/e2e/git_server.py); the password lives only in helperd. git finds the helper as
``credential.helper = helperd`` in a global config file of the sandbox's own
(``GIT_CONFIG_GLOBAL``; the real ``~/.gitconfig`` is never read or written). pip and uv install
the package in that repository from ``git+http://...``: both run git, which runs the helper.
Builds are offline (``--no-index``, ``--no-build-isolation`` with the pip environment's
setuptools), so an install that succeeds proves the clone authenticated.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helperd.testing import Daemon
from tests.e2e.git_server import MODULE, PACKAGE, GitServer, make_package_repo, running_git_server
from tests.e2e.harness import Result, Sandbox, files_containing
from tests.e2e.toolenv import Tools
from tests.support.tools import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HELPER = Path(sys.executable).parent / "git-credential-helperd"
USERNAME = "carol"


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    """A git server on 127.0.0.1 with one repository, for carol and a fresh password only."""
    require_tool("git")
    root = tmp_path / "repos"
    root.mkdir()
    make_package_repo(root)
    with running_git_server(root, USERNAME, "pw " + secrets.token_hex(8)) as served:
        yield served


@pytest.fixture
def helper_bin(tmp_path: Path) -> Path:
    """A PATH folder holding only the worktree's ``git-credential-helperd``."""
    folder = tmp_path / "helper-bin"
    folder.mkdir()
    (folder / HELPER.name).symlink_to(HELPER)
    return folder


@pytest.fixture
def git_sandbox(sandbox: Sandbox, helper_bin: Path) -> Sandbox:
    """The sandbox, with helperd as git's only credential helper (see `_run`)."""
    (sandbox.root / "gitconfig").write_text("[credential]\n\thelper = helperd\n")
    sandbox.path = (helper_bin, *sandbox.path)
    return sandbox


def _run(
    sandbox: Sandbox,
    args: list[str | Path],
    stdin: str | None = None,
    cwd: Path | None = None,
    **extra: str,
) -> Result:
    """Run in the sandbox with its git config alone (no system or user file) and no prompt."""
    git_env = {
        "GIT_CONFIG_GLOBAL": str(sandbox.root / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        **extra,
    }
    return sandbox.run(args, stdin=stdin, cwd=cwd, extra_env=git_env)


def _hold(helperd: Daemon, server: GitServer, password: str | None = None) -> None:
    with helperd.client() as client:
        url = f"http://127.0.0.1:{server.port}/"
        client.set("gitsrv", password or server.password, username=USERNAME, urls=[url])


def _clone(sandbox: Sandbox, server: GitServer, into: str) -> Result:
    return _run(sandbox, ["git", "clone", "-q", server.url(), into])


def test_server_requires_credentials(git_sandbox: Sandbox, git_server: GitServer) -> None:
    """Without a password in helperd, the clone fails: the server really asks for one."""
    done = _clone(git_sandbox, git_server, "nope")
    assert 0 != done.returncode, done.describe()
    assert not (git_sandbox.work / "nope" / "pyproject.toml").exists()


def test_credential_fill_answers_from_helperd(
    git_sandbox: Sandbox, git_server: GitServer, helperd: Daemon
) -> None:
    """``git credential fill`` gets carol's username and password from the helper (git drops
    the path unless ``credential.useHttpPath`` is set)."""
    _hold(helperd, git_server)
    host = f"127.0.0.1:{git_server.port}"
    done = _run(
        git_sandbox,
        ["git", "credential", "fill"],
        stdin=f"protocol=http\nhost={host}\npath=pkg.git\n\n",
    )
    assert 0 == done.returncode, done.describe()
    expected = f"protocol=http\nhost={host}\nusername={USERNAME}\n"
    assert expected + f"password={git_server.password}\n" == done.stdout


def test_git_clone_authenticates_through_helperd(
    git_sandbox: Sandbox, git_server: GitServer, helperd: Daemon
) -> None:
    """git clone of the private repository succeeds with the password only in helperd, and
    the password is written to no file of the sandbox (no plaintext helper behind it)."""
    _hold(helperd, git_server)
    done = _clone(git_sandbox, git_server, "pkg")
    assert 0 == done.returncode, done.describe()
    assert (git_sandbox.work / "pkg" / "pyproject.toml").is_file()
    assert [] == files_containing(git_sandbox.root, git_server.password)


def test_credential_approve_stores_and_reject_erases(
    git_sandbox: Sandbox, git_server: GitServer, helperd: Daemon
) -> None:
    """``git credential approve`` (what git runs after a login) stores the credential in
    helperd, a clone then works from it; ``git credential reject`` erases it again."""
    lines = (
        f"protocol=http\nhost=127.0.0.1:{git_server.port}\n"
        f"username={USERNAME}\npassword={git_server.password}\n\n"
    )
    assert 0 == _run(git_sandbox, ["git", "credential", "approve"], stdin=lines).returncode
    with helperd.client() as client:
        stored = client.get(name=f"git-127.0.0.1-{git_server.port}", username=USERNAME)
        assert git_server.password == stored.password
    assert 0 == _clone(git_sandbox, git_server, "pkg").returncode
    assert 0 == _run(git_sandbox, ["git", "credential", "reject"], stdin=lines).returncode
    with helperd.client() as client:
        assert [] == client.list()


def test_wrong_password_fails_and_is_erased(
    git_sandbox: Sandbox, git_server: GitServer, helperd: Daemon
) -> None:
    """A wrong password in helperd: the clone fails cleanly, and git's erase removes exactly
    that record (its URL, username and password match)."""
    _hold(helperd, git_server, password="not it")
    done = _clone(git_sandbox, git_server, "pkg")
    assert 0 != done.returncode, done.describe()
    assert "Traceback" not in done.output, done.describe()
    with helperd.client() as client:
        assert [] == client.list()


def _pip(sandbox: Sandbox, tools: Tools, server: GitServer, target: Path) -> Result:
    return _run(
        sandbox,
        [
            tools.pip_python,
            *("-m", "pip", "install", "--no-input", "--no-deps", "--no-index"),
            *("--no-build-isolation", "--target", str(target), f"git+{server.url()}"),
        ],
    )


def test_pip_installs_a_git_dependency_through_helperd(
    git_sandbox: Sandbox, git_server: GitServer, helperd: Daemon, tools: Tools
) -> None:
    """``pip install git+http://...`` of the private repository: pip runs git, git asks the
    helper, and the package lands in the target."""
    _hold(helperd, git_server)
    target = git_sandbox.root / "pip-target"
    done = _pip(git_sandbox, tools, git_server, target)
    assert 0 == done.returncode, done.describe()
    assert (target / MODULE / "__init__.py").is_file()
    assert git_server.password not in done.output


def test_uv_installs_a_git_dependency_through_helperd(
    git_sandbox: Sandbox, git_server: GitServer, helperd: Daemon, tools: Tools
) -> None:
    """``uv pip install git+http://...``: uv runs git, git asks the helper."""
    _hold(helperd, git_server)
    target = git_sandbox.root / "uv-target"
    done = _run(
        git_sandbox,
        [
            tools.uv,
            *("pip", "install", "--no-index", "--no-deps", "--no-build-isolation"),
            *("--python", str(tools.pip_python), "--target", str(target)),
            f"git+{git_server.url()}",
        ],
    )
    assert 0 == done.returncode, done.describe()
    assert (target / MODULE / "__init__.py").is_file()
    assert git_server.password not in done.output


def test_pip_fails_cleanly_without_the_password(
    git_sandbox: Sandbox, git_server: GitServer, tools: Tools
) -> None:
    """With nothing in helperd, pip's git clone fails (no prompt, no hang) and nothing lands."""
    target = git_sandbox.root / "pip-target"
    done = _pip(git_sandbox, tools, git_server, target)
    assert 0 != done.returncode, done.describe()
    assert not (target / MODULE).exists()


@pytest.mark.parametrize("system_git", [True, False], ids=["system-git", "dulwich"])
def test_poetry_locks_a_git_dependency_through_helperd(
    git_sandbox: Sandbox, git_server: GitServer, helperd: Daemon, tools: Tools, system_git: bool
) -> None:
    """``poetry lock`` of a project with the private git dependency: with
    ``system-git-client`` Poetry runs git, which asks the helper; by default Poetry's dulwich
    asks the keyring backend (helperd's plugin in Poetry's environment) for the same record,
    with no git helper configured, so that Poetry's fallback to git cannot be what worked."""
    _hold(helperd, git_server)
    project = git_sandbox.root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "helperd-git-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{PACKAGE} @ git+{git_server.url()}"]\n'
        "\n[tool.poetry]\npackage-mode = false\n"
    )
    done = _run(
        git_sandbox,
        [tools.poetry, "--no-ansi", "lock"],
        cwd=project,
        POETRY_SYSTEM_GIT_CLIENT=str(system_git).lower(),
        **({} if system_git else {"GIT_CONFIG_GLOBAL": os.devnull}),
    )
    assert 0 == done.returncode, done.describe()
    assert git_server.url() in (project / "poetry.lock").read_text()
    assert [] == files_containing(git_sandbox.root, git_server.password)
