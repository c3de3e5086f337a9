"""``helperctl import-poetry`` leaves no moved secret behind silently: hard links, editor
backups and symbolic links, with the console script, a real daemon and real files."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from helperd.testing import Daemon
from tests.integration.test_import_exec import AUTH_TOML, SECRETS, helperctl
from tests.support.tools import require_tool

BACKUPS = ("auth.toml~", ".auth.toml.swp", "auth.toml.bak", "auth.toml.orig")


@pytest.fixture
def env(key_daemon: Daemon, tmp_path: Path) -> dict[str, str]:
    """helperctl's environment: the daemon's HELPERD_HOME and a private Poetry config folder."""
    config = tmp_path / "pypoetry"
    config.mkdir()
    return {**key_daemon.env, "POETRY_CONFIG_DIR": str(config)}


def _held(daemon: Daemon) -> list[tuple[str, str]]:
    with daemon.client() as client:
        return sorted((r.name, r.username) for r in client.list())


def _no_secret_in(*outputs: str) -> bool:
    return all(secret not in output for secret in SECRETS for output in outputs)


def test_hard_link_is_refused_and_nothing_changes(key_daemon: Daemon, env: dict[str, str]) -> None:
    """An auth.toml with a second hard link (a 0644 auth.toml.orig) makes import-poetry exit 1,
    naming the other link and the way to find them all; the file, the link and the store
    stay as they were."""
    config = Path(env["POETRY_CONFIG_DIR"])
    auth = config / "auth.toml"
    auth.write_text(AUTH_TOML)
    os.chmod(auth, 0o644)
    os.link(auth, config / "auth.toml.orig")

    done = helperctl(env, "import-poetry")

    assert 1 == done.returncode, done.stderr
    assert f"has 1 other hard link: {config / 'auth.toml.orig'}" in done.stderr
    assert f"find / -xdev -samefile {auth}" in done.stderr
    assert "nothing was changed" in done.stderr
    assert (AUTH_TOML, AUTH_TOML) == (auth.read_text(), (config / "auth.toml.orig").read_text())
    assert (2, 0o644) == (auth.stat().st_nlink, stat.S_IMODE(auth.stat().st_mode))
    assert [] == _held(key_daemon)
    assert _no_secret_in(done.stdout, done.stderr)


@pytest.mark.parametrize("backup", BACKUPS)
def test_backup_is_kept_and_warned_about(
    key_daemon: Daemon, env: dict[str, str], backup: str
) -> None:
    """A backup beside auth.toml that holds a moved secret is kept as it is and named in a
    warning; a backup holding none is not mentioned; the output ends with the advice to
    rotate, and never a secret."""
    config = Path(env["POETRY_CONFIG_DIR"])
    (config / "auth.toml").write_text(AUTH_TOML)
    swap = b"\x00vim swap\x00" if backup.endswith(".swp") else b""
    copy = swap + AUTH_TOML.encode()
    (config / backup).write_bytes(copy)
    unrelated = config / ("auth.toml.bak" if backup != "auth.toml.bak" else "auth.toml~")
    unrelated.write_text('[http-basic.acme]\nusername = "alice"\n')

    done = helperctl(env, "import-poetry")

    assert 0 == done.returncode, done.stderr
    assert f"warning: {config / backup} holds 2 of the moved secrets; it was kept" in done.stderr
    assert str(unrelated) not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("rotate the moved secrets")
    assert copy == (config / backup).read_bytes()
    assert all(s not in (config / "auth.toml").read_text() for s in SECRETS)
    assert [("acme", "alice"), ("pypi", "__token__")] == _held(key_daemon)
    assert _no_secret_in(done.stdout, done.stderr)


@pytest.mark.parametrize("backup", BACKUPS)
def test_backup_is_deleted_with_the_flag(
    key_daemon: Daemon, env: dict[str, str], backup: str
) -> None:
    """With --delete-backups, a backup holding a moved secret is deleted and said so; one
    holding none stays."""
    config = Path(env["POETRY_CONFIG_DIR"])
    (config / "auth.toml").write_text(AUTH_TOML)
    (config / backup).write_text(AUTH_TOML.replace(SECRETS[1], "an-old-token"))
    unrelated = config / ("auth.toml.bak" if backup != "auth.toml.bak" else "auth.toml~")
    unrelated.write_text("nothing secret\n")

    done = helperctl(env, "import-poetry", "--delete-backups")

    assert 0 == done.returncode, done.stderr
    assert f"deleted {config / backup}: it held 1 moved secret(s)" in done.stderr
    assert not os.path.lexists(config / backup)
    assert "nothing secret\n" == unrelated.read_text()
    assert ["auth.toml", unrelated.name] == sorted(p.name for p in config.iterdir())
    assert _no_secret_in(done.stdout, done.stderr)


@pytest.mark.parametrize("in_git", [False, True])
def test_symlink_target_is_rewritten_in_place(
    key_daemon: Daemon, env: dict[str, str], tmp_path: Path, in_git: bool
) -> None:
    """A symlinked auth.toml stays a link; the file behind it is rewritten, keeping its mode,
    and named in the output; inside a git work tree a warning says so."""
    dotfiles = tmp_path / "dotfiles"
    (dotfiles / "poetry").mkdir(parents=True)
    if in_git:
        git = require_tool("git")
        subprocess.run([git, "init", "-q", str(dotfiles)], check=True, timeout=30)
    target = dotfiles / "poetry" / "auth.toml"
    target.write_text(AUTH_TOML)
    os.chmod(target, 0o640)
    link = Path(env["POETRY_CONFIG_DIR"]) / "auth.toml"
    link.symlink_to(target)

    done = helperctl(env, "import-poetry")

    assert 0 == done.returncode, done.stderr
    assert (True, target) == (link.is_symlink(), link.readlink())
    rewritten = target.read_text()
    assert all(s not in rewritten for s in SECRETS)
    assert '[certificates.acme]\ncert = "/etc/ssl/acme-ca.pem"\n' in rewritten
    assert 0o640 == stat.S_IMODE(target.stat().st_mode)
    assert [target.name] == [p.name for p in target.parent.iterdir()]
    assert f"the file behind it, {target}, is the one rewritten (the link stays)" in done.stderr
    warned = f"warning: {target} sits inside the git work tree {dotfiles}" in done.stderr
    assert in_git == warned
    assert done.stderr.splitlines()[-1].startswith("rotate the moved secrets")
    assert _no_secret_in(done.stdout, done.stderr)
