"""Which Python ``scripts/install.sh`` builds a root install from (``--which-python``).

As root the venv serves every user, so its Python must be one every user can run. A
``python3`` first on PATH that sits under a 0700 folder (a pyenv Python under root's home) is
passed over, with a warning, for ``/usr/bin/python3``; the script refuses only when no usable
interpreter is left. The stand-in for the pyenv Python is a copy of the system interpreter's
binary in a private folder (it still finds the system's standard library). Nothing is
installed: ``--which-python`` stops after choosing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.tools import require, require_root

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture
def private_python() -> Iterator[Path]:
    """A working ``python3`` in a bin folder under a 0700 folder in /tmp, like root's pyenv.

    Not under pytest's own temporary folder: that is 0700 too, and the control test needs a
    path that is open all the way once the private folder is opened.
    """
    require_root("install.sh chooses a shared Python only as root")
    require(SYSTEM_PYTHON.exists(), f"needs {SYSTEM_PYTHON}")
    home = Path(tempfile.mkdtemp(prefix="helperd-root-home-", dir="/tmp"))  # 0700
    try:
        (home / "bin").mkdir()
        shutil.copy2(SYSTEM_PYTHON.resolve(), home / "bin" / "python3")
        yield home / "bin" / "python3"
    finally:
        shutil.rmtree(home)


def _which(python_first: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{python_first.parent}:/usr/bin:/bin"
    return subprocess.run(
        ["/bin/bash", str(REPO / "scripts" / "install.sh"), "--which-python"],
        env={"PATH": path, "HOME": str(python_first.parent.parent), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_private_python_first_on_path_gives_way_to_the_system_one(private_python: Path) -> None:
    """A python3 under a 0700 folder first on PATH: install.sh warns, naming it, and picks
    /usr/bin/python3."""
    done = _which(private_python)

    assert (0, f"{SYSTEM_PYTHON.resolve()}\n") == (done.returncode, done.stdout), done.stderr
    assert f"warning: {private_python} is not usable by every user" in done.stderr


def test_the_same_python_in_an_open_folder_is_used(private_python: Path) -> None:
    """The control: once its folder lets others in, the python3 first on PATH is the one."""
    private_python.parent.parent.chmod(0o755)

    done = _which(private_python)

    assert (0, f"{private_python}\n") == (done.returncode, done.stdout), done.stderr


def test_refuses_when_no_shared_python_is_left(private_python: Path) -> None:
    """PYTHON naming only the private interpreter: exit 1, saying none every user can run."""
    done = _which(private_python, PYTHON=str(private_python))

    assert 1 == done.returncode
    assert "error: no Python 3.11 or newer that every user can run" in done.stderr
    assert os.access(private_python, os.X_OK), "the script never touches the interpreter"
