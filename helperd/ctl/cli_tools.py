"""``helperctl import-poetry`` and ``helperctl exec``: secrets in from Poetry, out to tools.

Registered on the ``helperctl`` group by `helperd.ctl.main`: the commands get the
`helperd.ctl.session.Session` from click's context object, which the group sets.
`helperd.integrations.poetry` (tomlkit, pydantic) is imported only when ``import-poetry`` runs.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from helperd_client import Credential, RecordInfo
from helperd_client.errors import BadRequestError, HelperdError, LockedError, NotFoundError

from helperd.ctl.cli_input import fail
from helperd.ctl.cli_output import printable

if TYPE_CHECKING:
    from helperd.ctl.session import DaemonClient, Session
    from helperd.integrations.poetry import Plan

__all__ = [
    "EXEC_FAILED",
    "FAMILIES",
    "Choice",
    "RepoCredentials",
    "choose",
    "credential_env",
    "env_name",
    "exec_command",
    "import_poetry",
]

FAMILIES = ("poetry", "uv", "twine")
"""The tools whose variables ``exec`` can set, in the order of ``--format``'s default."""

EXEC_FAILED = 125
"""``exec``'s own failures, as ``env`` has it; 126 (cannot run) and 127 (not found) are apart."""

_TOKEN_USERNAME = "__token__"  # noqa: S105 - a username, not a secret
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


# --- import-poetry -------------------------------------------------------------------------------


@click.command("import-poetry")
@click.option(
    "--auth-toml",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Poetry's auth.toml [default: $POETRY_CONFIG_DIR/auth.toml, else Poetry's config folder].",
)
@click.option("--dry-run", is_flag=True, help="List what would move; change nothing.")
@click.pass_obj
def import_poetry(session: Session, auth_toml: Path | None, dry_run: bool) -> None:
    """Move the secrets of Poetry's plaintext auth.toml into helperd.

    Every [http-basic.NAME] password becomes a basic record (NAME, username), and every
    [pypi-token] NAME a token record (NAME, __token__); so does an http-basic entry whose
    username is __token__.
    URLs come from [repositories.NAME] url in the config.toml beside auth.toml.

    Each secret is stored, then read back and compared; only then is auth.toml rewritten,
    atomically, without the secrets: comments, order, usernames and certificates stay.
    If a step fails, auth.toml is not changed, and running the command again is safe.
    A record that helperd holds for the same (NAME, username) is replaced.
    Empty and non-string secrets are reported and left in the file; no secret is printed.

    No auth.toml at Poetry's place means nothing to import (exit 0); a missing --auth-toml
    exits 4.

    \b
    Examples:
      helperctl import-poetry --dry-run
      helperctl import-poetry
      helperctl import-poetry --auth-toml ~/old-poetry/auth.toml
    """
    # Both bring tomlkit and pydantic: load them on demand.
    from helperd.ctl.poetry_store import store_and_verify  # noqa: PLC0415
    from helperd.integrations import poetry  # noqa: PLC0415

    path = auth_toml if auth_toml is not None else poetry.auth_toml_path()
    auth = poetry.read_auth(path)
    if auth is None:
        if auth_toml is not None:
            raise NotFoundError(f"{path} does not exist; nothing was imported")
        click.echo(f"nothing to import: Poetry has no auth.toml at {path}", err=True)
        return
    plan = poetry.plan_import(auth.text, poetry.read_repository_urls(path.parent / "config.toml"))
    for note in plan.notes:
        click.echo(f"helperctl: note: {note}", err=True)
    for skip in plan.skips:
        click.echo(f"helperctl: left in {path.name}: {skip.where}: {skip.reason}", err=True)
    if dry_run:
        _show_plan(plan)
        click.echo("dry run: nothing was changed", err=True)
        return
    if not plan.moves:
        click.echo(f"nothing to import: {path} holds no password or token to move", err=True)
        return
    client = session.client()
    _require_open(client)
    try:
        stored = store_and_verify(client, plan.moves)
    except HelperdError as exc:
        _add_context(exc, f"{path} was not changed, and running import-poetry again is safe")
        raise
    try:
        poetry.write_back(auth, plan.rewritten)
    except HelperdError as exc:
        _add_context(exc, "the secrets are in helperd, but the file still holds them")
        raise
    for done in stored:
        move = done.move
        said = {"new": "", "same": " (helperd held it already)", "replaced": " (replaced)"}
        click.echo(
            f"moved {move.where}: {move.kind} record {move.name!r},"
            f" username {move.username!r}{said[done.outcome]}",
            err=True,
        )
    count = len(stored)
    click.echo(
        f"rewrote {path} without {count} secret{'' if count == 1 else 's'}; the rest is unchanged",
        err=True,
    )


