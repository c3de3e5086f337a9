"""Issue 8: ``uv lock`` of a project with several private packages, the shim vs the plugin.

The project depends on five packages of a local pypiserver that demands basic auth, and each of
those on one more, so uv resolves ten private packages (eleven with the project). uv runs with
``--keyring-provider subprocess``, ``alice@`` in the index URL and no cache at all, so every run
fetches every page from the index and asks ``keyring`` for the password. Three setups take
turns, each run in a fresh copy of the project without a lock file:

- shim: the ``keyring`` of ``helperctl install-shim`` first on PATH, the real CLI behind it;
- plugin: the real ``keyring`` CLI with helperd's plugin (the e2e keyring venv) on PATH;
- URL: the password in the index URL (given in the environment, never in argv) and no
  ``keyring`` on PATH: the resolution with no credential lookup at all, the floor.

A first, untimed run of the shim and the plugin goes through a wrapper that logs every
``keyring`` call, so the report can say how many lookups a resolution makes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from helperd_client import Client

from bench.process import helperd_daemon, new_key_file
from bench.stats import summarize
from helperd.integrations.shim_install import write_shim
from tests.e2e.harness import Sandbox
from tests.e2e.index import Index, build_wheel, running_index
from tests.e2e.toolenv import UV_VERSION, Tools

__all__ = ["PACKAGES", "uv_lock"]

DIRECT = 5
PACKAGES = 2 * DIRECT
"""Private packages a resolution takes: ``DIRECT`` the project names, each needing one more."""

SETUPS = ("shim", "plugin", "url")


def _name(number: int) -> str:
    return f"helperd-bench-pkg-{number:02d}"


def _wheels(folder: Path) -> list[Path]:
    return [
        build_wheel(folder, _name(n), "1.0.0", [f"{_name(n + DIRECT)}>=1"] if n < DIRECT else [])
        for n in range(PACKAGES)
    ]


def _project(folder: Path) -> Path:
    folder.mkdir()
    names = ", ".join(f'"{_name(n)}"' for n in range(DIRECT))
    (folder / "pyproject.toml").write_text(
        "[project]\n"
        'name = "helperd-bench-uv-app"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        f"dependencies = [{names}]\n"
    )
    return folder


def _counting_keyring(folder: Path, log: Path, real: Path) -> None:
    """Write ``folder/keyring``: it logs a line per call (no arguments: they may hold a
    username), then runs ``real``."""
    folder.mkdir()
    wrapper = folder / "keyring"
    wrapper.write_text(f'#!/bin/sh\necho call >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)


def _lock(
    tools: Tools, sandbox: Sandbox, template: Path, setup: dict[str, Any], attempt: int
) -> float:
    """One ``uv lock`` in a fresh copy of the project, with no cache; its seconds."""
    project = sandbox.root / f"app-{attempt}"
    shutil.copytree(template, project)
    result = sandbox.run(
        [
            tools.uv,
            *("lock", "--no-cache", "--python", str(tools.pip_python)),
            *("--keyring-provider", "subprocess"),
        ],
        cwd=project,
        path=setup["path"],
        extra_env={"UV_DEFAULT_INDEX": setup["index"]},
    )
    lock = project / "uv.lock"
    text = lock.read_text() if lock.is_file() else ""
    if result.returncode != 0 or not all(_name(n) in text for n in range(PACKAGES)):
        raise RuntimeError(f"uv lock failed:\n{result.describe()}")
    shutil.rmtree(project, ignore_errors=True)
    return result.seconds


def _setups(tools: Tools, index: Index, shim_bin: Path) -> dict[str, dict[str, Any]]:
    with_password = f"http://{index.username}:{index.password}@{index.netloc}/simple/"
    return {
        "shim": {"path": (shim_bin, tools.keyring_bin), "index": index.url_with_user()},
        "plugin": {"path": (tools.keyring_bin,), "index": index.url_with_user()},
        "url": {"path": (), "index": with_password},
    }


def _count_calls(
    tools: Tools, sandbox: Sandbox, template: Path, setup: dict[str, Any], real: Path
) -> int:
    """Run one untimed ``uv lock`` (the warm-up) with ``real`` behind a logging ``keyring``."""
    folder = sandbox.root / "counting"
    log = folder / "calls.log"
    _counting_keyring(folder, log, real)
    log.touch()
    _lock(tools, sandbox, template, {**setup, "path": (folder, *setup["path"])}, 0)
    return len(log.read_text().splitlines())


def uv_lock(tools: Tools, workdir: Path, runs: int) -> dict[str, Any]:
    """Seconds per ``uv lock`` in each setup, and the ``keyring`` calls of one resolution."""
    (workdir / "index").mkdir()
    home = workdir / "helperd"
    home.mkdir(mode=0o700)
    key = new_key_file(workdir / "helperd.key")
    shim = write_shim(workdir / "shim-bin", str(tools.plugin_python))
    template = _project(workdir / "template")
    wheels = _wheels(workdir)
    seconds: dict[str, list[float]] = {name: [] for name in SETUPS}
    with (
        running_index(tools.pypiserver_env, workdir / "index", *wheels) as index,
        helperd_daemon(home, key) as daemon,
    ):
        with Client(daemon.socket) as client:
            client.set("acme", index.password, username=index.username, urls=[index.url])
        setups = _setups(tools, index, shim.parent)
        sandboxes = {name: Sandbox(workdir / f"sandbox-{name}", daemon.home) for name in SETUPS}
        calls = {
            name: _count_calls(tools, sandboxes[name], template, setups[name], real)
            for name, real in (("shim", shim), ("plugin", tools.keyring_bin / "keyring"))
        }
        for attempt in range(1, runs + 1):
            for name in SETUPS[attempt % 3 :] + SETUPS[: attempt % 3]:
                seconds[name].append(_lock(tools, sandboxes[name], template, setups[name], attempt))
    summary = {name: summarize(values) for name, values in seconds.items()}
    return {
        "runs": runs,
        "uv": UV_VERSION,
        "packages": PACKAGES,
        "keyring_calls": calls,
        "ms": {name: s.scaled(1e3).as_dict() for name, s in summary.items()},
        "plugin_vs_shim": summary["plugin"].p50 / summary["shim"].p50,
        "shim_over_url_ms": (summary["shim"].p50 - summary["url"].p50) * 1e3,
        "plugin_over_url_ms": (summary["plugin"].p50 - summary["url"].p50) * 1e3,
    }
