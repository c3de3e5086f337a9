"""Provider records: how helperd mints a short-lived token by running a command.

A `ProviderSpec` says which command to run (an argv list, never a shell string), how to read
its output (`Format`), which username the token goes with, how long a token lives when the
output does not say, and how much life a token must have left to be handed out. The presets
build the specs of the cloud CLIs: `codeartifact`, `gar` and `azure`; `command` wraps any other
command. Nothing here runs anything: `helperd.integrations.providers` does.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from datetime import timedelta
from enum import StrEnum
from typing import Literal

from helperd_client.errors import BadRequestError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "AZURE_DEVOPS_RESOURCE",
    "DEFAULT_LIFETIME",
    "DEFAULT_MIN_LIFETIME",
    "Format",
    "PresetName",
    "ProviderSpec",
    "azure",
    "codeartifact",
    "command",
    "gar",
    "resolve_command",
]

DEFAULT_LIFETIME = 3600
"""Seconds a token lives when the output does not say (``--lifetime``)."""

DEFAULT_MIN_LIFETIME = 600
"""Seconds a token must have left to be handed out (``--min-lifetime``), capped at half its life."""

AZURE_DEVOPS_RESOURCE = "499b84ac-1321-427f-aa17-267ca6975798"
"""Azure DevOps' resource id: Azure Artifacts refuses tokens minted for any other resource."""

