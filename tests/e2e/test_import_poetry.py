"""After ``helperctl import-poetry`` the real Poetry, reading the rewritten config, still
authenticates to the private index: through helperd, with no secret left in any file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helperd.testing import Daemon
from tests.e2e.harness import Sandbox, files_containing
from tests.e2e.index import MODULE, PACKAGE, Index
from tests.e2e.toolenv import Tools
from tests.support.tools import require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HELPERCTL = [sys.executable, "-c", "from helperd.ctl.main import main; main()"]


def test_poetry_authenticates_after_import(
    tools: Tools, index: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """Poetry's auth.toml, a symbolic link into a git work tree with an editor backup beside
    it, holds alice's password; import-poetry --delete-backups moves it into helperd, rewrites
    the file behind the link and deletes the backup; ``poetry add --source acme`` then installs
    the private package, the password coming from helperd alone."""
    git = require_tool("git")
    dotfiles = sandbox.root / "dotfiles"
    dotfiles.mkdir()
    subprocess.run([git, "init", "-q", str(dotfiles)], check=True, timeout=30)
    target = dotfiles / "auth.toml"
    target.write_text(
        f'[http-basic.acme]\nusername = "{index.username}"\npassword = "{index.password}"\n'
    )
    (dotfiles / "auth.toml~").write_text(target.read_text())
    link = sandbox.poetry_config / "auth.toml"
    link.symlink_to(target)
    (sandbox.poetry_config / "config.toml").write_text(
        f'[repositories.acme]\nurl = "{index.url}"\n'
    )

    moved = sandbox.run([*HELPERCTL, "import-poetry", "--delete-backups"])

    assert 0 == moved.returncode, moved.describe()
    assert f"sits inside the git work tree {dotfiles}" in moved.stderr
    assert index.password not in moved.output
    assert (True, target) == (link.is_symlink(), link.readlink())
    assert f'[http-basic.acme]\nusername = "{index.username}"\n' == target.read_text()
    assert [] == files_containing(sandbox.root, index.password)
    with helperd.client() as client:
        record = client.get(url=index.url)
    assert (index.username, index.password) == (record.username, record.password)

    project = sandbox.root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "helperd-e2e-app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        "dependencies = []\n\n[tool.poetry]\npackage-mode = false\n\n"
        f'[[tool.poetry.source]]\nname = "acme"\nurl = "{index.url}"\npriority = "primary"\n'
    )
    added = sandbox.run(
        [tools.poetry, "--no-ansi", "add", "--source", "acme", PACKAGE], cwd=project
    )

    assert 0 == added.returncode, added.describe()
    assert any(project.glob(f".venv/lib/python*/site-packages/{MODULE}/__init__.py"))
    assert [] == files_containing(sandbox.root, index.password)
