"""helperd.integrations.auth_file: the other places a moved secret of auth.toml can still sit."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from helperd.ctl.main import cli
from helperd.integrations import auth_file
from tests.unit.test_poetry import SAMPLE, SECRETS


def _auth(path: Path) -> auth_file.AuthFile:
    found = auth_file.read_auth(path)
    assert found is not None
    return found


def test_backups_holding_counts_plain_and_escaped_secrets(tmp_path: Path) -> None:
    """A secret counts in a backup as plain text or TOML-escaped; a link named like a backup
    and a backup holding none are not listed; nothing else is looked at."""
    auth = tmp_path / "auth.toml"
    auth.write_text(SAMPLE)
    (tmp_path / "auth.toml~").write_text(SAMPLE)
    (tmp_path / ".auth.toml.swp").write_text('password = "q\\"uote"\n')
    (tmp_path / "auth.toml.orig").symlink_to(tmp_path / "auth.toml~")
    (tmp_path / "auth.toml.bak").write_text("nothing here\n")
    (tmp_path / "auth.toml.old").write_text(SAMPLE)

    found = auth_file.backups_holding(_auth(auth), [*SECRETS, 'q"uote'])

    assert [(tmp_path / "auth.toml~", 3), (tmp_path / ".auth.toml.swp", 1)] == found


def test_backups_beside_the_link_and_its_target(tmp_path: Path) -> None:
    """Behind a symbolic link, backups beside the link and beside the target are both found."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "poetry-auth.toml"
    target.write_text(SAMPLE)
    (tmp_path / "real" / "poetry-auth.toml.bak").write_text(SAMPLE)
    link = tmp_path / "auth.toml"
    link.symlink_to(target)
    (tmp_path / "auth.toml~").write_text(SAMPLE)

    found = auth_file.backups_holding(_auth(link), SECRETS[:1])

    assert [(tmp_path / "auth.toml~", 1), (tmp_path / "real" / "poetry-auth.toml.bak", 1)] == found


def test_hard_links_names_the_other_link(tmp_path: Path) -> None:
    """One link is fine; a second one is named in the refusal, which quotes no secret."""
    auth = tmp_path / "auth.toml"
    auth.write_text(SAMPLE)
    assert auth_file.hard_links(_auth(auth)) is None

    os.link(auth, tmp_path / "keep.toml")
    refusal = auth_file.hard_links(_auth(auth))

    assert refusal is not None
    assert 1 == refusal.exit_code
    assert f"has 1 other hard link: {tmp_path / 'keep.toml'}" in refusal.message
    assert all(secret not in refusal.message for secret in SECRETS)


def test_git_work_tree(tmp_path: Path) -> None:
    """A folder above the file holding .git is its work tree; none above means None."""
    (tmp_path / "repo" / "sub").mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()

    assert tmp_path / "repo" == auth_file.git_work_tree(tmp_path / "repo" / "sub" / "auth.toml")
    assert auth_file.git_work_tree(tmp_path / "auth.toml") is None


def test_dry_run_reports_backups_and_hard_links(tmp_path: Path) -> None:
    """--dry-run names a backup holding a moved secret and changes nothing; a hard link makes
    it exit 1 as the import would."""
    auth = tmp_path / "auth.toml"
    auth.write_text(SAMPLE)
    (tmp_path / "auth.toml~").write_text(SAMPLE)
    runner = CliRunner()
    args = ["import-poetry", "--auth-toml", str(auth), "--dry-run"]

    dry = runner.invoke(cli, args)
    os.link(auth, tmp_path / "auth.toml.orig")
    linked = runner.invoke(cli, args)

    assert 0 == dry.exit_code, dry.output
    assert f"{tmp_path / 'auth.toml~'} holds 3 of the moved secrets" in dry.stderr
    assert "rotate" not in dry.stderr
    assert 1 == linked.exit_code
    assert "other hard link" in linked.stderr
    assert (SAMPLE, SAMPLE) == (auth.read_text(), (tmp_path / "auth.toml~").read_text())


def test_hard_links_through_a_linked_folder(tmp_path: Path) -> None:
    """Reached through a symlinked folder, the file itself is never named as its other link;
    the real second link is, once."""
    (tmp_path / "real").mkdir()
    (tmp_path / "config").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "auth.toml").write_text(SAMPLE)
    os.link(tmp_path / "real" / "auth.toml", tmp_path / "real" / "auth.toml.orig")

    refusal = auth_file.hard_links(_auth(tmp_path / "config" / "auth.toml"))

    assert refusal is not None
    assert f"has 1 other hard link: {tmp_path / 'real' / 'auth.toml.orig'}, which" in (
        refusal.message
    )
