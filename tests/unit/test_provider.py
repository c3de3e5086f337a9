"""Provider specs, the presets' commands, and reading each CLI's output; time is fixed.

The files in provider_outputs/ are recorded in each CLI's documented output format:
``aws codeartifact get-authorization-token --output json`` (AWS CLI v1 prints the expiry as
epoch seconds, as the real ``aws`` 1.45 did against a local stand-in; v2 as ISO-8601),
``gcloud auth print-access-token`` (the token and a newline) and ``az account
get-access-token`` (``expires_on`` since az 2.54; before, only ``expiresOn`` in local time).
The tokens in them are made up.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from helperd_client.errors import BadRequestError, StoreUnavailableError
from pydantic import ValidationError

from helperd.core import provider
from helperd.core.provider import AZURE_DEVOPS_RESOURCE, Format, ProviderSpec
from helperd.core.provider_output import ProviderError, parse_output, printed_secrets, scrub

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OUTPUTS = Path(__file__).parent / "provider_outputs"
CA_TOKEN = json.loads((OUTPUTS / "codeartifact-v1.json").read_text())["authorizationToken"]
AZ_TOKEN = json.loads((OUTPUTS / "azure.json").read_text())["accessToken"]


def output(name: str) -> bytes:
    """A recorded output, as bytes on stdout."""
    return (OUTPUTS / name).read_bytes()


def test_codeartifact_preset_argv() -> None:
    """The CodeArtifact preset asks aws for a token as JSON, with region and profile if given,
    and goes with username aws."""
    spec = provider.codeartifact("dom", "111122223333", region="eu-west-1", profile="ci")
    assert (
        "aws",
        "codeartifact",
        "get-authorization-token",
        "--domain",
        "dom",
        "--domain-owner",
        "111122223333",
        "--region",
        "eu-west-1",
        "--profile",
        "ci",
        "--output",
        "json",
    ) == spec.argv
    assert ("aws", "codeartifact", Format.JSON) == (spec.username, spec.preset, spec.format)
    assert ("authorizationToken", "expiration") == (spec.token_field, spec.expiry_field)
    assert "--region" not in provider.codeartifact("dom", "111122223333").argv


def test_codeartifact_preset_refuses_a_flag_as_value() -> None:
    """A value that starts with a dash would be read by aws as another flag: refused."""
    with pytest.raises(BadRequestError):
        provider.codeartifact("--endpoint-url=http://evil", "111122223333")


def test_gar_preset() -> None:
    """The Artifact Registry preset prints a text token living 1 h, username oauth2accesstoken."""
    spec = provider.gar()
    assert ("gcloud", "auth", "print-access-token") == spec.argv
    expected = (Format.TEXT, 3600, "oauth2accesstoken")
    assert expected == (spec.format, spec.lifetime, spec.username)


def test_azure_preset_asks_for_azure_devops() -> None:
    """The Azure preset asks az for a token for Azure DevOps' resource, the only one Azure
    Artifacts accepts."""
    spec = provider.azure()
    assert ("az", "account", "get-access-token") == spec.argv[:3]
    assert ["--resource", AZURE_DEVOPS_RESOURCE] == list(spec.argv[3:5])
    assert "499b84ac-1321-427f-aa17-267ca6975798" == AZURE_DEVOPS_RESOURCE
    assert ("accessToken", "expires_on|expiresOn") == (spec.token_field, spec.expiry_field)


def test_defaults_users_get() -> None:
    """A text command lives 3600 s unless told, and must keep 600 s to be handed out."""
    spec = provider.command(["/bin/mint"], username="u")
    assert (3600, 600, Format.TEXT, ()) == (spec.lifetime, spec.min_lifetime, spec.format, spec.env)


def test_min_lifetime_capped_at_half_the_life() -> None:
    """The minimum life left is capped at half the token's life (a 60 s token: 30 s)."""
    spec = provider.gar()
    assert timedelta(seconds=30) == spec.min_left(timedelta(seconds=60))
    assert timedelta(seconds=600) == spec.min_left(timedelta(hours=12))


@pytest.mark.parametrize(
    "changes",
    [
        {"argv": ()},
        {"argv": ("",)},
        {"argv": ("/bin/x", "a\0b")},
        {"format": "json"},
        {"token_field": "a"},
        {"env": ("NOT-A-NAME",)},
        {"lifetime": 0},
        {"min_lifetime": -1},
        {"format": "json", "token_field": "a b"},
    ],
)
def test_spec_rules(changes: dict[str, object]) -> None:
    """A spec with an empty or NUL-bearing argv, a json format without a token field, fields
    on text, a bad variable name or a bad lifetime is refused."""
    with pytest.raises(ValidationError):
        provider.command(["/bin/mint"], username="u").replace(**changes)


def test_resolve_command_makes_argv0_absolute() -> None:
    """At set, the command is resolved on the caller's PATH; a missing one is refused."""
    spec = provider.gar()
    assert (
        "/usr/bin/gcloud"
        == provider.resolve_command(spec, which=lambda _: "/usr/bin/gcloud").argv[0]
    )
    with pytest.raises(BadRequestError, match="'gcloud' not found"):
        provider.resolve_command(spec, which=lambda _: None)


