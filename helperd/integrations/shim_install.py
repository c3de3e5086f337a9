"""``helperctl install-shim``: put helperd's fast ``keyring`` shim first on PATH (opt-in).

Registered on the ``helperctl`` group by `helperd.ctl.main`; this module never imports helperctl's
modules. The file it writes holds no secret: a shebang naming this install's Python, the
marker line of `helperd_client.shim`, and two lines that run the shim.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import click
from helperd_client.errors import HelperdError
from helperd_client.shim import MARKER

from helperd.stores.durable import write_atomic

__all__ = ["install_shim", "shim_script", "uninstall", "write_shim"]

SHEBANG_MAX = 120
"""Longer interpreter paths, or ones with spaces, get a /bin/sh trampoline (kernels cut at 127)."""

FLAGS = "-I"
"""Isolated mode: no PYTHONPATH, no user site, no script folder on sys.path. It keeps site (a venv
needs it to find its packages, ``-S`` would lose them) and spares the shim every stray import."""


def shim_script(python: str) -> str:
    """The text of the ``keyring`` shim that runs `helperd_client.shim` with ``python``."""
    body = f"{MARKER}\nfrom helperd_client.shim import main\nraise SystemExit(main())\n"
    if len(python) <= SHEBANG_MAX and " " not in python and "\t" not in python:
        return f"#!{python} {FLAGS}\n{body}"
    # pip's trick: sh runs the exec line; Python reads the same lines as a string and a comment.
    quoted = "'" + python.replace("'", "'\"'\"'") + "'"
    return f"#!/bin/sh\n'''exec' {quoted} {FLAGS} \"$0\" \"$@\"\n' '''\n{body}"


def write_shim(directory: Path, python: str) -> Path:
    """Write ``directory/keyring`` (0755, ``directory`` created 0755); refuses a foreign file.

    The shim is written as every helperd file is (`helperd.stores.durable.write_atomic`): a
    temporary file with a random name, created with ``O_EXCL`` and ``O_NOFOLLOW`` so that
    nothing planted in the folder is written through, then renamed over the target. A
    symbolic link at the target is never ours, so it is refused rather than followed.
    """
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = directory / "keyring"
    if os.path.lexists(target) and not _is_ours(target):
        raise click.ClickException(
            f"{target} exists and was not written by helperctl install-shim; move it away first"
        )
    try:
        write_atomic(target, shim_script(python).encode("utf-8"), mode=0o755)
    except HelperdError as exc:
        raise click.ClickException(exc.message) from None
    return target


def uninstall(directory: Path) -> Path | None:
    """Remove ``directory/keyring`` if this command wrote it; returns it, or None if absent."""
    target = directory / "keyring"
    if not os.path.lexists(target):
        return None
    if not _is_ours(target):
        raise click.ClickException(
            f"{target} was not written by helperctl install-shim; leaving it alone"
        )
    target.unlink()
    return target


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) holding the shim's marker."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        return stat.S_ISREG(os.fstat(fd).st_mode) and MARKER.encode() in handle.read(1024)


def _first_on_path(name: str) -> str | None:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@click.command("install-shim")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the shim (default: ~/.local/bin). Put it before the real keyring on PATH.",
)
@click.option("--uninstall", "remove", is_flag=True, help="Remove the shim this command wrote.")
def install_shim(directory: Path | None, remove: bool) -> None:
    """Install a fast `keyring` shim for pip's and uv's subprocess keyring provider.

    It writes an executable named `keyring` into DIR that runs helperd_client.shim with this
    Python. pip (`--keyring-provider subprocess`) and uv (`--keyring-provider subprocess`) then
    get their credentials from helperd without starting the keyring package. When no daemon
    answers, the shim starts one (HELPERD_AUTOSTART=0 turns that off). Every other keyring
    command (set, del, ...), and every lookup while helperd still cannot be reached, goes to
    the real `keyring` found further along PATH; a socket that is not yours makes the lookup
    exit 1 instead. --uninstall removes only a shim it wrote.

    \b
    Examples:
      helperctl install-shim
      helperctl install-shim --dir ~/bin
      helperctl install-shim --uninstall
    """
    folder = (directory or Path.home() / ".local" / "bin").expanduser()
    if remove:
        removed = uninstall(folder)
        click.echo(f"removed {removed}" if removed else f"no shim in {folder}", err=True)
        return
    existed = folder.is_dir()
    target = write_shim(folder, sys.executable)
    if not existed:  # a mistyped --dir shows here, not only in the PATH note below
        click.echo(f"created {folder}", err=True)
    click.echo(f"wrote {target}", err=True)
    first = _first_on_path("keyring")
    if first is None or os.path.realpath(first) != os.path.realpath(target):
        click.echo(
            f"note: {folder} must come first on PATH for the shim to be used"
            f" (now `keyring` is {first or 'not found'}):"
            f' export PATH="{folder}:$PATH"',
            err=True,
        )
