"""What ran the benchmarks: the machine, the load on it, and the versions of everything measured."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["load_average", "machine", "source", "versions"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "not found"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages."""
    return os.getloadavg()


def machine() -> dict[str, Any]:
    """CPU, memory, kernel, OS, Python and C compiler of this machine."""
    os_name = "unknown"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "kernel": platform.release(),
        "os": os_name,
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "cc": _first_line([os.environ.get("CC", "cc"), "--version"]),
    }


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _dist_in(python: Path, name: str) -> str:
    code = f"from importlib.metadata import version; print(version({name!r}))"
    return _first_line([str(python), "-c", code])


def versions(envs: Mapping[str, Path]) -> dict[str, str]:
    """Versions of the measured programs and libraries, here and in the e2e venvs."""
    found = {
        name: _dist(name)
        for name in (
            "helperd",
            "helperd-client",
            "keyring",
            "pydantic",
            "pydantic-core",
            "cryptography",
            "keyrings.alt",
            "keyrings.cryptfile",
            "argon2-cffi",
            "pycryptodome",
            "matplotlib",
        )
    }
    for label, python in envs.items():
        package = label.split(" ")[0]
        found[label] = _dist_in(python, package)
    found["gnome-keyring"] = _first_line(["gnome-keyring-daemon", "--version"])
    found["dbus-daemon"] = _first_line(["dbus-daemon", "--version"])
    return found


def source(repo: Path) -> str:
    """The commit measured, and the product files that differ from it (others may be editing)."""
    commit = _first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    done = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "helperd", "client"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    changed = sorted(line[3:] for line in done.stdout.splitlines() if line.strip())
    if not changed:
        return f"commit {commit}, clean"
    return f"commit {commit} + uncommitted changes in {', '.join(changed)}"
