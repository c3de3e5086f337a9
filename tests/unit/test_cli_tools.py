"""``helperctl import-poetry`` and ``helperctl exec`` against the real core in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner, Result
from helperd_client import Credential, Status
from helperd_client.errors import (
    BadRequestError,
    DaemonUnreachableError,
    HelperdError,
    LockedError,
    StoreUnavailableError,
    UntrustedSocketError,
)

from helperd.ctl import cli_exec
from helperd.ctl.cli_exec import RepoCredentials, credential_env, env_name
from helperd.ctl.main import cli
from helperd.ctl.session import Session
from helperd.integrations import poetry
from tests.unit.test_poetry import ACME_URL, REWRITTEN, SAMPLE, SECRETS, UNLOCKED, FakeDaemon

TOKEN = "pypi-tok-9"
PW = "pw-acme-7"


def run(daemon: FakeDaemon | None, *args: str) -> Result:
    """Run helperctl with ``daemon`` as its daemon; None means no command may reach one."""

    def make_client(_socket: Path | None, _timeout: float | None) -> FakeDaemon:
        if daemon is None:
            raise AssertionError("this command must not contact the daemon")
        return daemon

    return CliRunner().invoke(cli, list(args), obj=Session(make_client=make_client))


def assert_no_secret(result: Result, secrets: tuple[str, ...] = SECRETS) -> None:
    """Neither output stream holds any of ``secrets``."""
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr


@pytest.fixture
def poetry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Poetry config folder with the sample auth.toml and a config.toml naming acme's URL."""
    monkeypatch.setenv("POETRY_CONFIG_DIR", str(tmp_path))
    (tmp_path / "auth.toml").write_text(SAMPLE)
    (tmp_path / "config.toml").write_text(f'[repositories.acme]\nurl = "{ACME_URL}"\n')
    return tmp_path


@pytest.mark.parametrize("command", ["import-poetry", "exec"])
def test_help(command: str) -> None:
    """--help of both commands exits 0 and shows examples."""
    result = CliRunner().invoke(cli, [command, "--help"])

    assert 0 == result.exit_code
    assert "helperctl " in result.stdout.split("Examples:")[1]


# --- import-poetry --------------------------------------------------------------------------------


def test_import_dry_run_changes_nothing(poetry_dir: Path) -> None:
    """--dry-run lists name, username, kind, URL and source, never contacts the daemon,
    never prints a secret, and leaves auth.toml byte for byte."""
    result = run(None, "import-poetry", "--dry-run")

    assert 0 == result.exit_code, result.output
    lines = result.stdout.splitlines()
    assert ["NAME", "USERNAME", "KIND", "URL", "FROM"] == lines[0].split()
    assert ["acme", "alice", "basic", ACME_URL, "http-basic.acme"] == lines[1].split()
    assert ["my-repo", "bob", "basic", "-", "http-basic.my-repo"] == lines[2].split()
    assert ["pypi", "__token__", "token", poetry.PYPI_UPLOAD_URL, "pypi-token.pypi"] == (
        lines[3].split()
    )
    assert "dry run: nothing was changed" in result.stderr
    assert SAMPLE == (poetry_dir / "auth.toml").read_text()
    assert_no_secret(result)


def test_import_moves_and_rewrites(poetry_dir: Path) -> None:
    """The secrets land in helperd, verified, and auth.toml keeps all but them."""
    daemon = FakeDaemon()

    result = run(daemon, "import-poetry")

    assert 0 == result.exit_code, result.output
    assert {
        ("acme", "alice"): ("basic", SECRETS[0]),
        ("my-repo", "bob"): ("basic", SECRETS[1]),
        ("pypi", "__token__"): ("token", SECRETS[2]),
    } == {k: (info.kind, pw) for k, (info, pw) in daemon.records.items()}
    assert "status" == daemon.ops[0]
    assert ["get"] * 3 == daemon.ops[-3:]  # read back after every set
    assert REWRITTEN == (poetry_dir / "auth.toml").read_text()
    assert "rewrote" in result.stderr
    assert "" == result.stdout
    assert_no_secret(result)
    assert ["auth.toml", "config.toml"] == sorted(p.name for p in poetry_dir.iterdir())


