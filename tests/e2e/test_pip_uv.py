"""pip, uv and the ``keyring`` CLI get the index's credentials from helperd through the plugin.

pip's ``import`` provider runs in the environment that holds keyring and the plugin; its
``subprocess`` provider and uv run the ``keyring`` CLI of that environment from PATH (pip
skips a ``keyring`` in its own ``bin`` folder, so that pip comes from another environment).
Every install uses only the test index (no machine pip configuration) and a package name
that exists nowhere else: an install that succeeds proves the credentials reached the index.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from helperd_client import DEFAULT_TIMEOUT

from helperd.testing import Daemon
from tests.e2e.harness import Result, Sandbox
from tests.e2e.index import MODULE, PACKAGE, Index
from tests.e2e.toolenv import Tools

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FAIL_BOUND = 5 * DEFAULT_TIMEOUT + 20.0
"""Seconds a tool may take to give up when helperd cannot answer: 5 client timeouts + start-up."""


def _installed(target: Path) -> bool:
    return (target / MODULE / "__init__.py").is_file()


def _pip_install(
    sandbox: Sandbox,
    python: Path,
    index_url: str,
    target: Path,
    *options: str,
    path: tuple[Path, ...] = (),
) -> Result:
    args: list[str | Path] = [
        python,
        *("-m", "pip", "install", "--no-input", "--no-deps", "--no-cache-dir"),
        *("--index-url", index_url, "--target", str(target), *options, PACKAGE),
    ]
    return sandbox.run(args, path=path)


def _assert_no_helperd_traceback(result: Result) -> None:
    assert "Traceback" not in result.output, result.describe()
    assert "helperd_client" not in result.output, result.describe()


# --- the harness itself ------------------------------------------------------------------


def test_index_requires_credentials(index: Index) -> None:
    """The index answers 401 without credentials, 403 to wrong ones and 200 to alice's."""
    assert 401 == index.status()
    assert 403 == index.status((index.username, "wrong"))
    assert 200 == index.status((index.username, index.password))


