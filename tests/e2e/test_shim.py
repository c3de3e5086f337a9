"""pip and uv install the private package through the ``keyring`` shim of ``install-shim``.

The shim goes first on PATH; the real ``keyring`` CLI (with helperd's plugin) stands behind it.
The shim answers every lookup itself: the tests prove it by the shim serving with no real
``keyring`` behind it at all, and by pip's and uv's installs succeeding.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Result, Sandbox
from tests.e2e.index import MODULE, PACKAGE, Index
from tests.e2e.toolenv import Tools

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _install_shim(sandbox: Sandbox) -> Path:
    folder = sandbox.root / "shim-bin"
    helperctl = Path(sys.executable).parent / "helperctl"
    subprocess.run(
        [helperctl, "install-shim", "--dir", str(folder)], check=True, capture_output=True
    )
    assert (folder / "keyring").is_file()
    return folder


def _installed(target: Path) -> bool:
    return (target / MODULE / "__init__.py").is_file()


def test_shim_answers_without_the_real_keyring(acme: Index, sandbox: Sandbox) -> None:
    """With only the shim on PATH, pip's and uv's lookup forms answer from helperd."""
    shim_bin = _install_shim(sandbox)
    keyring = shim_bin / "keyring"
    got = sandbox.run([keyring, "get", acme.url, acme.username], path=(shim_bin,))
    assert (0, f"{acme.password}\n") == (got.returncode, got.stdout), got.describe()
    creds = sandbox.run([keyring, "--mode=creds", "--output=json", "get", acme.url])
    assert 0 == creds.returncode, creds.describe()
    assert acme.username in creds.stdout


def test_pip_subprocess_provider_through_the_shim(
    tools: Tools, acme: Index, sandbox: Sandbox
) -> None:
    """pip ``--keyring-provider subprocess`` installs with the shim first on PATH."""
    shim_bin = _install_shim(sandbox)
    target = sandbox.root / "site"
    done: Result = sandbox.run(
        [
            tools.pip_python,
            *("-m", "pip", "install", "--no-input", "--no-deps", "--no-cache-dir"),
            *("--index-url", acme.url, "--target", str(target)),
            *("--keyring-provider", "subprocess", PACKAGE),
        ],
        path=(shim_bin,),  # no real keyring behind it: the shim alone must serve
    )
    assert 0 == done.returncode, done.describe()
    assert _installed(target)
    assert acme.password not in done.output


def test_uv_subprocess_provider_through_the_shim(
    tools: Tools, acme: Index, sandbox: Sandbox
) -> None:
    """uv ``--keyring-provider subprocess`` (``alice@`` in the URL) installs through the shim,
    with the real ``keyring`` behind it as a user has it."""
    shim_bin = _install_shim(sandbox)
    target = sandbox.root / "site"
    done = sandbox.run(
        [
            tools.uv,
            *("pip", "install", "--no-deps", "--python", str(tools.pip_python)),
            *("--target", str(target), "--keyring-provider", "subprocess"),
            *("--default-index", acme.url_with_user(), PACKAGE),
        ],
        path=(shim_bin, tools.keyring_bin),
    )
    assert 0 == done.returncode, done.describe()
    assert _installed(target)
    assert acme.password not in done.output


def test_uv_authenticate_always_through_the_shim(
    tools: Tools, acme: Index, sandbox: Sandbox
) -> None:
    """uv with ``authenticate = "always"`` and no username asks ``--mode creds``; shim serves."""
    shim_bin = _install_shim(sandbox)
    config = sandbox.work / "uv.toml"
    config.write_text(
        'keyring-provider = "subprocess"\n\n'
        f'[[index]]\nname = "acme"\nurl = "{acme.url}"\ndefault = true\nauthenticate = "always"\n'
    )
    target = sandbox.root / "site"
    done = sandbox.run(
        [
            tools.uv,
            *("pip", "install", "--no-deps", "--python", str(tools.pip_python)),
            *("--target", str(target), "--config-file", str(config), PACKAGE),
        ],
        path=(shim_bin,),  # no real keyring behind it: the shim alone must serve
        extra_env={"UV_NO_CONFIG": "0"},
    )
    assert 0 == done.returncode, done.describe()
    assert _installed(target)