def test_import_again_is_safe(poetry_dir: Path) -> None:
    """A second run finds nothing to move and leaves everything as it is."""
    daemon = FakeDaemon()
    run(daemon, "import-poetry")
    before = dict(daemon.records)

    result = run(daemon, "import-poetry")

    assert 0 == result.exit_code
    assert "nothing to import" in result.stderr
    assert before == daemon.records
    assert REWRITTEN == (poetry_dir / "auth.toml").read_text()


def test_import_reports_replaced_and_same(poetry_dir: Path) -> None:
    """Records helperd held already are replaced or found the same, and said so."""
    daemon = FakeDaemon()
    daemon.hold("acme", "alice", "older-pw")
    daemon.hold("my-repo", "bob", SECRETS[1])

    result = run(daemon, "import-poetry")

    assert 0 == result.exit_code
    assert "moved http-basic.acme: basic record 'acme', username 'alice' (replaced)" in (
        result.stderr
    )
    assert "http-basic.my-repo: basic record 'my-repo', username 'bob' (helperd held it" in (
        result.stderr
    )
    assert SECRETS[0] == daemon.records["acme", "alice"][1]
    assert_no_secret(result, (*SECRETS, "older-pw"))


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (StoreUnavailableError("the keyring did not answer"), 1),
        (DaemonUnreachableError("helperd is not running"), 3),
        (LockedError("the store is locked"), 5),
    ],
)
def test_import_failing_set_leaves_file(poetry_dir: Path, error: HelperdError, code: int) -> None:
    """A failing set exits with its own code, says auth.toml was not changed, and it is not."""
    daemon = FakeDaemon()
    daemon.errors["set"] = error

    result = run(daemon, "import-poetry")

    assert code == result.exit_code
    assert "was not changed, and running import-poetry again is safe" in result.stderr
    assert SAMPLE == (poetry_dir / "auth.toml").read_text()
    assert_no_secret(result)


def test_import_failing_verify_leaves_file(poetry_dir: Path) -> None:
    """A secret that does not read back as stored stops the import before the file changes."""
    daemon = FakeDaemon()
    daemon.garble = True

    result = run(daemon, "import-poetry")

    assert 1 == result.exit_code
    assert "did not give back the secret of http-basic.acme" in result.stderr
    assert SAMPLE == (poetry_dir / "auth.toml").read_text()
    assert_no_secret(result)


def test_import_locked_store_stores_nothing(poetry_dir: Path) -> None:
    """A locked store exits 5 before any set."""
    daemon = FakeDaemon(state=Status(**{**UNLOCKED.__dict__, "locked": True}))

    result = run(daemon, "import-poetry")

    assert 5 == result.exit_code
    assert ["status"] == daemon.ops
    assert SAMPLE == (poetry_dir / "auth.toml").read_text()


def test_import_without_auth_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No auth.toml at Poetry's place: nothing to import, exit 0; a missing --auth-toml: 4."""
    monkeypatch.setenv("POETRY_CONFIG_DIR", str(tmp_path))

    default = run(None, "import-poetry")
    named = run(None, "import-poetry", "--auth-toml", str(tmp_path / "other.toml"))

    assert (0, 4) == (default.exit_code, named.exit_code)
    assert f"nothing to import: Poetry has no auth.toml at {tmp_path / 'auth.toml'}" in (
        default.stderr
    )
    assert "other.toml does not exist" in named.stderr


def test_import_explicit_path_reads_config_beside_it(tmp_path: Path) -> None:
    """--auth-toml reads the config.toml in its own folder for URLs."""
    (tmp_path / "auth.toml").write_text(SAMPLE)
    (tmp_path / "config.toml").write_text('[repositories.my-repo]\nurl = "https://m.test/"\n')
    daemon = FakeDaemon()

    result = run(daemon, "import-poetry", "--auth-toml", str(tmp_path / "auth.toml"))

    assert 0 == result.exit_code
    assert ("https://m.test/",) == daemon.records["my-repo", "bob"][0].urls
    assert () == daemon.records["acme", "alice"][0].urls


