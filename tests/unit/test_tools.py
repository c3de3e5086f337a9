"""The policy for external programs: skip locally, fail in CI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support.tools import in_ci, install_hint, require_tool

MISSING = "helperd-test-no-such-program"


def _make_program(folder: Path, name: str) -> Path:
    """Create an executable file ``name`` in ``folder`` and return its path."""
    program = folder / name
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make PATH a single empty folder, so that only programs put there are found."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


@pytest.mark.parametrize("value", ["true", "TRUE", "True", " true ", "1"])
def test_in_ci_true(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """CI=true (any case) and CI=1 mean CI."""
    monkeypatch.setenv("CI", value)
    assert in_ci() is True


@pytest.mark.parametrize("value", ["", "0", "false", "no", "yes", "on"])
def test_in_ci_false(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Any other value of CI does not mean CI."""
    monkeypatch.setenv("CI", value)
    assert in_ci() is False


def test_in_ci_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CI in the environment, the tests run locally."""
    monkeypatch.delenv("CI", raising=False)
    assert in_ci() is False


def test_found_returns_path_locally(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program on PATH is returned by its full path."""
    monkeypatch.delenv("CI", raising=False)
    program = _make_program(bin_dir, "some-tool")
    assert require_tool("some-tool") == str(program)


def test_found_returns_path_in_ci(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In CI a program that is there is returned too: nothing fails."""
    monkeypatch.setenv("CI", "true")
    program = _make_program(bin_dir, "some-tool")
    assert require_tool("some-tool") == str(program)


def test_not_executable_is_missing(bin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be run does not count as the program."""
    monkeypatch.delenv("CI", raising=False)
    (bin_dir / "some-tool").write_text("not a program\n")
    os.chmod(bin_dir / "some-tool", 0o644)
    with pytest.raises(pytest.skip.Exception):
        require_tool("some-tool")


@pytest.mark.usefixtures("bin_dir")
def test_missing_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locally a missing program skips the test, naming the program and a way to install it."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as excinfo:
        require_tool(MISSING)
    message = str(excinfo.value)
    assert MISSING in message
    assert install_hint(MISSING) in message


@pytest.mark.usefixtures("bin_dir")
def test_missing_skips_when_ci_is_false(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI=false is a local run: a missing program skips."""
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_tool(MISSING)


@pytest.mark.usefixtures("bin_dir")
@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_missing_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """In CI a missing program fails the test: a skip would hide what CI did not check."""
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception) as excinfo:
        require_tool(MISSING)
    message = str(excinfo.value)
    assert message.startswith(f"{MISSING} is required in CI: ")
    assert install_hint(MISSING) in message


@pytest.mark.usefixtures("bin_dir")
def test_ci_failure_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI failure for a Debian program says which package to install."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"gnome-keyring-daemon is required in CI: .*"):
        require_tool("gnome-keyring-daemon")
    assert "apt-get install gnome-keyring" in install_hint("gnome-keyring-daemon")


def test_hint_for_venv_programs() -> None:
    """Programs from the project's venv point to ./scripts/test.sh, not to apt."""
    hint = install_hint("helperctl")
    assert "./scripts/test.sh" in hint
    assert "apt-get" not in hint


def test_require_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unmet requirement fails the test under CI=true and skips it otherwise."""
    from tests.support.tools import require

    require(True, "never raised")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs x"):
        require(False, "needs x")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="needs x"):
        require(False, "needs x")
