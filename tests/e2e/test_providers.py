"""Poetry, pip and uv install from an index whose password is a short-lived token that helperd
mints with a provider command and refreshes before it expires.

The index is pypiserver behind `tests.e2e.token_gate.TokenGate`, which accepts only tokens
the provider minted in the last 60 seconds (403 for an older one). The provider mints
60-second tokens (``--lifetime 60``, the default minimum life capped at half of it), so the
daemon refreshes ahead about every 15 s while the tools read the record.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helperd.testing import Daemon
from tests.e2e.harness import Result, Sandbox
from tests.e2e.index import MODULE, PACKAGE, Index
from tests.e2e.token_gate import PROVIDER_SCRIPT, USERNAME, TokenGate, token_gate
from tests.e2e.toolenv import Tools

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

HELPERCTL = str(Path(sys.executable).parent / "helperctl")
LIFETIME = 60
ROUNDS = 3
REFRESH_WAIT = 90.0
"""Seconds to wait for the next refresh: far above the ~15 s the rule gives a 60 s token."""


@pytest.fixture
def gate(index: Index, tmp_path: Path) -> Iterator[TokenGate]:
    """The token gate in front of the index, accepting 60-second tokens."""
    with token_gate(index, tmp_path / "provider", LIFETIME) as running:
        yield running


@pytest.fixture
def gated(gate: TokenGate, helperd: Daemon, tmp_path: Path) -> TokenGate:
    """helperd holds record ``acme`` for the gate, its token minted by the provider script."""
    script = tmp_path / "mint-token"
    script.write_text(PROVIDER_SCRIPT.format(python=sys.executable))
    script.chmod(0o700)
    done = subprocess.run(
        [
            *(HELPERCTL, "set", "acme", "--url", gate.url, "--username", USERNAME),
            *("--provider-command", "--lifetime", str(LIFETIME)),
            *("--", str(script), str(gate.state)),
        ],
        env=helperd.env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert 1 == len(gate.minted)
    return gate


def _ok(result: Result) -> Result:
    assert 0 == result.returncode, result.describe()
    return result


def _pip(tools: Tools, sandbox: Sandbox, gate: TokenGate, target: Path) -> Result:
    return sandbox.run(
        [
            tools.plugin_python,
            *("-m", "pip", "install", "--no-input", "--no-deps", "--no-cache-dir"),
            *("--index-url", gate.url, "--target", str(target), "--keyring-provider", "import"),
            PACKAGE,
        ]
    )


def _shim(sandbox: Sandbox) -> Path:
    folder = sandbox.root / "shim-bin"
    subprocess.run(
        [HELPERCTL, "install-shim", "--dir", str(folder)], check=True, capture_output=True
    )
    return folder


def _uv(tools: Tools, sandbox: Sandbox, gate: TokenGate, target: Path, shim: Path) -> Result:
    return sandbox.run(
        [
            tools.uv,
            *("pip", "install", "--no-deps", "--no-cache", "--python", str(tools.pip_python)),
            *("--keyring-provider", "subprocess", "--default-index", gate.url_with_user()),
            *("--target", str(target), PACKAGE),
        ],
        path=(shim,),  # the shim alone answers uv's lookups: no real keyring behind it
    )


def _poetry_project(sandbox: Sandbox, gate: TokenGate, name: str) -> Path:
    project = sandbox.root / name
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[project]\n"
        f'name = "helperd-e2e-{name}"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        f'dependencies = ["{PACKAGE}"]\n'
        "\n[tool.poetry]\n"
        "package-mode = false\n"
        "\n[[tool.poetry.source]]\n"
        'name = "acme"\n'
        f'url = "{gate.url}"\n'
        'priority = "primary"\n'
    )
    return project


def _installed(where: Path) -> bool:
    return any(where.glob(f"**/{MODULE}/__init__.py"))


def _wait_for_run(gate: TokenGate, runs: int) -> None:
    deadline = time.monotonic() + REFRESH_WAIT
    while len(gate.runs) <= runs and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(gate.runs) > runs, f"no refresh within {REFRESH_WAIT} s"


def test_tools_install_across_refreshes_one_run_each(
    tools: Tools, gated: TokenGate, sandbox: Sandbox, helperd: Daemon
) -> None:
    """pip (the plugin), uv (the shim) and Poetry (the plugin) install through the gate in
    several rounds, each after a refresh: every token the tools sent was fresh (no 403), each
    refresh ran the provider exactly once (every run minted a token, runs spaced by the rule,
    never doubled), and no token reached the daemon's log or the tools' output."""
    outputs = []
    shim = _shim(sandbox)
    for round_ in range(ROUNDS):
        runs = len(gated.runs)
        outputs.append(_ok(_pip(tools, sandbox, gated, sandbox.root / f"pip{round_}")))
        outputs.append(_ok(_uv(tools, sandbox, gated, sandbox.root / f"uv{round_}", shim)))
        project = _poetry_project(sandbox, gated, f"app{round_}")
        outputs.append(_ok(sandbox.run([tools.poetry, "--no-ansi", "install"], cwd=project)))
        assert all(_installed(sandbox.root / p) for p in (f"pip{round_}", f"uv{round_}"))
        assert _installed(project / ".venv")
        _wait_for_run(gated, runs)

    minted = gated.minted
    assert len(gated.runs) == len(minted), "a run failed or printed no token"
    assert len(minted) >= ROUNDS + 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(minted)]
    assert all(gap >= LIFETIME / 4 - 1 for gap in gaps), f"runs too close together: {gaps}"
    assert len(gated.used) >= ROUNDS, "each round used the token of its time"
    assert 403 not in gated.refused, "an expired token was sent"
    log = (helperd.home / "daemon.log").read_text()
    shown = "".join(r.output for r in outputs)
    assert [] == [m for m in minted if m.token in log or m.token in shown]


def test_failing_provider_keeps_the_last_token_until_it_expires(
    tools: Tools, gated: TokenGate, sandbox: Sandbox, helperd: Daemon
) -> None:
    """When the provider starts failing, pip keeps installing with the last good token while
    it is valid; once it expires helperd refuses (helperctl get exits 1) and pip fails without
    ever sending the expired token (no 403 at the gate)."""
    first = gated.minted[0]
    gated.fail(True)
    _ok(_pip(tools, sandbox, gated, sandbox.root / "early"))
    time.sleep(max(0.0, first.at + LIFETIME * 0.6 - time.time()))  # below the minimum life

    _ok(_pip(tools, sandbox, gated, sandbox.root / "late"))
    assert len(gated.runs) >= 2, "the refresh was tried"
    time.sleep(max(0.0, first.at + LIFETIME + 1 - time.time()))

    get = subprocess.run(
        [HELPERCTL, "get", "acme"],
        env=helperd.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (1, "") == (get.returncode, get.stdout)
    assert "provider for acme failed" in get.stderr
    refused = _pip(tools, sandbox, gated, sandbox.root / "expired")
    assert 0 != refused.returncode, refused.describe()
    assert [first] == gated.minted
    assert {first.token} == gated.used
    assert 403 not in gated.refused