def test_import_reports_skipped(poetry_dir: Path) -> None:
    """Skipped entries are named with the reason, and stay in the file."""
    text = SAMPLE + '[http-basic.blank]\nusername = "x"\npassword = ""\n'
    (poetry_dir / "auth.toml").write_text(text)

    result = run(FakeDaemon(), "import-poetry")

    assert 0 == result.exit_code
    assert "left in auth.toml: http-basic.blank: the secret is empty" in result.stderr
    assert (
        (poetry_dir / "auth.toml")
        .read_text()
        .endswith('[http-basic.blank]\nusername = "x"\npassword = ""\n')
    )


# --- exec: the variables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("foo", "FOO"), ("my-repo.x", "MY_REPO_X"), ("PyPI", "PYPI"), ("a_b-9", "A_B_9")],
)
def test_env_name(name: str, expected: str) -> None:
    """Names are upper-cased and every non-alphanumeric becomes '_'."""
    assert expected == env_name(name)


def cred(name: str, username: str, password: str, kind: str = "basic", *urls: str) -> Credential:
    """A credential as get returns it."""
    return Credential(name, username, password, kind, urls, None, None, None)


def test_credential_env_read_only_without_upload() -> None:
    """Without upload, only the read variables of the read credential: no token, no twine,
    no uv publish."""
    repo = RepoCredentials(
        "my-repo.x", cred("my-repo.x", "alice", PW, "basic", "https://m.test/upload/"), None
    )

    env = credential_env([repo], cli_exec.FAMILIES)

    assert {
        "POETRY_HTTP_BASIC_MY_REPO_X_USERNAME": "alice",
        "POETRY_HTTP_BASIC_MY_REPO_X_PASSWORD": PW,
        "UV_INDEX_MY_REPO_X_USERNAME": "alice",
        "UV_INDEX_MY_REPO_X_PASSWORD": PW,
    } == env


def test_credential_env_upload_adds_every_upload_variable() -> None:
    """With upload, one repository with a basic and a __token__ record gives the read
    variables from the basic record and the upload ones from the token, with the upload URL."""
    repo = RepoCredentials(
        "my-repo.x",
        cred("my-repo.x", "alice", PW, "basic", "https://m.test/simple/"),
        cred("my-repo.x", "__token__", TOKEN, "token", "https://m.test/upload/"),
    )

    env = credential_env([repo], cli_exec.FAMILIES, upload=True)

    assert {
        "POETRY_HTTP_BASIC_MY_REPO_X_USERNAME": "alice",
        "POETRY_HTTP_BASIC_MY_REPO_X_PASSWORD": PW,
        "POETRY_PYPI_TOKEN_MY_REPO_X": TOKEN,
        "UV_INDEX_MY_REPO_X_USERNAME": "alice",
        "UV_INDEX_MY_REPO_X_PASSWORD": PW,
        "TWINE_USERNAME": "__token__",
        "TWINE_PASSWORD": TOKEN,
        "TWINE_REPOSITORY_URL": "https://m.test/upload/",
        "UV_PUBLISH_USERNAME": "__token__",
        "UV_PUBLISH_PASSWORD": TOKEN,
        "UV_PUBLISH_URL": "https://m.test/upload/",
    } == env


def test_credential_env_other_token_username_reads() -> None:
    """A token with another username than __token__ (CodeArtifact's aws) is a read credential."""
    repo = RepoCredentials("ca", cred("ca", "aws", TOKEN, "token"), None)

    env = credential_env([repo], ["poetry", "uv"])

    assert {
        "POETRY_HTTP_BASIC_CA_USERNAME": "aws",
        "POETRY_HTTP_BASIC_CA_PASSWORD": TOKEN,
        "UV_INDEX_CA_USERNAME": "aws",
        "UV_INDEX_CA_PASSWORD": TOKEN,
    } == env


