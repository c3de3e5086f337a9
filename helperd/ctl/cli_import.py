"""``helperctl import-poetry``: move the secrets of Poetry's plaintext auth.toml into helperd.

Registered on the ``helperctl`` group by `helperd.ctl.main`; ``exec`` lives in
`helperd.ctl.cli_exec`. This module never imports `helperd.ctl.main` at run time (that would be
a cycle): the command gets the `helperd.ctl.session.Session` from click's context object, which
the group sets. `helperd.integrations.poetry` (tomlkit, pydantic) and the daemon I/O of
`helperd.ctl.poetry_store` are imported only when ``import-poetry`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from helperd_client.errors import HelperdError, NotFoundError

from helperd.ctl.cli_output import printable
from helperd.ctl.session import require_open

if TYPE_CHECKING:
    from helperd.ctl.session import Session
    from helperd.integrations.auth_file import AuthFile
    from helperd.integrations.poetry import Plan

__all__ = ["import_poetry"]


# --- import-poetry -------------------------------------------------------------------------------


@click.command("import-poetry")
@click.option(
    "--auth-toml",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Poetry's auth.toml [default: $POETRY_CONFIG_DIR/auth.toml, else Poetry's config folder].",
)
@click.option("--dry-run", is_flag=True, help="List what would move; change nothing.")
@click.option(
    "--delete-backups",
    is_flag=True,
    help="Delete the backups beside auth.toml (auth.toml~, .auth.toml.swp, .bak, .orig)"
    " that hold a moved secret [default: list them and keep them].",
)
@click.option(
    "--move-client-certs",
    is_flag=True,
    help="Also move the keys of certificates.NAME.client-cert files into helperd"
    " (see docs/certificates.md).",
)
@click.pass_obj
def import_poetry(
    session: Session,
    *,
    auth_toml: Path | None,
    dry_run: bool,
    delete_backups: bool,
    move_client_certs: bool,
) -> None:
    """Move the secrets of Poetry's plaintext auth.toml into helperd.

    Every [http-basic.NAME] password becomes a basic record (NAME, username), and every
    [pypi-token] NAME a token record (NAME, __token__); so does an http-basic entry whose
    username is __token__.
    URLs come from [repositories.NAME] url in the config.toml beside auth.toml.

    Each secret is stored, then read back and compared; only then is auth.toml rewritten,
    atomically, without the secrets: comments, order, usernames, certificates and the
    file's mode stay. A symbolic link stays a link: the file behind it is rewritten.
    If a step fails, auth.toml is not changed, and running the command again is safe.
    A record that helperd holds for the same (NAME, username) is replaced.
    Empty and non-string secrets are reported and left in the file; no secret is printed.

    Nothing is left behind silently: an auth.toml with other hard links is refused (exit 1,
    nothing changed); backups beside it that hold a moved secret are listed and kept, or
    deleted with --delete-backups; a file inside a git work tree is warned about.

    No auth.toml at Poetry's place means nothing to import (exit 0); a missing --auth-toml
    exits 4.

    \b
    Examples:
      helperctl import-poetry --dry-run
      helperctl import-poetry --delete-backups
      helperctl import-poetry --auth-toml ~/old-poetry/auth.toml
    """
    from helperd.ctl.poetry_store import store_and_verify  # noqa: PLC0415 - with poetry, on demand
    from helperd.integrations import auth_file, poetry  # noqa: PLC0415 - tomlkit and pydantic: on demand

    path = auth_toml if auth_toml is not None else poetry.auth_toml_path()
    if move_client_certs:  # helperd.ctl.import_certs: the whole feature, in its own module
        from helperd.ctl.import_certs import move_client_certs as move_certs  # noqa: PLC0415

        move_certs(session, path, dry_run=dry_run)
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
    if plan.moves:
        refusal = auth_file.hard_links(auth)
        if refusal is not None:
            raise refusal
    exposure = _Exposure.of(auth, plan)
    if dry_run:
        _show_plan(plan)
        exposure.tell(deleting=False, dry_run=True)
        click.echo("dry run: nothing was changed", err=True)
        return
    if not plan.moves:
        click.echo(f"nothing to import: {path} holds no password or token to move", err=True)
        return
    client = session.client()
    require_open(client)
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
    behind = f" (behind the link {path})" if auth.is_link else ""
    click.echo(
        f"rewrote {auth.real}{behind} without {count} secret{'' if count == 1 else 's'};"
        " the rest is unchanged",
        err=True,
    )
    exposure.tell(deleting=delete_backups, dry_run=False)


@dataclass(frozen=True)
class _Exposure:
    """Where the moved secrets sat besides helperd, and what to tell the user about it."""

    auth: AuthFile
    count: int
    backups: tuple[tuple[Path, int], ...]
    work_tree: Path | None

    @classmethod
    def of(cls, auth: AuthFile, plan: Plan) -> _Exposure:
        from helperd.integrations import auth_file  # noqa: PLC0415 - loaded with helperd.integrations.poetry already

        secrets = [m.password for m in plan.moves]
        backups = auth_file.backups_holding(auth, secrets) if secrets else []
        tree = auth_file.git_work_tree(auth.real) if secrets else None
        return cls(auth, len(secrets), tuple(backups), tree)

    def tell(self, *, deleting: bool, dry_run: bool) -> None:
        """Report the link, the git work tree and the backups; then (unless a dry run) delete
        the backups if ``deleting`` and end with the advice to rotate."""
        from helperd.integrations import auth_file  # noqa: PLC0415 - loaded with helperd.integrations.poetry already

        if not self.count:
            return
        real = self.auth.real
        if self.auth.is_link:
            click.echo(
                f"helperctl: note: {self.auth.path} is a symbolic link: the file behind it,"
                f" {real}, is the one rewritten (the link stays)",
                err=True,
            )
        if self.work_tree is not None:
            click.echo(
                f"helperctl: warning: {real} sits inside the git work tree {self.work_tree}:"
                " if it was ever committed or pushed, the secrets are in that history",
                err=True,
            )
        results = dict.fromkeys(p for p, _ in self.backups)
        if deleting and not dry_run:
            results.update(auth_file.delete_backups([p for p, _ in self.backups]))
        for backup, held in self.backups:
            what = f"{backup} holds {held} of the moved secret{'s' if held > 1 else ''}"
            if dry_run:
                click.echo(f"helperctl: warning: {what}: --delete-backups deletes it", err=True)
            elif deleting and results[backup] is None:
                click.echo(f"deleted {backup}: it held {held} moved secret(s)", err=True)
            elif deleting:
                click.echo(
                    f"helperctl: warning: {what} and could not be deleted ({results[backup]})",
                    err=True,
                )
            else:
                click.echo(
                    f"helperctl: warning: {what}; it was kept: delete it (rm -- {backup})"
                    " or import with --delete-backups",
                    err=True,
                )
        if not dry_run:
            click.echo(self._rotate(), err=True)

    def _rotate(self) -> str:
        why = []
        if self.auth.mode & 0o044:
            why.append(f"{self.auth.real} was readable by others (mode {self.auth.mode:o})")
        if self.backups:
            why.append("backups held copies")
        if self.work_tree is not None:
            why.append("it sits in a git work tree")
        if why:
            return (
                f"rotate the moved secrets at their services: {'; '.join(why)},"
                " so someone may have read them"
            )
        return (
            "if this file was ever readable by others or copied (backups, sync, git), rotate"
            " the moved secrets at their services: the old bytes are freed on disk, not scrubbed"
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


def _add_context(exc: HelperdError, context: str) -> None:
    exc.message = f"{exc.message}; {context}"
    exc.args = (exc.message,)
