"""Publishing tools upload to the authenticated index with the credential only in helperd.

Each tool runs from its own cached venv, which holds helperd's plugin beside its keyring
(`tests.e2e.toolenv`); uv runs the ``keyring`` CLI of the plugin's venv. The record is stored
the way docs/publishing.md says, with ``helperctl set --url INDEX --url UPLOAD``, so one record
serves both installs (the index URL) and uploads (the upload URL, which the tools ask keyring
for). Every upload is a wheel built by the test under a name of its own, so no build backend is
fetched and no two tests upload the same file. Nothing but helperd holds the password: no
config file, no argument, no variable; after each upload no file in the sandbox holds it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helperd.testing import Daemon
from tests.e2e.harness import Result, Sandbox, files_containing
from tests.e2e.index import Index, build_wheel
from tests.e2e.toolenv import Tools

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = "private"


def _helperctl(sandbox: Sandbox, *args: str, stdin: str | None = None) -> Result:
    """This checkout's helperctl, run in the sandbox (so it reaches the test's daemon)."""
    return sandbox.run(
        [sys.executable, "-c", "from helperd.ctl.main import main; main()", *args], stdin=stdin
    )


def _ok(result: Result) -> Result:
    assert 0 == result.returncode, result.describe()
    return result


def _store(sandbox: Sandbox, index: Index, *urls: str) -> None:
    """``helperctl set private --url ... --username alice --password-stdin``."""
    options = [part for url in urls for part in ("--url", url)]
    _ok(
        _helperctl(
            sandbox,
            *("set", NAME, *options, "--username", index.username, "--password-stdin"),
            stdin=index.password + "\n",
        )
    )


def _wheel(sandbox: Sandbox, name: str) -> Path:
    """A wheel named ``name`` in ``<sandbox>/<name>/dist``, the folder the tools upload from."""
    dist = sandbox.root / name / "dist"
    dist.mkdir(parents=True)
    return build_wheel(dist, name=name, version="0.0.1")


def _uploaded(index: Index, wheel: Path) -> bool:
    return (index.packages / wheel.name).is_file()


def _no_secret_left(sandbox: Sandbox, index: Index) -> None:
    assert [] == files_containing(sandbox.root, index.password)


def test_set_keeps_both_urls(index: Index, sandbox: Sandbox, helperd: Daemon) -> None:
    """``--url`` given twice stores the index URL and the upload URL, in that order."""
    _store(sandbox, index, index.url, index.upload_url)

    with helperd.client() as client:
        (record,) = client.list()
    assert (index.url, index.upload_url) == record.urls


def test_twine_upload(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """``twine upload --repository-url UPLOAD`` takes the username and the password from
    helperd: keyring.get_credential(UPLOAD, None), then get_password(UPLOAD, alice)."""
    _store(sandbox, index, index.url, index.upload_url)
    wheel = _wheel(sandbox, "helperd-e2e-twine")

    twine = tools.twine_env / "bin" / "twine"
    args = ["upload", "--non-interactive", "--repository-url", index.upload_url, str(wheel)]
    _ok(sandbox.run([twine, *args]))

    assert _uploaded(index, wheel)
    _no_secret_left(sandbox, index)


def test_twine_needs_the_upload_url(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """With only the index URL stored, twine finds no credential for the upload URL."""
    _store(sandbox, index, index.url)
    wheel = _wheel(sandbox, "helperd-e2e-twine-miss")

    twine = tools.twine_env / "bin" / "twine"
    args = ["upload", "--non-interactive", "--repository-url", index.upload_url, str(wheel)]
    done = sandbox.run([twine, *args])

    assert 0 != done.returncode, done.describe()
    assert "Credential not found" in done.output, done.describe()
    assert not _uploaded(index, wheel)


def test_poetry_publish_with_basic_credentials(
    tools: Tools, index: Index, sandbox: Sandbox
) -> None:
    """``poetry publish -r private`` uploads with alice's password from helperd: Poetry asks
    keyring for ``poetry-repository-private``; nothing reaches auth.toml."""
    _store(sandbox, index, index.url, index.upload_url)
    name = "helperd-e2e-poetry-pub"
    project = sandbox.root / name
    (project / "helperd_e2e_poetry_pub").mkdir(parents=True)
    (project / "helperd_e2e_poetry_pub" / "__init__.py").write_text('"""Published."""\n')
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.0.1"\nrequires-python = ">=3.11"\n'
        '\n[build-system]\nrequires = ["poetry-core>=2.0"]\n'
        'build-backend = "poetry.core.masonry.api"\n'
    )
    poetry = [tools.poetry, "--no-ansi"]
    _ok(sandbox.run([*poetry, "config", f"repositories.{NAME}", index.upload_url]))
    _ok(sandbox.run([*poetry, "publish", "--build", "-r", NAME], cwd=project))

    assert list(index.packages.glob("helperd_e2e_poetry_pub-0.0.1*"))
    assert not (sandbox.poetry_config / "auth.toml").exists()
    _no_secret_left(sandbox, index)


def test_uv_publish(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """``uv publish --username alice --keyring-provider subprocess`` runs
    ``keyring get UPLOAD alice`` and uploads with helperd's answer."""
    _store(sandbox, index, index.url, index.upload_url)
    wheel = _wheel(sandbox, "helperd-e2e-uv")

    args = [
        *(tools.uv, "publish", "--publish-url", index.upload_url),
        *("--username", index.username, "--keyring-provider", "subprocess", str(wheel)),
    ]
    _ok(sandbox.run(args, path=[tools.keyring_bin]))

    assert _uploaded(index, wheel)
    _no_secret_left(sandbox, index)