def test_credential_env_upload_rules() -> None:
    """Upload variables need one repository and an upload URL (a /simple/ index only as a
    last resort), except for pypi; required, their absence is an error, else a note."""
    simple = RepoCredentials("a", cred("a", "u", PW, "basic", "https://a.test/simple/"), None)
    bare = RepoCredentials("b", cred("b", "u", PW), None)
    pypi = RepoCredentials("pypi", None, cred("pypi", "__token__", TOKEN, "token"))
    notes: list[str] = []

    assert (
        "https://a.test/simple/"
        == (credential_env([simple], ["twine"], upload=True)["TWINE_REPOSITORY_URL"])
    )
    assert {"UV_INDEX_B_USERNAME": "u", "UV_INDEX_B_PASSWORD": PW} == credential_env(
        [bare], ["twine", "uv"], upload=True, notes=notes
    )
    assert ["'b' has no upload URL"] == [n.split(", so")[0] for n in notes]
    assert {"TWINE_USERNAME": "__token__", "TWINE_PASSWORD": TOKEN} == credential_env(
        [pypi], ["twine"], upload=True
    )
    with pytest.raises(BadRequestError, match="one repository, not 2"):
        credential_env([simple, pypi], ["twine"], upload=True)
    with pytest.raises(BadRequestError, match="no upload URL"):
        credential_env([bare], ["uv"], upload=True, required=True)


# --- exec: the command ----------------------------------------------------------------------------


class Exec:
    """Stands in for os.execvpe: records the call and ends like the command would."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[str, list[str], dict[str, str]]] = []

    def __call__(self, file: str, args: list[str], env: dict[str, str]) -> NoReturn:
        self.calls.append((file, list(args), dict(env)))
        raise SystemExit(self.status)

    @property
    def env(self) -> dict[str, str]:
        """The environment the command got."""
        return self.calls[-1][2]


@pytest.fixture
def execvpe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Exec]:
    """os.execvpe replaced; the test's own environment checked to be unchanged afterwards."""

    def snapshot() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}

    before = snapshot()
    fake = Exec(status=7)
    monkeypatch.setattr(os, "execvpe", fake)
    yield fake
    assert before == snapshot()


@pytest.fixture
def daemon() -> FakeDaemon:
    """acme (basic, with a URL), pypi (token), an expired and a generic record."""
    fake = FakeDaemon()
    fake.hold("acme", "alice", PW, urls=[ACME_URL])
    fake.hold("pypi", "__token__", TOKEN, kind="token")
    fake.hold("old", "carol", "pw-old", expired=True)
    fake.hold("https://example.test", "dave", "pw-generic", kind="generic")
    return fake


def test_exec_child_gets_variables(daemon: FakeDaemon, execvpe: Exec) -> None:
    """With --all the command runs with every live repository's read variables (an upload
    token's repository is skipped), exits with its status, and nothing secret is printed or
    passed as an argument."""
    result = run(daemon, "exec", "--all", "--", "tool", "--flag", "arg")

    assert 7 == result.exit_code
    [(file, args, env)] = execvpe.calls
    assert ("tool", ["tool", "--flag", "arg"]) == (file, args)
    added = {k: v for k, v in env.items() if k not in os.environ}
    assert {
        "POETRY_HTTP_BASIC_ACME_USERNAME": "alice",
        "POETRY_HTTP_BASIC_ACME_PASSWORD": PW,
        "UV_INDEX_ACME_USERNAME": "alice",
        "UV_INDEX_ACME_PASSWORD": PW,
    } == added
    assert daemon.closed
    assert_no_secret(result, (PW, TOKEN))


def test_exec_keeps_the_parent_environment(daemon: FakeDaemon, execvpe: Exec) -> None:
    """The command also gets helperctl's own environment; helperctl's is not changed."""
    run(daemon, "exec", "--repo", "acme", "--", "tool")

    assert dict(os.environ) == {k: v for k, v in execvpe.env.items() if k in os.environ}
    assert "POETRY_HTTP_BASIC_ACME_PASSWORD" not in os.environ


