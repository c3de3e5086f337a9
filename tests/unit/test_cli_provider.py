"""``helperctl set --provider ...``: the spec helperctl builds from its fixed flags and sends.

helperctl never runs the provider: these tests give it a recording client and check the spec
(with the defaults users get), the resolved command, and the refusals before anything is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from helperd_client import RecordInfo, Status

from helperd.core.provider import AZURE_DEVOPS_RESOURCE, ProviderSpec
from helperd.ctl.main import cli
from helperd.ctl.session import Session

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class RecordingClient:
    """Records the ``set`` it is sent; answers like a daemon that minted a one-hour token."""

    path = Path("/nonexistent/helperd.sock")

    def __init__(self, locked: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.locked = locked

    def status(self) -> Status:
        return Status(
            version="0", protocol=1, pid=1, store="file", store_reason="test", initialized=True,
            locked=self.locked, lockable=True, repositories=0, records=0, idle_lock_seconds=None,
        )  # fmt: skip

    def set(self, name: str, password: str | None, **args: Any) -> RecordInfo:
        self.sent.append({"name": name, "password": password, **args})
        provider = args.get("provider")
        return RecordInfo(
            name=name,
            username=str(args["username"]),
            kind="token",
            urls=tuple(args.get("urls") or ()),
            expires_at=NOW + timedelta(hours=1),
            expired=False,
            created_at=NOW,
            updated_at=NOW,
            provider=None if provider is None else str(provider["preset"]),
        )

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only executables named aws, gcloud, az and mint."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("aws", "gcloud", "az", "mint"):
        (folder / name).write_text("#!/bin/sh\nexit 0\n")
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    return folder


def run(client: RecordingClient, *args: str) -> Result:
    """Run helperctl with ``client`` as its daemon."""
    session = Session(make_client=lambda _socket, _timeout: client, clock=lambda: NOW)  # type: ignore[arg-type,return-value]
    return CliRunner().invoke(cli, list(args), obj=session)


def sent_spec(client: RecordingClient) -> ProviderSpec:
    """The one provider spec sent, validated as the daemon would."""
    [sent] = client.sent
    assert sent["password"] is None
    return ProviderSpec.model_validate(sent["provider"])


def test_provider_command_sends_the_defaults_and_an_absolute_command(on_path: Path) -> None:
    """--provider-command -- mint ARGS: text format, lifetime 3600, min-lifetime 600, the
    command resolved on helperctl's PATH, username __token__, no password sent."""
    client = RecordingClient()

    result = run(client, "set", "corp", "--provider-command", "--", "mint", "--aud", "x")

    assert 0 == result.exit_code, result.output
    expected = ProviderSpec(
        preset="command",
        argv=(str(on_path / "mint"), "--aud", "x"),
        username="__token__",
    )
    assert expected == sent_spec(client)
    assert (3600, 600, "text") == (expected.lifetime, expected.min_lifetime, expected.format)
    assert "stored token record 'corp' for username '__token__' (provider command)" in (
        result.stderr
    )


def test_provider_command_takes_every_fixed_flag(on_path: Path) -> None:
    """--provider-format json, --token-field, --expiry-field, --lifetime, --min-lifetime,
    --provider-env (repeatable), --username and --url all reach the spec and the request."""
    client = RecordingClient()

    result = run(
        client, "set", "corp", "--url", "https://pkgs.corp.test/simple/", "--username", "ci",
        "--provider-command", "--provider-format", "json", "--token-field", "data.token",
        "--expiry-field", "data.expires", "--lifetime", "120", "--min-lifetime", "30",
        "--provider-env", "VAULT_ADDR", "--provider-env", "VAULT_TOKEN", "--", "mint",
    )  # fmt: skip

    assert 0 == result.exit_code, result.output
    spec = sent_spec(client)
    assert ("json", "data.token", "data.expires", 120, 30) == (
        spec.format,
        spec.token_field,
        spec.expiry_field,
        spec.lifetime,
        spec.min_lifetime,
    )
    assert (("VAULT_ADDR", "VAULT_TOKEN"), "ci") == (spec.env, spec.username)
    assert ["https://pkgs.corp.test/simple/"] == client.sent[0]["urls"]
    assert "ci" == client.sent[0]["username"]


def test_presets(on_path: Path) -> None:
    """codeartifact (with region and profile), gar and azure build their CLI's argv, resolved,
    with the preset's username."""
    client = RecordingClient()

    for args in (
        ("--provider", "codeartifact", "--domain", "d", "--domain-owner", "111122223333",
         "--region", "eu-west-1", "--profile", "ci"),
        ("--provider", "gar"),
        ("--provider", "azure"),
    ):  # fmt: skip
        result = run(client, "set", "corp", *args)
        assert 0 == result.exit_code, result.output
    specs = [ProviderSpec.model_validate(sent["provider"]) for sent in client.sent]

    assert [
        (
            str(on_path / "aws"), "codeartifact", "get-authorization-token", "--domain", "d",
            "--domain-owner", "111122223333", "--region", "eu-west-1", "--profile", "ci",
            "--output", "json",
        ),
        (str(on_path / "gcloud"), "auth", "print-access-token"),
        (str(on_path / "az"), "account", "get-access-token", "--resource", AZURE_DEVOPS_RESOURCE,
         "--output", "json"),
    ] == [s.argv for s in specs]  # fmt: skip
    assert ["aws", "oauth2accesstoken", "azure"] == [s.username for s in specs]
    assert [600, 600, 600] == [s.min_lifetime for s in specs]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("--domain", "d"), "--domain needs --provider", id="flag-alone"),
        pytest.param(
            ("--provider", "codeartifact", "--domain", "d"),
            "needs --domain and --domain-owner",
            id="no-owner",
        ),
        pytest.param(("--provider-command",), "needs the command after --", id="no-cmd"),
        pytest.param(
            ("--provider", "gar", "--provider-command", "--", "mint"), "not both", id="both"
        ),
        pytest.param(
            ("--provider", "gar", "--token-field", "t"), "with --provider-command", id="field"
        ),
        pytest.param(
            ("--provider-command", "--token-field", "t", "--", "mint"), "json", id="text-field"
        ),
        pytest.param(
            ("--provider-command", "--password-stdin", "--", "mint"), "no --password", id="pw"
        ),
    ],
)
def test_refusals_send_nothing(on_path: Path, args: tuple[str, ...], message: str) -> None:
    """Flags that do not fit together: a usage error (exit 2), and nothing is sent."""
    client = RecordingClient()

    result = run(client, "set", "corp", *args)

    assert (2, []) == (result.exit_code, client.sent)
    assert message in result.stderr


def test_a_command_not_on_path_is_refused(on_path: Path) -> None:
    """A command that helperctl's PATH does not hold is refused before anything is sent."""
    client = RecordingClient()

    result = run(client, "set", "corp", "--provider-command", "--", "no-such-mint")

    assert ([], 2) == (client.sent, result.exit_code)
    assert "'no-such-mint' not found on PATH" in result.stderr


def test_a_locked_store_is_refused_before_the_provider_runs(on_path: Path) -> None:
    """A locked store: exit 5 before anything is sent, so no cloud CLI runs for nothing."""
    client = RecordingClient(locked=True)

    result = run(client, "set", "corp", "--provider", "gar")

    assert ([], 5) == (client.sent, result.exit_code)
    assert "the store is locked" in result.stderr
