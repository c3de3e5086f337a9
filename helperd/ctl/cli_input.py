"""What ``helperctl`` reads from its user: hidden prompts, secrets on stdin, names, URLs, times.

Secrets never come from the command line (they would show in ``ps``): either a hidden prompt
on a terminal, or stdin when a ``--…-stdin`` flag says so. Names, URLs and expiry times are
checked as click parameter types, so that a bad one is refused before any prompt. Time is a
parameter here, so that relative expiries are tested without a clock.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import click
from helperd_client.names import NAME_REGEX

__all__ = [
    "MAX_STDIN",
    "PROMPT_ATTEMPTS",
    "expiry",
    "fail",
    "index_urls",
    "parse_expiry",
    "prompt_secret",
    "read_passphrase_change",
    "read_secret",
    "read_stdin_text",
    "read_two_lines",
    "repository_name",
    "require_secret_source",
    "stdin_is_tty",
    "strip_one_newline",
]

MAX_STDIN = 60_000
"""Bytes of stdin accepted: a request line is capped at 65,536 bytes, JSON escaping included."""

PROMPT_ATTEMPTS = 3
"""Tries at a hidden prompt before giving up (an empty entry or a mismatch uses one)."""

_NAME = re.compile(NAME_REGEX)  # as helperd.core.record.NAME_PATTERN, without pydantic
_DURATION = re.compile(r"(?:[0-9]+[smhdw])+", re.IGNORECASE)
_PART = re.compile(r"([0-9]+)([smhdw])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """End the command: ``helperctl: <message>`` on stderr, then exit with ``exit_code``."""
    click.echo(f"helperctl: {message}", err=True)
    raise click.exceptions.Exit(exit_code)


def repository_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Click callback: ``value`` if it is a repository name as Poetry knows it."""
    if not _NAME.fullmatch(value):
        raise click.BadParameter(
            "a repository name holds only letters, digits, '.', '_' and '-'", ctx, param
        )
    return value


