"""``helperctl exec``: run a command with the credentials it was given, and no others.

Every process the command starts (and every process those start: build backends of source
dependencies, plugins, hooks) inherits its environment, so exec hands out only what was
asked for: the read credentials of the repositories named (``--repo``, or ``--all``), and the
upload credentials (``__token__`` tokens, twine's and ``uv publish``'s variables) only with
``--upload`` and one ``--repo``.
Registered on the ``helperctl`` group by `helperd.ctl.main`; never imports
`helperd.ctl.main`.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import click
from helperd_client import Credential, RecordInfo
from helperd_client.errors import BadRequestError, HelperdError, NotFoundError
from helperd_client.names import TOKEN_USERNAME

from helperd.ctl.cli_input import fail
from helperd.ctl.cli_output import printable

if TYPE_CHECKING:
    from helperd.ctl.session import DaemonClient, Session

__all__ = [
    "EXEC_FAILED",
    "FAMILIES",
    "Choice",
    "RepoCredentials",
    "choose",
    "credential_env",
    "env_name",
    "exec_command",
    "repository_names",
]

FAMILIES = ("poetry", "uv", "twine")
"""The tools whose variables ``exec`` can set, in the order of ``--format``'s default."""

EXEC_FAILED = 125
"""``exec``'s own failures, as ``env`` has it; 126 (cannot run) and 127 (not found) are apart."""

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


class _ExecUsageError(click.UsageError):
    exit_code = EXEC_FAILED


class _ExecCommand(click.Command):
    """A command whose own failures exit `EXEC_FAILED`, so that they differ from the child's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _ExecUsageError(exc.format_message(), exc.ctx) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HelperdError as exc:
            fail(exc.message, EXEC_FAILED)


def _families(ctx: click.Context, param: click.Parameter, value: Sequence[str]) -> tuple[str, ...]:
    """Click callback: ``poetry,uv`` (repeatable) as a tuple of known families; all by default."""
    if not value:
        return ()
    asked = [part.strip().lower() for item in value for part in item.split(",") if part.strip()]
    unknown = sorted({f for f in asked if f not in FAMILIES})
    if unknown or not asked:
        raise click.BadParameter(
            f"choose among {', '.join(FAMILIES)} (got {', '.join(unknown) or 'nothing'})",
            ctx,
            param,
        )
    return tuple(dict.fromkeys(asked))


@click.command("exec", cls=_ExecCommand, context_settings={"allow_interspersed_args": False})
@click.option(
    "--repo",
    "repos",
    multiple=True,
    metavar="NAME",
    help="A repository whose read credentials to give (repeatable).",
)
@click.option("--all", "every", is_flag=True, help="The read credentials of every repository.")
@click.option(
    "--upload",
    is_flag=True,
    help=f"Also the upload credentials of the one --repo (its {TOKEN_USERNAME} token, twine,"
    " uv publish).",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="LIST",
    callback=_families,
    help="Which variables: poetry, uv, twine, comma-separated [default: all three].",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_command(
    session: Session,
    *,
    repos: tuple[str, ...],
    every: bool,
    upload: bool,
    formats: tuple[str, ...],
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with the credentials of the repositories named, in its environment only.

    COMMAND and every process it starts (build backends of source dependencies included)
    inherit these variables: name only the repositories COMMAND needs. NAME below is the
    repository name upper-cased, every character other than a letter or digit made '_'.

    \b
      POETRY_HTTP_BASIC_<NAME>_USERNAME, _PASSWORD   read: the basic record, else a token
      UV_INDEX_<NAME>_USERNAME, _PASSWORD            record whose username is not __token__
    \b
    With --upload (exactly one --repo), also:
      POETRY_PYPI_TOKEN_<NAME>                       the __token__ token record
      TWINE_USERNAME, _PASSWORD, _REPOSITORY_URL     the token, else the read record, with
      UV_PUBLISH_USERNAME, _PASSWORD, _URL           the record's upload URL

    A __token__ record is handed out only with --upload.
    Secrets go into the command's environment only, never into arguments or output.
    helperctl becomes the command (exec): its exit status, signals and terminal are its own.
    helperctl's own failures exit 125 (no --repo nor --all, --format twine without
    --upload, daemon down, a socket that is not yours, store locked, unknown repository);
    126 means COMMAND cannot run, 127 that it was not found.

    \b
    Examples:
      helperctl exec --repo acme -- poetry lock
      helperctl exec --repo acme --format uv -- uv pip install privpkg
      helperctl exec --repo pypi --upload --format twine -- twine upload dist/*
    """
    if repos and every:
        raise _ExecUsageError("give --repo NAME or --all, not both")
    if upload and (every or len(set(repos)) != 1):
        raise _ExecUsageError("--upload takes exactly one --repo NAME (and not --all)")
    if "twine" in formats and not upload:
        raise _ExecUsageError("--format twine gives upload credentials: add --upload")
    client = session.client()
    records = client.list()
    if not repos and not every:
        client.close()
        fail(_name_them(records), EXEC_FAILED)
    chosen = choose(records, repos, upload=upload)
    creds = [_fetch(client, choice) for choice in chosen]
    notes: list[str] = []
    added = credential_env(
        creds, formats or FAMILIES, upload=upload, required=bool(formats), notes=notes
    )
    client.close()  # the child needs no connection to the daemon
    for note in notes:
        click.echo(f"helperctl: note: {note}", err=True)
    if not chosen:
        click.echo(
            "helperctl: helperd holds no read credentials: running the command without any",
            err=True,
        )
    _exec(command, {**os.environ, **added})