PresetName = Literal["codeartifact", "gar", "azure", "command"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A dotted path of JSON keys, with "|" between alternatives (the first present wins).
_FIELD = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*(\|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*")


class Format(StrEnum):
    """What the command prints on stdout (``--provider-format``)."""

    TEXT = "text"
    """The token alone; it lives ``lifetime`` seconds from when the command ended."""
    JSON = "json"
    """A JSON object with the token (and perhaps its expiry) in named fields."""


class ProviderSpec(BaseModel):
    """How to mint a record's token. Holds no secret: a spec may be listed and logged.

    Attributes:
        preset: which preset built it (``command`` for ``--provider-command``); shown by ``list``.
        argv: the command and its arguments; ``argv[0]`` is an absolute path once resolved.
        format: how to read stdout.
        token_field: for JSON, the dotted path of the token (``a.b``).
        expiry_field: for JSON, the dotted path of the expiry (ISO-8601 or epoch seconds);
            ``a|b`` tries ``a`` first. None: the token lives ``lifetime`` seconds.
        lifetime: seconds a token lives when the output gives no expiry.
        min_lifetime: seconds a token must have left to be handed out (capped at half its life).
        username: the username the token goes with.
        env: names of variables passed through to the command (beside PATH, HOME and the
            cloud CLIs' own ``AWS_*``, ``CLOUDSDK_*``, ``AZURE_*``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: PresetName = "command"
    argv: tuple[str, ...] = Field(min_length=1)
    format: Format = Format.TEXT
    token_field: str | None = None
    expiry_field: str | None = None
    lifetime: int = Field(default=DEFAULT_LIFETIME, gt=0, le=366 * 86400)
    min_lifetime: int = Field(default=DEFAULT_MIN_LIFETIME, ge=0)
    username: str = Field(min_length=1)
    env: tuple[str, ...] = ()

    @field_validator("argv")
    @classmethod
    def _argv_ok(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        if not argv[0]:
            raise ValueError("the command must not be empty")
        if any("\0" in arg for arg in argv):
            raise ValueError("an argument must not contain a NUL byte")
        return argv

    @field_validator("env")
    @classmethod
    def _env_ok(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a variable name")
        return tuple(dict.fromkeys(names))

    @field_validator("token_field", "expiry_field")
    @classmethod
    def _field_ok(cls, path: str | None) -> str | None:
        if path is not None and not _FIELD.fullmatch(path):
            raise ValueError(f"{path!r} is not a dotted field path (like a.b, or a|b)")
        return path

    @model_validator(mode="after")
    def _format_ok(self) -> ProviderSpec:
        if self.format is Format.JSON and self.token_field is None:
            raise ValueError("a json provider needs a token field")
        if self.format is Format.TEXT and (self.token_field or self.expiry_field):
            raise ValueError("token and expiry fields need the json format")
        return self

    def replace(self, **changes: object) -> ProviderSpec:
        """A copy with ``changes`` (``min_lifetime``, ``env``, ``username``...), validated again.

        Raises:
            pydantic.ValidationError: a change breaks a rule.
        """
        return ProviderSpec.model_validate({**self.model_dump(), **changes})

    def min_left(self, lifetime: timedelta) -> timedelta:
        """The life a token of ``lifetime`` must have left to be handed out.

        ``min_lifetime``, capped at half the token's life, so that a token shorter than twice
        the minimum is still served for its first half instead of never.
        """
        return min(timedelta(seconds=self.min_lifetime), lifetime / 2)


def codeartifact(
    domain: str, domain_owner: str, *, region: str | None = None, profile: str | None = None
) -> ProviderSpec:
    """AWS CodeArtifact: ``aws codeartifact get-authorization-token``, username ``aws``.

    Args:
        domain: the CodeArtifact domain (``--domain``).
        domain_owner: the AWS account id that owns the domain (``--domain-owner``).
        region: the region (``--region``); None uses the CLI's configuration.
        profile: the named profile (``--profile``); None uses the CLI's configuration.
    """
    argv = ["aws", "codeartifact", "get-authorization-token"]
    argv += [
        "--domain",
        _arg("domain", domain),
        "--domain-owner",
        _arg("domain-owner", domain_owner),
    ]
    if region is not None:
        argv += ["--region", _arg("region", region)]
    if profile is not None:
        argv += ["--profile", _arg("profile", profile)]
    argv += ["--output", "json"]
    return ProviderSpec(
        preset="codeartifact",
        argv=tuple(argv),
        format=Format.JSON,
        token_field="authorizationToken",  # noqa: S106 - a field name
        expiry_field="expiration",
        username="aws",
    )


def gar() -> ProviderSpec:
    """Google Artifact Registry: ``gcloud auth print-access-token``, text, 1 h, username
    ``oauth2accesstoken``."""
    return ProviderSpec(
        preset="gar",
        argv=("gcloud", "auth", "print-access-token"),
        format=Format.TEXT,
        lifetime=3600,
        username="oauth2accesstoken",
    )


def azure(username: str = "azure") -> ProviderSpec:
    """Azure Artifacts: ``az account get-access-token`` for Azure DevOps' resource.

    ``expires_on`` (epoch seconds, az 2.54 and later) is read first; older az print only
    ``expiresOn``, a local time without an offset. Azure Artifacts accepts any username.
    """
    return ProviderSpec(
        preset="azure",
        argv=(
            "az",
            "account",
            "get-access-token",
            "--resource",
            AZURE_DEVOPS_RESOURCE,
            "--output",
            "json",
        ),
        format=Format.JSON,
        token_field="accessToken",  # noqa: S106 - a field name
        expiry_field="expires_on|expiresOn",
        username=username,
    )


def command(
    argv: Sequence[str],
    *,
    username: str,
    output: Format = Format.TEXT,
    token_field: str | None = None,
    expiry_field: str | None = None,
    lifetime: int = DEFAULT_LIFETIME,
) -> ProviderSpec:
    """Any command (``--provider-command -- CMD ARGS...``), its output read as ``output``."""
    return ProviderSpec(
        preset="command",
        argv=tuple(argv),
        format=output,
        token_field=token_field,
        expiry_field=expiry_field,
        lifetime=lifetime,
        username=username,
    )


def resolve_command(
    spec: ProviderSpec,
    *,
    which: Callable[[str], str | None] = shutil.which,
) -> ProviderSpec:
    """The spec with ``argv[0]`` made an absolute path, as found on the caller's PATH at ``set``.

    The daemon runs with its own PATH (a service unit's is short): resolving at ``set`` runs
    the command the user meant, and a later change of PATH cannot swap it.

    Raises:
        BadRequestError: the command is not found, or not executable.
    """
    program = spec.argv[0]
    found = which(program)
    if found is None or not found.startswith("/"):
        raise BadRequestError(f"provider command {program!r} not found on PATH")
    return spec.replace(argv=(found, *spec.argv[1:]))


def _arg(flag: str, value: str) -> str:
    # A value that starts with "-" would be read by the CLI as another flag.
    if not value or value.startswith("-"):
        raise BadRequestError(f"--{flag} must be a value, not {value!r}")
    return value