def test_pdm_publish(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """``pdm publish --repository UPLOAD`` asks keyring for the upload URL (username and
    password) and uploads the wheel in dist/ (``--no-build``)."""
    _store(sandbox, index, index.url, index.upload_url)
    name = "helperd-e2e-pdm"
    wheel = _wheel(sandbox, name)
    project = wheel.parent.parent
    (project / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.0.1"\n')

    pdm = tools.pdm_env / "bin" / "pdm"
    args = ["publish", "--no-build", "--repository", index.upload_url]
    _ok(sandbox.run([pdm, *args], cwd=project))

    assert _uploaded(index, wheel)
    _no_secret_left(sandbox, index)


def test_pdm_source_reads_pdm_pypi_name(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """pdm asks keyring for ``pdm-pypi-<NAME>`` for its source NAME: helperd answers it from
    the record NAME, so ``pdm config`` shows the username and a hidden password."""
    _store(sandbox, index, index.url, index.upload_url)
    pdm = tools.pdm_env / "bin" / "pdm"
    _ok(sandbox.run([pdm, "config", f"pypi.{NAME}.url", index.url]))

    shown = _ok(sandbox.run([pdm, "config", f"pypi.{NAME}"])).stdout

    assert f"pypi.{NAME}.username = {index.username}" in shown, shown
    assert f"pypi.{NAME}.password = <hidden>" in shown, shown
    _no_secret_left(sandbox, index)


def test_hatch_publish(tools: Tools, index: Index, sandbox: Sandbox) -> None:
    """``hatch publish -r UPLOAD -u alice`` asks keyring.get_password(UPLOAD, alice)."""
    _store(sandbox, index, index.url, index.upload_url)
    wheel = _wheel(sandbox, "helperd-e2e-hatch")

    hatch = tools.hatch_env / "bin" / "hatch"
    args = ["publish", "--no-prompt", "-r", index.upload_url, "-u", index.username, str(wheel)]
    _ok(sandbox.run([hatch, *args], cwd=wheel.parent.parent))

    assert _uploaded(index, wheel)
    _no_secret_left(sandbox, index)