def _name_them(records: Iterable[RecordInfo]) -> str:
    names = repository_names(records)
    held = ", ".join(f"{n} (upload token only)" if only else n for n, only in names.items())
    return (
        "name the repositories COMMAND needs with --repo NAME (repeatable), or give --all;"
        f" helperd holds: {held or 'no basic or token record'}"
    )


def repository_names(records: Iterable[RecordInfo]) -> dict[str, bool]:
    """The repositories with a live basic or token record, sorted: name -> upload token only."""
    live = [r for r in records if r.kind in ("basic", "token") and not r.expired]
    return {
        name: all(_upload_only(r) for r in live if r.name == name)
        for name in sorted({r.name for r in live})
    }


def _upload_only(record: RecordInfo) -> bool:
    return record.username == TOKEN_USERNAME


@dataclass(frozen=True)
class Choice:
    """The records ``exec`` gives for one repository.

    Attributes:
        name: the repository name.
        read: the newest basic record, else the newest token record, whose username is
            not ``__token__``.
        token: with ``--upload`` only, the newest token record whose username is ``__token__``.
    """

    name: str
    read: RecordInfo | None
    token: RecordInfo | None


@dataclass(frozen=True)
class RepoCredentials:
    """One repository's credentials as ``exec`` hands them out (see `Choice`)."""

    name: str
    read: Credential | None
    token: Credential | None


def choose(records: Iterable[RecordInfo], repos: Sequence[str], *, upload: bool) -> list[Choice]:
    """The repositories ``exec`` gives: ``repos`` in order, or (when empty) every one by name.

    Generic keyring entries are never repositories; expired records are left out; a
    ``__token__`` record is chosen only with ``upload``. With every repository, one that has
    nothing to give is skipped.

    Raises:
        NotFoundError: a name in ``repos`` has nothing to give.
    """
    usable = [r for r in records if r.kind in ("basic", "token")]
    names = list(dict.fromkeys(repos)) or sorted({r.name for r in usable if not r.expired})
    chosen: list[Choice] = []
    for name in names:
        mine = [r for r in usable if r.name == name]
        live = [r for r in mine if not r.expired]
        read = _newest(r for r in live if r.kind == "basic" and not _upload_only(r))
        read = read or _newest(r for r in live if r.kind == "token" and not _upload_only(r))
        token = _newest(r for r in live if r.kind == "token" and _upload_only(r))
        if read is None and (token is None or not upload):
            if not repos:
                continue
            raise NotFoundError(_nothing_to_give(name, mine, live))
        chosen.append(Choice(name, read, token if upload else None))
    return chosen


def _nothing_to_give(name: str, mine: Sequence[RecordInfo], live: Sequence[RecordInfo]) -> str:
    if not mine:
        return f"helperd holds no basic or token record named {name!r}"
    if not live:
        return f"every record of repository {name!r} has expired"
    return (
        f"repository {name!r} holds only an upload token (username {TOKEN_USERNAME}),"
        " which exec hands out with --upload only"
    )


def _newest(records: Iterable[RecordInfo]) -> RecordInfo | None:
    return max(records, key=lambda r: r.updated_at, default=None)


def _fetch(client: DaemonClient, choice: Choice) -> RepoCredentials:
    found = [
        None if info is None else client.get(name=choice.name, username=info.username)
        for info in (choice.read, choice.token)
    ]
    for info, cred in zip((choice.read, choice.token), found, strict=True):
        if info is not None and (cred is None or cred.username != info.username):
            raise NotFoundError(f"helperd did not give back the record of {choice.name!r}")
    return RepoCredentials(choice.name, found[0], found[1])


def env_name(name: str) -> str:
    """A repository name as the tools spell it in variables: ``my-repo.x`` is ``MY_REPO_X``."""
    return _NOT_ALNUM.sub("_", name).upper()


