"""``helperctl install-shim`` writes its file without following anything planted in the folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from helperd.ctl.main import cli
from helperd.stores import durable

VICTIM_TEXT = "a file the user cares about\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the shim's folder that a planted link points at."""
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    os.chmod(path, 0o600)
    return path


def _install(folder: Path) -> tuple[int, str]:
    done = CliRunner().invoke(cli, ["install-shim", "--dir", str(folder)])
    return done.exit_code, done.output


def test_link_at_the_old_fixed_temp_name_is_not_followed(tmp_path: Path, victim: Path) -> None:
    """A link planted where the shim's temporary file used to go (a fixed name) is ignored:
    the shim is written under a random name and the linked file is unchanged."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / ".keyring.helperd-shim.tmp").symlink_to(victim)

    code, output = _install(folder)

    assert 0 == code, output
    assert VICTIM_TEXT == victim.read_text()
    assert 0o600 == stat.S_IMODE(victim.stat().st_mode)
    assert not (folder / "keyring").is_symlink()
    assert 0o755 == stat.S_IMODE((folder / "keyring").stat().st_mode)


def test_link_at_the_temp_name_is_refused(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a link planted at the very temporary name the write draws (O_EXCL, O_NOFOLLOW)
    makes install-shim fail (exit 1) without writing through it or removing it."""
    monkeypatch.setattr(durable.secrets, "token_hex", lambda _n: "guessed")
    folder = tmp_path / "bin"
    folder.mkdir()
    planted = folder / ".keyring.guessed.tmp"
    planted.symlink_to(victim)

    code, output = _install(folder)

    assert 1 == code, output
    assert "could not write" in output
    assert VICTIM_TEXT == victim.read_text()
    assert (True, victim) == (planted.is_symlink(), planted.readlink())
    assert not os.path.lexists(folder / "keyring")


@pytest.mark.parametrize("dangling", [False, True])
def test_link_at_the_target_is_refused(tmp_path: Path, victim: Path, dangling: bool) -> None:
    """A symbolic link named ``keyring`` is never taken for the shim: install-shim and
    --uninstall refuse it (exit 1) and leave the link and its target as they were."""
    folder = tmp_path / "bin"
    folder.mkdir()
    link = folder / "keyring"
    pointed = tmp_path / "gone" if dangling else victim
    link.symlink_to(pointed)

    code, output = _install(folder)
    removed = CliRunner().invoke(cli, ["install-shim", "--dir", str(folder), "--uninstall"])

    assert (1, 1) == (code, removed.exit_code), output
    assert "not written by helperctl install-shim" in output
    assert (True, pointed) == (link.is_symlink(), link.readlink())
    assert VICTIM_TEXT == victim.read_text()