def test_exec_repo_and_format(daemon: FakeDaemon, execvpe: Exec) -> None:
    """--repo picks repositories, --format the families; --upload adds twine's and uv
    publish's variables."""
    result = run(daemon, "exec", "--repo", "acme", "--upload", "--format", "uv,twine", "tool")

    assert 7 == result.exit_code, result.output
    added = {k: v for k, v in execvpe.env.items() if k not in os.environ}
    assert {
        "UV_INDEX_ACME_USERNAME": "alice",
        "UV_INDEX_ACME_PASSWORD": PW,
        "TWINE_USERNAME": "alice",
        "TWINE_PASSWORD": PW,
        "TWINE_REPOSITORY_URL": ACME_URL,
        "UV_PUBLISH_USERNAME": "alice",
        "UV_PUBLISH_PASSWORD": PW,
        "UV_PUBLISH_URL": ACME_URL,
    } == added


def test_exec_repo_gives_no_upload_credentials(daemon: FakeDaemon, execvpe: Exec) -> None:
    """--repo without --upload gives the read variables only: no TWINE_*, no UV_PUBLISH_*,
    and a repository's __token__ record is not even fetched."""
    daemon.hold("acme", "__token__", "acme-upload-tok", kind="token", urls=["https://u.test/"])

    result = run(daemon, "exec", "--repo", "acme", "tool")

    assert 7 == result.exit_code, result.output
    added = {k: v for k, v in execvpe.env.items() if k not in os.environ}
    assert ["POETRY_HTTP_BASIC_ACME_PASSWORD", "POETRY_HTTP_BASIC_ACME_USERNAME"] == sorted(
        k for k in added if k.startswith("POETRY")
    )
    assert [] == [k for k in added if k.startswith(("TWINE_", "UV_PUBLISH_"))]
    assert "acme-upload-tok" not in added.values()
    assert [("get", "alice")] == [(op, a["username"]) for op, a in daemon.calls if op == "get"]


def test_exec_upload_gives_the_token(daemon: FakeDaemon, execvpe: Exec) -> None:
    """--repo pypi --upload hands out the __token__ record to Poetry, twine and uv publish."""
    result = run(daemon, "exec", "--repo", "pypi", "--upload", "tool")

    assert 7 == result.exit_code, result.output
    added = {k: v for k, v in execvpe.env.items() if k not in os.environ}
    assert {
        "POETRY_PYPI_TOKEN_PYPI": TOKEN,
        "TWINE_USERNAME": "__token__",
        "TWINE_PASSWORD": TOKEN,
        "UV_PUBLISH_USERNAME": "__token__",
        "UV_PUBLISH_PASSWORD": TOKEN,
    } == added


def test_exec_empty_store_runs_anyway(execvpe: Exec) -> None:
    """With --all and no repository at all the command still runs, with a warning."""
    result = run(FakeDaemon(), "exec", "--all", "tool")

    assert 7 == result.exit_code
    assert "holds no read credentials" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo", "nope", "tool"], "no basic or token record named 'nope'"),
        (["--repo", "old", "tool"], "every record of repository 'old' has expired"),
        (["--repo", "https://example.test", "tool"], "no basic or token record"),
        (["tool"], "or give --all; helperd holds: acme, pypi (upload token only)"),
        (["--repo", "acme", "--format", "twine", "tool"], "--format twine"),
        (["--repo", "acme", "--all", "tool"], "not both"),
        (["--all", "--upload", "tool"], "--upload takes exactly one --repo"),
        (["--repo", "acme", "--repo", "pypi", "--upload", "tool"], "exactly one --repo"),
        (["--repo", "pypi", "tool"], "holds only an upload token"),
        (["--format", "pip", "tool"], "choose among poetry, uv, twine"),
        (["--bogus", "tool"], "No such option"),
        ([], "Missing argument"),
    ],
)
def test_exec_own_failures_exit_125(
    daemon: FakeDaemon, execvpe: Exec, args: list[str], message: str
) -> None:
    """helperctl's own failures, usage errors included, exit 125 and run nothing."""
    result = run(daemon, "exec", *args)

    assert 125 == result.exit_code
    assert message in result.stderr
    assert [] == execvpe.calls