@pytest.mark.parametrize("name", ["codeartifact-v1.json", "codeartifact-v2.json"])
def test_codeartifact_output(name: str) -> None:
    """Both AWS CLI versions' outputs give the token and its expiry."""
    expires = {
        "codeartifact-v1.json": datetime(2026, 12, 2, 19, 33, 20, tzinfo=UTC),
        "codeartifact-v2.json": datetime(2026, 12, 2, 20, 0, tzinfo=UTC),
    }[name]
    minted = parse_output(provider.codeartifact("dom", "1"), output(name), NOW)
    assert (CA_TOKEN, expires, NOW) == (minted.token.get_secret_value(), minted.expires_at, NOW)


def test_gar_output() -> None:
    """gcloud's token (newline stripped) lives the configured hour from the end of the run."""
    minted = parse_output(provider.gar(), output("gar.txt"), NOW)
    assert output("gar.txt").decode().strip() == minted.token.get_secret_value()
    assert NOW + timedelta(hours=1) == minted.expires_at


def test_azure_output_prefers_epoch_expiry() -> None:
    """az 2.54+: expires_on (epoch seconds) wins over the local-time expiresOn."""
    minted = parse_output(provider.azure(), output("azure.json"), NOW, timezone(timedelta(hours=5)))
    assert AZ_TOKEN == minted.token.get_secret_value()
    assert datetime(2026, 12, 2, 20, 0, tzinfo=UTC) == minted.expires_at


def test_old_azure_output_is_local_time() -> None:
    """Before az 2.54 only expiresOn exists, printed in local time without an offset."""
    local = timezone(timedelta(hours=1))
    minted = parse_output(provider.azure(), output("azure-before-2.54.json"), NOW, local)
    assert datetime(2026, 12, 2, 20, 0, tzinfo=UTC) == minted.expires_at


def test_dotted_fields_and_string_epoch() -> None:
    """A user's JSON: dotted paths reach nested fields; an epoch may come as a string."""
    spec = provider.command(
        ["/bin/mint"], username="u", output=Format.JSON, token_field="a.tok", expiry_field="a.exp"
    )
    minted = parse_output(spec, b'{"a": {"tok": "t0k3n", "exp": "1796240000"}}', NOW)
    assert ("t0k3n", datetime(2026, 12, 2, 19, 33, 20, tzinfo=UTC)) == (
        minted.token.get_secret_value(),
        minted.expires_at,
    )


JSON_SPEC = provider.command(
    ["/bin/mint"], username="u", output=Format.JSON, token_field="t", expiry_field="e"
)


@pytest.mark.parametrize(
    ("spec", "stdout", "message"),
    [
        (provider.gar(), b"", "holds no token"),
        (provider.gar(), b"two words-SECRETSECRET\n", "not a token"),
        (provider.gar(), b"\xff\xfe-SECRETSECRET", "not UTF-8"),
        (provider.gar(), b"x" * 20_000, "longer than"),
        (JSON_SPEC, b"<html>SECRETSECRET</html>", "not JSON"),
        (JSON_SPEC, b'{"x": "SECRETSECRET"}', "no text field 't'"),
        (JSON_SPEC, b'{"t": "SECRETSECRET"}', "no expiry field 'e'"),
        (JSON_SPEC, b'{"t": "SECRETSECRET", "e": "soon"}', "not a time"),
        (JSON_SPEC, b'{"t": "SECRETSECRET", "e": 1e300}', "not a time"),
        (JSON_SPEC, b'{"t": "SECRETSECRET", "e": 1000}', "expired at 1970"),
    ],
)
def test_junk_output_is_an_error_without_the_output(
    spec: ProviderSpec, stdout: bytes, message: str
) -> None:
    """Output with no valid token or expiry is a store_unavailable error that names the
    problem and never repeats what was printed."""
    with pytest.raises(ProviderError) as caught:
        parse_output(spec, stdout, NOW)
    assert isinstance(caught.value, StoreUnavailableError)
    assert message in caught.value.message
    assert "SECRETSECRET" not in caught.value.message
    assert "SECRETSECRET" not in repr(caught.value)


def test_minted_repr_hides_the_token() -> None:
    """A minted token's repr shows its times, never the token."""
    minted = parse_output(provider.gar(), output("gar.txt"), NOW)
    assert "ya29" not in repr(minted)
    assert "ya29" not in str(minted)


def test_scrub() -> None:
    """Scrubbing removes the given secrets and any long token-like run, keeps the words,
    and makes one printable line."""
    said = "error: token ya29.a0AfB_byFAKE-0123456789abcdef rejected\nfor pw hunter2x\x1b[31m"
    assert "error: token [redacted] rejected for pw [redacted]?[31m" == scrub(said, ["hunter2x"])
    assert 1006 == len(scrub("word " * 1000))


def test_printed_secrets_finds_a_token_in_json_or_text() -> None:
    """JSON string values, decoded (``\\/`` is ``/``), and the pieces of 8 characters or more
    between quotes and punctuation, longest first; short words and numbers are left."""
    stdout = b'{"token": "t:1$Z\\/q!", "exp": 17, "deep": [[{"k": "abcd"}]]}\n'
    assert ["t:1$Z\\/q!", "t:1$Z/q!", "abcd"] == printed_secrets(stdout)
    assert ["plain-token-1"] == printed_secrets(b"ok plain-token-1 end")