def _show_plan(plan: Plan) -> None:
    if not plan.moves:
        click.echo("nothing to import: no password or token to move", err=True)
        return
    from helperd.core.lookup import redact_url  # noqa: PLC0415 - loaded by helperd.integrations.poetry already

    rows = [("NAME", "USERNAME", "KIND", "URL", "FROM")]
    rows.extend(
        (
            m.name,
            printable(m.username) if m.username else "(none)",
            m.kind,
            "-" if m.url is None else printable(redact_url(m.url)),
            m.where,
        )
        for m in plan.moves
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _require_open(client: DaemonClient) -> None:
    """Fail before the first write when the store cannot take one."""
    state = client.status()
    if not state.initialized:
        raise LockedError("no store exists yet: create it with `helperctl init`")
    if state.locked:
        raise LockedError("the store is locked: `helperctl unlock` opens it")


def _add_context(exc: HelperdError, context: str) -> None:
    exc.message = f"{exc.message}; {context}"
    exc.args = (exc.message,)


# --- exec ----------------------------------------------------------------------------------------


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
    help="A repository whose credentials to give (repeatable) [default: every one].",
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
    session: Session, repos: tuple[str, ...], formats: tuple[str, ...], command: tuple[str, ...]
) -> None:
    """Run COMMAND with repository credentials in its environment only.

    The repositories are those named by --repo, else every basic and token record that has
    not expired. NAME below is the repository name upper-cased, with every character other
    than a letter or digit made '_' (my-repo.x gives MY_REPO_X).

    \b
      POETRY_HTTP_BASIC_<NAME>_USERNAME, _PASSWORD   from a basic record
      POETRY_PYPI_TOKEN_<NAME>                       from a __token__ token record
      UV_INDEX_<NAME>_USERNAME, _PASSWORD            basic, else token
      TWINE_USERNAME, _PASSWORD, _REPOSITORY_URL     token, else basic; only with one
                                                     repository that has an upload URL

    Secrets go into the command's environment only, never into arguments or output.
    helperctl becomes the command (exec), so its exit status, signals and terminal are the
    command's own.
    helperctl's own failures exit 125 (daemon down, store locked, unknown repository);
    126 means COMMAND cannot run, 127 that it was not found.

    \b
    Examples:
      helperctl exec -- poetry lock
      helperctl exec --repo acme --format uv -- uv pip install privpkg
      helperctl exec --repo pypi --format twine -- twine upload dist/*
    """
    client = session.client()
    chosen = choose(client.list(), repos)
    creds = [_fetch(client, choice) for choice in chosen]
    families = formats or FAMILIES
    added = credential_env(creds, families, twine_required="twine" in formats)
    client.close()  # the child needs no connection to the daemon
    if not chosen:
        click.echo(
            "helperctl: helperd holds no basic or token record: running the command without any",
            err=True,
        )
    _exec(command, {**os.environ, **added})


@dataclass(frozen=True)
class Choice:
    """The records ``exec`` gives for one repository: its newest basic and newest token."""

    name: str
    basic: RecordInfo | None
    token: RecordInfo | None


@dataclass(frozen=True)
class RepoCredentials:
    """One repository's credentials as ``exec`` hands them out."""

    name: str
    basic: Credential | None
    token: Credential | None


def choose(records: Iterable[RecordInfo], repos: Sequence[str]) -> list[Choice]:
    """The repositories ``exec`` gives: ``repos`` in order, or every one by name.

    Generic keyring entries are never repositories; expired records are left out.

    Raises:
        NotFoundError: a name in ``repos`` has no basic or token record, or only expired ones.
    """
    usable = [r for r in records if r.kind in ("basic", "token")]
    if repos:
        names = list(dict.fromkeys(repos))
    else:
        names = sorted({r.name for r in usable if not r.expired})
    chosen: list[Choice] = []
    for name in names:
        mine = [r for r in usable if r.name == name]
        live = [r for r in mine if not r.expired]
        if not live:
            raise NotFoundError(
                f"every record of repository {name!r} has expired"
                if mine
                else f"helperd holds no basic or token record named {name!r}"
            )
        chosen.append(
            Choice(
                name,
                _newest(r for r in live if r.kind == "basic"),
                _newest(r for r in live if r.kind == "token"),
            )
        )
    return chosen


