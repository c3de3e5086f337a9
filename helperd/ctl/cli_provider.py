"""``helperctl set --provider ...``: the provider flags, and the spec they build.

helperctl never runs a provider: it builds the spec (``argv[0]`` resolved to an absolute path
on the caller's PATH) and sends it; the daemon runs it once at ``set`` and keeps its token fresh.
The flag names are fixed (scripts rely on them): see docs/cli.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from helperd_client.names import TOKEN_USERNAME

from helperd.ctl.cli_output import when
from helperd.ctl.session import require_open

if TYPE_CHECKING:
    from helperd.core.provider import ProviderSpec
    from helperd.ctl.session import DaemonClient

__all__ = ["provider_options", "provider_spec", "set_provider"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option(
        "--provider",
        type=click.Choice(["codeartifact", "gar", "azure"]),
        help="Mint the token with a cloud CLI (the daemon runs it, now and before expiry).",
    ),
    click.option("--domain", help="CodeArtifact: the domain."),
    click.option("--domain-owner", help="CodeArtifact: the AWS account id owning the domain."),
    click.option("--region", help="CodeArtifact: the AWS region."),
    click.option("--profile", help="CodeArtifact: the AWS CLI profile."),
    click.option(
        "--provider-command",
        is_flag=True,
        help="Mint the token with the command after `--` (CMD ARGS...).",
    ),
    click.option(
        "--provider-format",
        type=click.Choice(["text", "json"]),
        help="What the command prints: the token alone, or JSON [default: text].",
    ),
    click.option("--token-field", help="JSON: the dotted path of the token (a.b)."),
    click.option(
        "--expiry-field", help="JSON: the dotted path of the expiry (ISO-8601 or epoch seconds)."
    ),
    click.option(
        "--lifetime",
        type=click.IntRange(min=1),
        help="Seconds a token lives when the output does not say [default: 3600].",
    ),
    click.option(
        "--min-lifetime",
        type=click.IntRange(min=0),
        help="Seconds a token must have left to be served [default: 600, at most half its life].",
    ),
    click.option(
        "--provider-env",
        multiple=True,
        metavar="NAME",
        help="A variable passed through to the provider (repeatable).",
    ),
    click.argument("command", nargs=-1, type=click.UNPROCESSED),
)

_PROVIDER_ONLY = (
    "domain",
    "domain_owner",
    "region",
    "profile",
    "provider_format",
    "token_field",
    "expiry_field",
    "lifetime",
    "min_lifetime",
    "provider_env",
    "command",
)


def provider_options(command: F) -> F:
    """Add the provider flags (and the CMD ARGS... after ``--``) to ``command``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def provider_spec(flags: dict[str, Any], username: str | None) -> ProviderSpec | None:
    """The spec the flags ask for, its command resolved on PATH; None without a provider.

    Raises:
        click.UsageError: the flags do not fit together.
        BadRequestError: a value is refused, or the command is not found on PATH.
    """
    preset, own = flags["provider"], flags["provider_command"]
    if preset is None and not own:
        given = [f"--{n.replace('_', '-')}" for n in _PROVIDER_ONLY if flags[n] not in (None, ())]
        if given:
            raise click.UsageError(f"{given[0]} needs --provider or --provider-command")
        return None
    if preset is not None and own:
        raise click.UsageError("give --provider or --provider-command, not both")
    # Loaded here only: pydantic is heavy, and most helperctl calls never need it.
    from helperd.core.provider import resolve_command  # noqa: PLC0415

    spec = _preset(flags) if preset is not None else _own(flags, username)
    changes: dict[str, object] = {"env": tuple(flags["provider_env"])}
    if flags["min_lifetime"] is not None:
        changes["min_lifetime"] = flags["min_lifetime"]
    if flags["lifetime"] is not None:
        changes["lifetime"] = flags["lifetime"]
    if username is not None:
        changes["username"] = username
    try:
        spec = spec.replace(**changes)
    except ValueError as exc:  # pydantic's ValidationError: the flags' values only
        raise click.UsageError(_first_error(exc)) from None
    return resolve_command(spec)


def _preset(flags: dict[str, Any]) -> ProviderSpec:
    from helperd.core.provider import azure, codeartifact, gar  # noqa: PLC0415 - heavy

    name = flags["provider"]
    for flag in ("provider_format", "token_field", "expiry_field", "command"):
        if flags[flag] not in (None, ()):
            raise click.UsageError(f"--{flag.replace('_', '-')} goes with --provider-command only")
    if name != "codeartifact":
        for flag in ("domain", "domain_owner", "region", "profile"):
            if flags[flag] is not None:
                raise click.UsageError(f"--{flag.replace('_', '-')} goes with codeartifact only")
    if name == "gar":
        return gar()
    if name == "azure":
        return azure()
    if flags["domain"] is None or flags["domain_owner"] is None:
        raise click.UsageError("--provider codeartifact needs --domain and --domain-owner")
    return codeartifact(
        flags["domain"], flags["domain_owner"], region=flags["region"], profile=flags["profile"]
    )


def _own(flags: dict[str, Any], username: str | None) -> ProviderSpec:
    from helperd.core.provider import Format, command  # noqa: PLC0415 - heavy

    for flag in ("domain", "domain_owner", "region", "profile"):
        if flags[flag] is not None:
            raise click.UsageError(f"--{flag.replace('_', '-')} goes with codeartifact only")
    if not flags["command"]:
        raise click.UsageError("--provider-command needs the command after --: -- CMD ARGS...")
    try:
        return command(
            flags["command"],
            username=username or TOKEN_USERNAME,
            output=Format(flags["provider_format"] or "text"),
            token_field=flags["token_field"],
            expiry_field=flags["expiry_field"],
        )
    except ValueError as exc:
        raise click.UsageError(_first_error(exc)) from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors(include_input=False, include_url=False)
        if found:
            return str(found[0]["msg"]).removeprefix("Value error, ")
    return "invalid provider flags"


def set_provider(
    client: DaemonClient, name: str, spec: ProviderSpec, urls: tuple[str, ...]
) -> None:
    """``set`` with a provider: the daemon runs it once and stores its token, or nothing."""
    require_open(client)  # before the run: a cloud CLI may take seconds for nothing
    info = client.set(
        name,
        None,
        username=spec.username,
        kind="token",
        urls=list(urls) or None,
        provider=spec.model_dump(mode="json"),
    )
    until = f", token expires {when(info.expires_at)}" if info.expires_at else ""
    click.echo(
        f"stored token record {info.name!r} for username {info.username!r}"
        f" (provider {info.provider}){until}",
        err=True,
    )
