"""config.toml's ``[upstream]`` table: fixed names, defaults, and clear refusals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helperd_client.errors import BadRequestError

from helperd.core.config import Settings, UpstreamSettings


def _resolve(home: Path, table: str, **env: str) -> UpstreamSettings | None:
    (home / "config.toml").write_text(table)
    return Settings.resolve(env={"HELPERD_HOME": str(home), **env}).upstream


def test_no_table_no_upstream(home: Path) -> None:
    """Without an ``[upstream]`` table there is no upstream."""
    assert None is _resolve(home, "")


def test_defaults(home: Path) -> None:
    """Only address and a token file given: mount secret, prefix helperd, 300 s, 24 h."""
    table = '[upstream]\naddress = "https://bao.example:8200/"\ntoken_file = "/run/t"\n'
    expected = UpstreamSettings(
        address="https://bao.example:8200",
        mount="secret",
        prefix="helperd",
        token_file=Path("/run/t"),
        ttl=timedelta(seconds=300),
        max_stale=timedelta(hours=24),
    )
    upstream = _resolve(home, table)
    assert expected == upstream
    assert upstream is not None
    assert "token" == upstream.auth


def test_every_name(home: Path) -> None:
    """Every fixed name is read; slashes around mount, prefix and namespace are dropped."""
    table = (
        "[upstream]\n"
        'address = "http://127.0.0.1:8200"\n'
        'mount = "/kv/"\nprefix = "teams/build/"\nnamespace = "eng/"\n'
        'role_id_file = "/etc/helperd/role_id"\nsecret_id_file = "/etc/helperd/secret_id"\n'
        'ca_file = "/etc/ssl/bao-ca.pem"\nttl_seconds = 60\nmax_stale_seconds = 3600\n'
    )
    expected = UpstreamSettings(
        address="http://127.0.0.1:8200",
        mount="kv",
        prefix="teams/build",
        role_id_file=Path("/etc/helperd/role_id"),
        secret_id_file=Path("/etc/helperd/secret_id"),
        ca_file=Path("/etc/ssl/bao-ca.pem"),
        namespace="eng",
        ttl=timedelta(minutes=1),
        max_stale=timedelta(hours=1),
    )
    upstream = _resolve(home, table)
    assert expected == upstream
    assert upstream is not None
    assert "approle" == upstream.auth


def test_secret_files_under_credentials_directory(home: Path) -> None:
    """Relative secret files are read from ``$CREDENTIALS_DIRECTORY`` (systemd's
    ``LoadCredential=``); absolute ones stay where they are."""
    table = (
        '[upstream]\naddress = "https://bao:8200"\n'
        'role_id_file = "role_id"\nsecret_id_file = "/abs/secret_id"\n'
    )
    upstream = _resolve(home, table, CREDENTIALS_DIRECTORY="/run/credentials/helperd.service")
    assert upstream is not None
    assert (Path("/run/credentials/helperd.service/role_id"), Path("/abs/secret_id")) == (
        upstream.role_id_file,
        upstream.secret_id_file,
    )


def test_relative_secret_file_without_credentials_directory_stays_relative(home: Path) -> None:
    """Without ``$CREDENTIALS_DIRECTORY`` a relative secret file is kept as written (helperctl
    reads the same config outside the unit); the refresh names the missing variable."""
    table = '[upstream]\naddress = "https://bao:8200"\ntoken_file = "bao-token"\n'
    upstream = _resolve(home, table)
    assert upstream is not None
    assert Path("bao-token") == upstream.token_file


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param('token_file = "/t"\n', "upstream.address: Field required", id="no-address"),
        pytest.param(
            'address = "ftp://bao"\ntoken_file = "/t"\n', "http or https URL", id="scheme"
        ),
        pytest.param(
            'address = "https://u:pw@bao"\ntoken_file = "/t"\n', "userinfo", id="userinfo"
        ),
        pytest.param(
            'address = "https://bao/v1"\ntoken_file = "/t"\n', "must not carry a path", id="path"
        ),
        pytest.param('address = "https://bao"\n', "give token_file, or both", id="no-auth"),
        pytest.param(
            'address = "https://bao"\nrole_id_file = "/r"\n', "give token_file, or both", id="half"
        ),
        pytest.param(
            'address = "https://bao"\ntoken_file = "/t"\n'
            'secret_id_file = "/s"\nrole_id_file = "/r"\n',
            "not both",
            id="both",
        ),
        pytest.param(
            'address = "https://bao"\ntoken_file = "/t"\nca_file = "ca.pem"\n',
            "upstream.ca_file: Value error, must be an absolute path",
            id="relative-ca",
        ),
        pytest.param(
            'address = "https://bao"\ntoken_file = "/t"\nmount = "a b"\n',
            "upstream.mount",
            id="mount",
        ),
        pytest.param(
            'address = "https://bao"\ntoken_file = "/t"\nttl_seconds = 0\n',
            "upstream.ttl_seconds",
            id="ttl",
        ),
        pytest.param(
            'address = "https://bao"\ntoken_file = "/t"\nttl_seconds = 600\n'
            "max_stale_seconds = 60\n",
            "max_stale_seconds must be at least ttl_seconds",
            id="stale-below-ttl",
        ),
        pytest.param(
            'address = "https://bao"\ntoken_file = "/t"\nttl = 60\n',
            "upstream.ttl: unknown key (did you mean ttl_seconds?)",
            id="typo",
        ),
    ],
)
def test_bad_table_is_refused_clearly(home: Path, table: str, expected: str) -> None:
    """A bad ``[upstream]`` table is refused at start, naming the key and what is wrong."""
    (home / "config.toml").write_text("[upstream]\n" + table)
    with pytest.raises(BadRequestError) as caught:
        Settings.resolve(env={"HELPERD_HOME": str(home)})
    assert expected in caught.value.message


def test_refusal_never_quotes_the_value(home: Path) -> None:
    """A refused address is not echoed: a password typed into it stays out of the message."""
    (home / "config.toml").write_text(
        '[upstream]\naddress = "https://runner:hunter2@bao"\ntoken_file = "/t"\n'
    )
    with pytest.raises(BadRequestError) as caught:
        Settings.resolve(env={"HELPERD_HOME": str(home)})
    assert "hunter2" not in caught.value.message