def _newest(records: Iterable[RecordInfo]) -> RecordInfo | None:
    return max(records, key=lambda r: r.updated_at, default=None)


def _fetch(client: DaemonClient, choice: Choice) -> RepoCredentials:
    # Without a username, get answers the newest basic record of a name (SPEC.md), which is
    # also right for a basic record whose username is __token__ (get(username="__token__")
    # answers token records only).
    basic = client.get(name=choice.name) if choice.basic is not None else None
    token = None
    if choice.token is not None:
        token = client.get(name=choice.name, username=choice.token.username)
    return RepoCredentials(choice.name, basic, token)


def env_name(name: str) -> str:
    """A repository name as the tools spell it in variables: ``my-repo.x`` is ``MY_REPO_X``."""
    return _NOT_ALNUM.sub("_", name).upper()


def credential_env(
    repos: Sequence[RepoCredentials], families: Collection[str], *, twine_required: bool = False
) -> dict[str, str]:
    """The variables that give ``repos`` to the tools of ``families``.

    Poetry gets http-basic variables from the basic record and the token variable from a
    ``__token__`` token; a token with another username (CodeArtifact's ``aws``) is given as
    http-basic when there is no basic record. uv gets the basic record, else the token.
    twine, only with exactly one repository, gets the token, else the basic record, with the
    first URL that is not a ``/simple/`` index; it needs that URL unless the repository is
    ``pypi`` (twine's default), so that credentials never go to PyPI by mistake.

    Raises:
        BadRequestError: two names give the same variable, a secret holds a NUL character,
            or ``twine_required`` and twine cannot be given.
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
        if "poetry" in families:
            env.update(_poetry_vars(key, repo))
        main = repo.basic or repo.token
        if "uv" in families and main is not None:
            env[f"UV_INDEX_{key}_USERNAME"] = main.username
            env[f"UV_INDEX_{key}_PASSWORD"] = main.password
    if "twine" in families:
        env.update(_twine_vars(repos, required=twine_required))
    for repo in repos:
        for cred in (repo.basic, repo.token):
            if cred is not None and ("\0" in cred.password or "\0" in cred.username):
                raise BadRequestError(
                    f"the {cred.kind} record of {repo.name!r} holds a NUL character,"
                    " which an environment variable cannot carry"
                )
    return env


def _poetry_vars(key: str, repo: RepoCredentials) -> dict[str, str]:
    found: dict[str, str] = {}
    token = repo.token
    basic = repo.basic
    if basic is None and token is not None and token.username != _TOKEN_USERNAME:
        basic, token = token, None
    if basic is not None:
        found[f"POETRY_HTTP_BASIC_{key}_USERNAME"] = basic.username
        found[f"POETRY_HTTP_BASIC_{key}_PASSWORD"] = basic.password
    if token is not None and token.username == _TOKEN_USERNAME:
        found[f"POETRY_PYPI_TOKEN_{key}"] = token.password
    return found


def _twine_vars(repos: Sequence[RepoCredentials], *, required: bool) -> dict[str, str]:
    def refuse(why: str) -> dict[str, str]:
        if required:
            raise BadRequestError(f"cannot give twine its variables: {why}")
        return {}

    if len(repos) != 1:
        return refuse(f"it takes exactly one repository (give one --repo), not {len(repos)}")
    repo = repos[0]
    cred = repo.token or repo.basic
    if cred is None:
        return refuse(f"{repo.name!r} has no credentials")
    urls = [*cred.urls, *(u for c in (repo.basic, repo.token) if c for u in c.urls)]
    url = _upload_url(urls)
    found = {"TWINE_USERNAME": cred.username, "TWINE_PASSWORD": cred.password}
    if url is not None:
        found["TWINE_REPOSITORY_URL"] = url
    elif repo.name != "pypi":
        return refuse(
            f"{repo.name!r} has no upload URL (add one: `helperctl set {repo.name} --url URL`)"
        )
    return found


def _upload_url(urls: Sequence[str]) -> str | None:
    """The first URL that is not a simple index (twine uploads elsewhere), else the first one."""
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
