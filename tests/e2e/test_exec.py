"""`helperctl exec` with the real programs and no keyring at all: the variables alone carry
the credentials to uv and to Poetry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Result, Sandbox, files_containing
from tests.e2e.index import MODULE, PACKAGE, VERSION, Index
from tests.e2e.toolenv import Tools

pytestmark = pytest.mark.e2e

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}


def _helperctl_exec(sandbox: Sandbox, *command: str | Path, cwd: Path | None = None) -> Result:
    """Run ``helperctl exec --repo acme -- COMMAND`` in the sandbox, with keyring disabled."""
    helperctl = [sys.executable, "-c", "from helperd.ctl.main import main; main()"]
    return sandbox.run(
        [*helperctl, "exec", "--repo", "acme", "--", *command], cwd=cwd, extra_env=NO_KEYRING
    )


def test_uv_installs_through_exec(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """uv, with no keyring provider, installs from the named index with UV_INDEX_ACME_*."""
    config = sandbox.work / "uv.toml"
    config.write_text(f'[[index]]\nname = "acme"\nurl = "{acme.url}"\ndefault = true\n')
    target = sandbox.root / "site"
    args = [tools.uv, "pip", "install", "--no-deps", "--python", str(tools.pip_python)]
    done = _helperctl_exec(
        sandbox, *args, "--config-file", str(config), "--target", str(target), PACKAGE
    )
    assert 0 == done.returncode, done.describe()
    assert (target / MODULE / "__init__.py").is_file()
    assert acme.password not in done.output


def test_uv_without_exec_is_refused(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """The same install without exec fails: the credentials really came from exec."""
    config = sandbox.work / "uv.toml"
    config.write_text(f'[[index]]\nname = "acme"\nurl = "{acme.url}"\ndefault = true\n')
    args = [tools.uv, "pip", "install", "--no-deps", "--python", str(tools.pip_python)]
    target = sandbox.root / "site"
    done = sandbox.run(
        [*args, "--config-file", str(config), "--target", str(target), PACKAGE],
        extra_env=NO_KEYRING,
    )
    assert 0 != done.returncode


def test_poetry_lock_through_exec(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """poetry lock with keyring disabled resolves from the private source via exec's variables;
    nothing is written to auth.toml."""
    project = sandbox.root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "helperd-e2e-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{PACKAGE}=={VERSION}"]\n\n[tool.poetry]\npackage-mode = false\n\n'
        f'[[tool.poetry.source]]\nname = "acme"\nurl = "{acme.url}"\npriority = "primary"\n'
    )
    done = _helperctl_exec(sandbox, tools.poetry, "--no-ansi", "lock", cwd=project)
    assert 0 == done.returncode, done.describe()
    assert PACKAGE in (project / "poetry.lock").read_text()
    assert [] == files_containing(sandbox.root, acme.password)