def index_urls(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple[str, ...]:
    """Click callback: http(s) URLs without a password (`helperd.core.lookup.check_url`).

    The message never quotes the URL, which may hold a password.
    """
    if not value:
        return ()
    from helperd_client.errors import BadRequestError  # noqa: PLC0415 - light, but only here

    from helperd.core.lookup import check_url  # noqa: PLC0415 - it brings pydantic: load on demand

    try:
        return tuple(check_url(url) for url in value)
    except BadRequestError as exc:
        raise click.BadParameter(exc.message, ctx, param) from None


def expiry(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Click callback: the time `parse_expiry` reads, "now" being ``ctx.obj.clock()`` if any."""
    if value is None:
        return None
    clock = getattr(ctx.obj, "clock", None)
    now = clock() if callable(clock) else datetime.now(UTC)
    try:
        return parse_expiry(value, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def stdin_is_tty() -> bool:
    """Whether stdin is a terminal, so that a hidden prompt can be answered."""
    return sys.stdin.isatty()


def strip_one_newline(text: str) -> str:
    r"""``text`` without one trailing ``\n`` or ``\r\n``; every other character kept."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def read_stdin_text(what: str) -> str:
    """All of stdin as UTF-8 text, bounded by `MAX_STDIN`.

    Raises:
        click.UsageError: stdin is too long or not UTF-8 (the message never quotes it).
    """
    data = sys.stdin.buffer.read(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        raise click.UsageError(f"the {what} on stdin is longer than {MAX_STDIN} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise click.UsageError(f"the {what} on stdin is not UTF-8 text") from None


def read_secret(what: str, *, from_stdin: bool, flag: str, confirm: bool) -> str:
    """A secret from stdin (``from_stdin``) or from a hidden prompt on a terminal.

    Args:
        what: what is asked for, for prompts and messages ("password", "passphrase").
        from_stdin: read all of stdin and strip one trailing newline; when stdin is a
            terminal, where typing would echo the secret, prompt hidden instead.
        flag: the option that reads stdin, named when no terminal can be prompted.
        confirm: ask twice at the prompt.

    Raises:
        click.UsageError: the secret is empty, or stdin is not a terminal and ``flag`` is missing.
    """
    require_secret_source(what, from_stdin=from_stdin, flag=flag)
    if from_stdin and stdin_is_tty():  # typed at a terminal, it would show on the screen
        click.echo(f"helperctl: stdin is a terminal: asking for the {what} hidden", err=True)
    elif from_stdin:
        secret = strip_one_newline(read_stdin_text(what))
        if not secret:
            raise click.UsageError(f"the {what} on stdin is empty; nothing was changed")
        return secret
    return prompt_secret(what.capitalize(), confirm=confirm)


def require_secret_source(what: str, *, from_stdin: bool, flag: str) -> None:
    """Fail early when a secret can come neither from stdin nor from a prompt.

    Raises:
        click.UsageError: stdin is not a terminal and ``flag`` was not given.
    """
    if not from_stdin and not stdin_is_tty():
        raise click.UsageError(
            f"stdin is not a terminal, so the {what} cannot be prompted for: pipe it in with {flag}"
        )


def prompt_secret(label: str, *, confirm: bool) -> str:
    """Ask for a secret with hidden input, twice when ``confirm``; prompts go to stderr.

    An empty entry or two entries that differ are refused and asked again, up to
    `PROMPT_ATTEMPTS` times in all.

    Raises:
        click.exceptions.Exit: no acceptable entry after `PROMPT_ATTEMPTS` tries (exit 1).
    """
    for _ in range(PROMPT_ATTEMPTS):
        first = _hidden(label)
        if not first:
            click.echo(f"helperctl: an empty {label.lower()} is refused; try again", err=True)
            continue
        if not confirm or first == _hidden(f"Repeat {label.lower()}"):
            return first
        click.echo("helperctl: the two entries differ; try again", err=True)
    fail(f"no {label.lower()} accepted after {PROMPT_ATTEMPTS} tries; nothing was changed")


def read_two_lines(what: str) -> tuple[str, str]:
    r"""Two secrets from stdin, one per line (``old\nnew\n``), as ``passwd`` reads them.

    Raises:
        click.UsageError: stdin does not hold exactly two non-empty lines.
    """
    text = strip_one_newline(read_stdin_text(what))
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if len(lines) != 2 or not all(lines):
        raise click.UsageError(
            f"stdin must hold two non-empty lines: the current {what}, then the new one"
        )
    return lines[0], lines[1]


def read_passphrase_change(*, from_stdin: bool) -> tuple[str, str]:
    """The current and the new passphrase: two lines of stdin, or three hidden prompts."""
    if from_stdin:
        return read_two_lines("passphrase")
    old = prompt_secret("Current passphrase", confirm=False)
    return old, prompt_secret("New passphrase", confirm=True)


def parse_expiry(text: str, now: datetime) -> datetime:
    """An expiry time in UTC from ISO-8601 (naive means UTC) or a duration from ``now``.

    A duration is one or more of number and unit: ``30s``, ``30m``, ``12h``, ``7d``, ``1w``,
    ``1d12h``.

    Raises:
        ValueError: ``text`` is neither, or names a time not after ``now``.
    """
    text = text.strip()
    if _DURATION.fullmatch(text):
        seconds = sum(int(n) * _UNIT_SECONDS[u.lower()] for n, u in _PART.findall(text))
        try:
            when = now + timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"{text!r} is too far in the future") from None
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither an ISO-8601 time (2030-01-31T12:00:00Z)"
                " nor a duration (30m, 12h, 7d, 1w)"
            ) from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise ValueError(f"{text!r} is not in the future")
    return when


def _hidden(label: str) -> str:
    # default="" lets an empty entry through, so that it is refused with a message rather
    # than silently asked again.
    value = click.prompt(label, hide_input=True, default="", show_default=False, err=True)
    return str(value)
