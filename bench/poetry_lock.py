"""Item 7: ``poetry lock`` against an authenticated index, credentials from helperd vs auth.toml.

Reuses the end-to-end ring's cached Poetry venv (it holds helperd's plugin), its pypiserver
and its sandbox: every run gets a fresh copy of the project (no poetry.lock) and an empty
Poetry cache, so that each one resolves against the index and needs the credentials. The two
setups take turns; the first run of each is a warm-up and is not counted.

- helperd: the daemon holds alice's password for the source ``acme``; auth.toml is empty.
- plaintext: auth.toml holds ``[http-basic.acme]`` with the password; no helperd socket
  exists, so keyring finds no usable backend and Poetry reads the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from helperd_client import Client

from bench.process import helperd_daemon, new_key_file
from bench.stats import summarize
from tests.e2e.harness import Sandbox
from tests.e2e.index import PACKAGE, VERSION, build_wheel, running_index
from tests.e2e.toolenv import POETRY_VERSION, Tools

__all__ = ["poetry_lock"]


def _project(folder: Path, url: str) -> Path:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        "[project]\n"
        'name = "helperd-bench-app"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        f'dependencies = ["{PACKAGE}=={VERSION}"]\n'
        "\n[tool.poetry]\n"
        "package-mode = false\n"
        "\n[[tool.poetry.source]]\n"
        'name = "acme"\n'
        f'url = "{url}"\n'
        'priority = "primary"\n'
    )
    return folder


def _lock(tools: Tools, sandbox: Sandbox, template: Path, attempt: int) -> float:
    """One ``poetry lock`` in a fresh copy of the project with an empty cache; its seconds."""
    shutil.rmtree(sandbox.root / "poetry-cache", ignore_errors=True)
    project = sandbox.root / f"app-{attempt}"
    shutil.copytree(template, project)
    result = sandbox.run([tools.poetry, "--no-ansi", "lock"], cwd=project)
    if result.returncode != 0 or PACKAGE not in (project / "poetry.lock").read_text():
        raise RuntimeError(f"poetry lock failed:\n{result.describe()}")
    shutil.rmtree(project, ignore_errors=True)
    return result.seconds


def poetry_lock(tools: Tools, workdir: Path, runs: int) -> dict[str, Any]:
    """Seconds per ``poetry lock`` with each credential source, and helperd's overhead."""
    index_dir = workdir / "index"
    index_dir.mkdir()
    wheel = build_wheel(workdir)
    home = workdir / "helperd"
    home.mkdir(mode=0o700)
    empty_home = workdir / "no-helperd"
    empty_home.mkdir(mode=0o700)
    key = new_key_file(workdir / "helperd.key")
    with running_index(tools.pypiserver_env, index_dir, wheel) as index:
        template = _project(workdir / "template", index.url)
        with helperd_daemon(home, key) as daemon:
            with Client(daemon.socket) as client:
                client.set("acme", index.password, username=index.username, urls=[index.url])
            sandboxes = {
                "helperd": Sandbox(workdir / "sandbox-helperd", daemon.home),
                "plaintext": Sandbox(workdir / "sandbox-plaintext", empty_home),
            }
            (sandboxes["plaintext"].poetry_config / "auth.toml").write_text(
                f'[http-basic.acme]\nusername = "{index.username}"\npassword = "{index.password}"\n'
            )
            seconds: dict[str, list[float]] = {name: [] for name in sandboxes}
            for attempt in range(runs + 1):
                order = list(sandboxes) if attempt % 2 == 0 else list(reversed(sandboxes))
                for name in order:
                    took = _lock(tools, sandboxes[name], template, attempt)
                    if attempt:
                        seconds[name].append(took)
    helperd = summarize(seconds["helperd"])
    plaintext = summarize(seconds["plaintext"])
    return {
        "runs": runs,
        "poetry": POETRY_VERSION,
        "helperd_s": helperd.as_dict(),
        "plaintext_s": plaintext.as_dict(),
        "overhead_pct": (helperd.p50 / plaintext.p50 - 1) * 100,
        "overhead_iqr_pct": (
            (helperd.q1 / plaintext.q3 - 1) * 100,
            (helperd.q3 / plaintext.q1 - 1) * 100,
        ),
    }