@pytest.mark.parametrize(
    "error",
    [
        DaemonUnreachableError("helperd is not running"),
        LockedError("the store is locked"),
        UntrustedSocketError("refusing to use the helperd socket /x/helperd.sock"),
    ],
)
def test_exec_daemon_failures_exit_125(execvpe: Exec, error: HelperdError) -> None:
    """Daemon down, store locked or an untrusted socket: 125, not the 3, 5 or 1 of other
    commands."""
    daemon = FakeDaemon()
    daemon.errors["list"] = error

    result = run(daemon, "exec", "--all", "tool")

    assert 125 == result.exit_code
    assert [] == execvpe.calls


def test_exec_name_clash_exits_125(execvpe: Exec) -> None:
    """Two names that give the same variables are refused rather than one silently winning."""
    daemon = FakeDaemon()
    daemon.hold("my-repo", "a", "pw-1")
    daemon.hold("my_repo", "b", "pw-2")

    result = run(daemon, "exec", "--all", "tool")

    assert 125 == result.exit_code
    assert "'my-repo' and 'my_repo' both give variables named *_MY_REPO_*" in result.stderr


def test_exec_nul_in_secret_exits_125(execvpe: Exec) -> None:
    """A secret an environment variable cannot carry is refused, not quoted."""
    daemon = FakeDaemon()
    daemon.hold("acme", "alice", "pw\0nul")

    result = run(daemon, "exec", "--all", "tool")

    assert 125 == result.exit_code
    assert "NUL character" in result.stderr
    assert "\0" not in result.output


def test_exec_newest_records_win(execvpe: Exec) -> None:
    """With two basic records of one name, the most recently updated one is given."""
    daemon = FakeDaemon()
    daemon.hold("acme", "alice", "pw-older")
    daemon.hold("acme", "bob", "pw-newer")

    run(daemon, "exec", "--all", "--format", "poetry", "tool")

    assert "bob" == execvpe.env["POETRY_HTTP_BASIC_ACME_USERNAME"]
    assert "pw-newer" == execvpe.env["POETRY_HTTP_BASIC_ACME_PASSWORD"]


def test_exec_command_not_found_exits_127(daemon: FakeDaemon, tmp_path: Path) -> None:
    """A command that does not exist exits 127, as with env (the real execvpe fails)."""
    result = run(daemon, "exec", "--all", "--", str(tmp_path / "missing"))

    assert 127 == result.exit_code
    assert f"helperctl: {tmp_path / 'missing'}: No such file or directory" in result.stderr


def test_exec_command_not_on_path_exits_127(
    daemon: FakeDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name not found on PATH exits 127."""
    monkeypatch.setenv("PATH", str(tmp_path))

    assert 127 == run(daemon, "exec", "--all", "no-such-tool-here").exit_code


def test_exec_command_cannot_run_exits_126(daemon: FakeDaemon, tmp_path: Path) -> None:
    """A command that exists but cannot be executed (a directory) exits 126."""
    result = run(daemon, "exec", "--all", "--", str(tmp_path))

    assert 126 == result.exit_code
    assert "Permission denied" in result.stderr


def test_exec_with_exec_failure_reports_nothing_secret(
    daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exec failure other than not-found (ENOEXEC) exits 126 and prints no secret."""

    def refuse(*_args: Any) -> NoReturn:
        raise OSError(8, "Exec format error")

    monkeypatch.setattr(os, "execvpe", refuse)

    result = run(daemon, "exec", "--all", "tool")

    assert 126 == result.exit_code
    assert "helperctl: tool: Exec format error" in result.stderr
    assert_no_secret(result, (PW, TOKEN))