def credential_env(
    repos: Sequence[RepoCredentials],
    families: Collection[str],
    *,
    upload: bool = False,
    required: bool = False,
    notes: list[str] | None = None,
) -> dict[str, str]:
    """The variables that give ``repos`` to the tools of ``families``.

    Poetry and uv read with the ``read`` credential. With ``upload`` (one repository), Poetry
    gets the ``__token__`` token as ``POETRY_PYPI_TOKEN_<NAME>``, and twine and ``uv publish``
    the token, else the read credential, with the first URL that is not a ``/simple/`` index.
    They need that URL unless the repository is ``pypi`` (their default), so that credentials
    never go to PyPI by mistake: without it their variables are left out, with a line in
    ``notes``, or refused when ``required``.

    Raises:
        BadRequestError: two names give the same variable, a secret holds a NUL character,
            ``upload`` with other than one repository, or upload variables ``required`` and
            impossible.
    """
    env: dict[str, str] = {}
    owners: dict[str, str] = {}
    for repo in repos:
        key = env_name(repo.name)
        if owners.setdefault(key, repo.name) != repo.name:
            raise BadRequestError(
                f"repositories {owners[key]!r} and {repo.name!r} both give variables named"
                f" *_{key}_*: choose one with --repo"
            )
        for cred in (repo.read, repo.token):
            if cred is not None and ("\0" in cred.password or "\0" in cred.username):
                raise BadRequestError(
                    f"the {cred.kind} record of {repo.name!r} holds a NUL character,"
                    " which an environment variable cannot carry"
                )
        if repo.read is not None:
            for family in ("poetry", "uv"):
                if family in families:
                    prefix = "POETRY_HTTP_BASIC" if family == "poetry" else "UV_INDEX"
                    env[f"{prefix}_{key}_USERNAME"] = repo.read.username
                    env[f"{prefix}_{key}_PASSWORD"] = repo.read.password
    if upload:
        if len(repos) != 1:
            raise BadRequestError(f"upload credentials go to one repository, not {len(repos)}")
        env.update(_upload_vars(repos[0], families, required=required, notes=notes))
    return env


def _upload_vars(
    repo: RepoCredentials, families: Collection[str], *, required: bool, notes: list[str] | None
) -> dict[str, str]:
    found: dict[str, str] = {}
    if "poetry" in families and repo.token is not None:
        found[f"POETRY_PYPI_TOKEN_{env_name(repo.name)}"] = repo.token.password
    publishers = [f for f in ("twine", "uv") if f in families]
    cred = repo.token or repo.read
    if not publishers or cred is None:
        return found
    url = _upload_url([*cred.urls, *(u for c in (repo.read, repo.token) if c for u in c.urls)])
    if url is None and repo.name != "pypi":
        why = (
            f"{repo.name!r} has no upload URL, so twine and uv publish get no credentials"
            f" (add one: `helperctl set {repo.name} --url URL`)"
        )
        if required:
            raise BadRequestError(f"cannot give the upload variables: {why}")
        if notes is not None:
            notes.append(why)
        return found
    for family, prefix, url_name in (
        ("twine", "TWINE", "TWINE_REPOSITORY_URL"),
        ("uv", "UV_PUBLISH", "UV_PUBLISH_URL"),
    ):
        if family in publishers:
            found[f"{prefix}_USERNAME"] = cred.username
            found[f"{prefix}_PASSWORD"] = cred.password
            if url is not None:
                found[url_name] = url
    return found


def _upload_url(urls: Sequence[str]) -> str | None:
    """The first URL that is not a simple index (uploads go elsewhere), else the first one."""
    for url in urls:
        path = url.split("?", 1)[0].rstrip("/")
        if not path.endswith("/simple"):
            return url
    return urls[0] if urls else None


def _exec(command: Sequence[str], env: dict[str, str]) -> NoReturn:
    """Become ``command`` with ``env``; report a failure to start as ``env`` does.

    exec rather than a child process: the command takes over this process, so its signals,
    terminal, stdin and exit status (a death by signal included) are its own with nothing to
    forward or translate, and no helperctl stays behind holding the secrets. A command that
    cannot start makes execvpe raise here, before anything is replaced: ENOENT (and
    ENOTDIR, met while searching PATH) mean not found, 127; anything else cannot run, 126.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    shown = printable(command[0])
    try:
        os.execvpe(command[0], list(command), env)  # noqa: S606 - argv as given, no shell
    except OSError as exc:
        code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
        fail(f"{shown}: {exc.strerror or exc}", code)
    except ValueError:  # a NUL character in an argument
        fail(f"{shown}: an argument holds a NUL character", 126)