def test_pip_needs_credentials(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """Without keyring pip cannot install the private package; with them in the URL it can."""
    target = sandbox.root / "site"
    refused = _pip_install(sandbox, tools.pip_python, index.url, target)
    assert 0 != refused.returncode, refused.describe()
    assert not _installed(target)

    with_password = f"http://{index.username}:{index.password}@{index.netloc}/simple/"
    done = _pip_install(sandbox, tools.pip_python, with_password, target)
    assert 0 == done.returncode, done.describe()
    assert _installed(target)


# --- the keyring CLI, as pip's and uv's subprocess providers call it -----------------------


def test_keyring_cli_forms(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """``keyring get URL USER``, ``--mode creds`` and pip's JSON form all print alice's secret."""
    keyring = tools.keyring_bin / "keyring"

    password = sandbox.run([keyring, "get", acme.url, acme.username])
    assert 0 == password.returncode, password.describe()
    assert f"{acme.password}\n" == password.stdout

    creds = sandbox.run([keyring, "get", acme.url, "--mode", "creds"])
    assert 0 == creds.returncode, creds.describe()
    assert f"{acme.username}\n{acme.password}\n" == creds.stdout

    as_json = sandbox.run([keyring, "--mode=creds", "--output=json", "get", acme.url])
    assert 0 == as_json.returncode, as_json.describe()
    assert {"username": acme.username, "password": acme.password} == json.loads(as_json.stdout)

    by_host = sandbox.run([keyring, "get", acme.netloc, acme.username])
    assert 0 == by_host.returncode, by_host.describe()
    assert f"{acme.password}\n" == by_host.stdout


def test_oldest_keyring_imports_plugin_and_gets(
    tools: Tools, acme: Index, sandbox: Sandbox
) -> None:
    """Under the oldest keyring Poetry accepts, the plugin is chosen and answers a get."""
    python = tools.oldest_keyring_env / "bin" / "python"
    probe = sandbox.run(
        [
            python,
            "-c",
            (
                "import importlib.metadata as m, keyring;"
                "print(m.version('keyring'), type(keyring.get_keyring()).__module__)"
            ),
        ]
    )
    assert 0 == probe.returncode, probe.describe()
    assert f"{tools.oldest_keyring_version} helperd_client.keyring_backend\n" == probe.stdout, (
        probe.describe()
    )

    got = sandbox.run(
        [tools.oldest_keyring_env / "bin" / "keyring", "get", acme.url, acme.username]
    )
    assert 0 == got.returncode, got.describe()
    assert f"{acme.password}\n" == got.stdout


# --- installs through the plugin -----------------------------------------------------------


def test_pip_import_provider(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """pip ``--keyring-provider import`` (pip beside the plugin) installs the private package."""
    target = sandbox.root / "site"
    done = _pip_install(
        sandbox, tools.plugin_python, acme.url, target, "--keyring-provider", "import"
    )
    assert 0 == done.returncode, done.describe()
    assert _installed(target)
    assert acme.password not in done.output


def test_pip_subprocess_provider(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """pip ``--keyring-provider subprocess`` runs the ``keyring`` CLI from PATH and installs."""
    target = sandbox.root / "site"
    done = _pip_install(
        sandbox,
        tools.pip_python,
        acme.url,
        target,
        *("--keyring-provider", "subprocess"),
        path=(tools.keyring_bin,),
    )
    assert 0 == done.returncode, done.describe()
    assert _installed(target)
    assert acme.password not in done.output


def _uv_install(
    tools: Tools,
    sandbox: Sandbox,
    target: Path,
    *options: str,
    extra_env: dict[str, str] | None = None,
) -> Result:
    args: list[str | Path] = [
        tools.uv,
        *("pip", "install", "--no-deps", "--python", str(tools.pip_python)),
        *("--target", str(target), *options, PACKAGE),
    ]
    return sandbox.run(args, path=(tools.keyring_bin,), extra_env=extra_env)


def test_uv_subprocess_provider(tools: Tools, acme: Index, sandbox: Sandbox) -> None:
    """uv ``--keyring-provider subprocess`` with ``alice@`` in the index URL installs."""
    target = sandbox.root / "site"
    done = _uv_install(
        tools,
        sandbox,
        target,
        *("--keyring-provider", "subprocess", "--default-index", acme.url_with_user()),
    )
    assert 0 == done.returncode, done.describe()
    assert _installed(target)
    assert acme.password not in done.output


def test_uv_authenticate_always_without_username(
    tools: Tools, acme: Index, sandbox: Sandbox
) -> None:
    """An index with ``authenticate = "always"`` and no username gets both from helperd.

    The keyring provider comes from the same uv.toml, as docs/pip-uv.md shows it.
    """
    config = sandbox.work / "uv.toml"
    config.write_text(
        'keyring-provider = "subprocess"\n\n'
        f'[[index]]\nname = "acme"\nurl = "{acme.url}"\ndefault = true\nauthenticate = "always"\n'
    )
    target = sandbox.root / "site"
    done = _uv_install(
        tools, sandbox, target, "--config-file", str(config), extra_env={"UV_NO_CONFIG": "0"}
    )
    assert 0 == done.returncode, done.describe()
    assert _installed(target)


# --- helperd down or hung: fail cleanly and promptly ----------------------------------------


def _kill(daemon: Daemon) -> None:
    """kill -9 the daemon: its socket stays behind (stale), and connecting is refused."""
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=10)
    assert daemon.socket.exists(), "a killed daemon leaves its socket"


@pytest.mark.parametrize("provider", ["import", "subprocess", "uv"])
def test_stale_socket_fails_cleanly(
    tools: Tools, acme: Index, sandbox: Sandbox, helperd: Daemon, provider: str
) -> None:
    """With a killed daemon (stale socket) the install fails promptly, with no traceback."""
    _kill(helperd)
    target = sandbox.root / "site"
    if provider == "uv":
        done = _uv_install(
            tools,
            sandbox,
            target,
            *("--keyring-provider", "subprocess", "--default-index", acme.url_with_user()),
        )
    elif provider == "import":
        done = _pip_install(
            sandbox, tools.plugin_python, acme.url, target, "--keyring-provider", "import"
        )
    else:
        done = _pip_install(
            sandbox,
            tools.pip_python,
            acme.url,
            target,
            *("--keyring-provider", "subprocess"),
            path=(tools.keyring_bin,),
        )
    assert 0 != done.returncode, done.describe()
    assert not _installed(target)
    assert done.seconds < FAIL_BOUND, done.describe()
    _assert_no_helperd_traceback(done)


def _pause(daemon: Daemon) -> None:
    """SIGSTOP the daemon: it keeps its socket and accepts, but never answers."""
    daemon.process.send_signal(signal.SIGSTOP)
    state = ""
    for _ in range(500):
        state = Path(f"/proc/{daemon.process.pid}/stat").read_text().rpartition(")")[2].split()[0]
        if state in {"T", "t"}:
            return
        time.sleep(0.01)
    raise AssertionError(f"the daemon did not stop (state {state})")


def test_hung_daemon_keyring_get_returns(
    tools: Tools, acme: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """With a frozen daemon, ``keyring get`` gives up within the client's timeout, cleanly."""
    _pause(helperd)
    got = sandbox.run(
        [tools.keyring_bin / "keyring", "get", acme.url, acme.username], timeout=FAIL_BOUND * 2
    )
    assert 1 == got.returncode, got.describe()
    assert "" == got.stdout
    assert got.seconds < FAIL_BOUND, got.describe()
    _assert_no_helperd_traceback(got)


def test_hung_daemon_pip_fails_promptly(
    tools: Tools, acme: Index, sandbox: Sandbox, helperd: Daemon
) -> None:
    """With a frozen daemon, pip's import provider gives up promptly and the install fails."""
    _pause(helperd)
    target = sandbox.root / "site"
    done = _pip_install(
        sandbox, tools.plugin_python, acme.url, target, "--keyring-provider", "import"
    )
    assert 0 != done.returncode, done.describe()
    assert done.seconds < FAIL_BOUND, done.describe()
    _assert_no_helperd_traceback(done)


def test_locked_store_pip_says_unlock(tools: Tools, index: Index, locked_sandbox: Sandbox) -> None:
    """With the store locked, pip's install fails and the user reads one line naming the fix."""
    target = locked_sandbox.root / "site"
    done = _pip_install(
        locked_sandbox, tools.plugin_python, index.url, target, "--keyring-provider", "import"
    )
    assert 0 != done.returncode, done.describe()
    assert 1 == done.stderr.count("helperctl unlock"), done.describe()
    _assert_no_helperd_traceback(done)
