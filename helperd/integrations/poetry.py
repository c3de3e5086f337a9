"""Poetry's plaintext credentials: find ``auth.toml``, plan their move into helperd, rewrite it.

`plan_import` and `rewrite` are pure (text in, values out); `read_repository_urls` reads a
file, and `helperd.integrations.auth_file` (re-exported here: `read_auth`, `write_back`) owns
auth.toml on disk; `helperd.ctl.poetry_store` talks to the daemon.
The order that keeps a secret from being lost: plan (the new text included), store every
secret, read every one back, and only then replace ``auth.toml``, atomically.
Nothing here ever writes a secret to disk, and no message holds one.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from helperd_client.errors import (
    BadRequestError,
)
from tomlkit.exceptions import TOMLKitError

from helperd.core.lookup import check_url
from helperd.core.record import NAME_PATTERN, TOKEN_USERNAME
from helperd.integrations.auth_file import AuthFile, PoetryFileError, read_auth, write_back

__all__ = [
    "BASIC",
    "PYPI_UPLOAD_URL",
    "TOKEN",
    "AuthFile",
    "Move",
    "Plan",
    "PoetryFileError",
    "Skip",
    "Stored",
    "auth_toml_path",
    "config_dir",
    "plan_import",
    "read_auth",
    "read_repository_urls",
    "repository_urls",
    "rewrite",
    "write_back",
]

BASIC = "http-basic"
TOKEN = "pypi-token"  # noqa: S105 - a table name, not a secret

PYPI_UPLOAD_URL = "https://upload.pypi.org/legacy/"
"""Where Poetry publishes repository ``pypi``, which config.toml never names."""


@dataclass(frozen=True)
class Move:
    """One secret of auth.toml that moves into helperd.

    Attributes:
        table: ``http-basic`` or ``pypi-token``, where it sits in auth.toml.
        name: the repository name.
        username: the record's username (``__token__`` for a token, ``""`` for none).
        kind: ``basic`` or ``token``.
        url: the repository's URL from config.toml, if known.
        password: the secret; never shown by ``repr``.
    """

    table: str
    name: str
    username: str
    kind: str
    url: str | None
    password: str = field(repr=False)

    @property
    def where(self) -> str:
        """``http-basic.NAME`` or ``pypi-token.NAME``, as Poetry's config names it."""
        return f"{self.table}.{self.name}"


@dataclass(frozen=True)
class Skip:
    """An entry of auth.toml that stays where it is, and why."""

    where: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """What an import does: the moves, the entries left alone, notes, and the new text."""

    moves: tuple[Move, ...]
    skips: tuple[Skip, ...]
    notes: tuple[str, ...]
    rewritten: str = field(repr=False)


@dataclass(frozen=True)
class Stored:
    """A move done: ``outcome`` is ``new``, ``same`` (helperd held it already) or ``replaced``."""

    move: Move
    outcome: str


# --- where Poetry keeps its files ----------------------------------------------------------------


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Poetry's config folder: ``$POETRY_CONFIG_DIR``, else platformdirs' as Poetry asks it."""
    env = os.environ if env is None else env
    if env.get("POETRY_CONFIG_DIR"):
        return Path(env["POETRY_CONFIG_DIR"])
    import platformdirs  # noqa: PLC0415 - only the import command needs it

    return platformdirs.user_config_path("pypoetry", appauthor=False, roaming=True)


def auth_toml_path(env: Mapping[str, str] | None = None) -> Path:
    """Where Poetry keeps plaintext credentials: ``auth.toml`` in `config_dir`."""
    return config_dir(env) / "auth.toml"


# --- reading -------------------------------------------------------------------------------------


def read_repository_urls(config_toml: Path) -> dict[str, str]:
    """The ``[repositories.NAME] url`` of Poetry's config.toml; empty when it does not exist.

    Raises:
        PoetryFileError: it exists but cannot be read or parsed.
    """
    try:
        text = config_toml.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PoetryFileError(f"cannot read {config_toml}: {reason}; nothing was changed") from None
    try:
        return repository_urls(text)
    except tomllib.TOMLDecodeError as exc:
        raise PoetryFileError(
            f"{config_toml} is not valid TOML ({exc}); nothing was changed"
        ) from None


def repository_urls(text: str) -> dict[str, str]:
    """The repository URLs of a config.toml's text, by name (entries without a string URL left out).

    Raises:
        tomllib.TOMLDecodeError: the text is not TOML.
    """
    repositories = tomllib.loads(text).get("repositories")
    if not isinstance(repositories, dict):
        return {}
    return {
        name: table["url"]
        for name, table in repositories.items()
        if isinstance(table, dict) and isinstance(table.get("url"), str)
    }


# --- planning ------------------------------------------------------------------------------------


def plan_import(text: str, urls: Mapping[str, str]) -> Plan:
    """Decide what moves out of auth.toml's ``text``, and compute the file without it.

    Every ``[http-basic.NAME]`` with a password becomes a basic record (NAME, username) and
    every ``[pypi-token] NAME`` a token record (NAME, ``__token__``), with ``urls[NAME]`` when
    known (``pypi`` defaults to PyPI's upload URL).
    Empty and non-string secrets, names Poetry could not use, and a second entry for a
    (name, username) already planned are skipped and stay in the file.

    Raises:
        PoetryFileError: ``text`` is not TOML, or the rewrite would change more than the
            secrets (a bug: nothing is changed then).
    """
    data = _parse(text)
    moves: list[Move] = []
    skips: list[Skip] = []
    notes: list[str] = []
    taken: dict[tuple[str, str], str] = {}

    def add(move: Move) -> None:
        if (move.name, move.username) in taken:
            reason = f"{taken[move.name, move.username]} moves the same (name, username) already"
            skips.append(Skip(move.where, reason))
            return
        taken[move.name, move.username] = move.where
        moves.append(move)

    for table, name, username, secret in _entries(data, skips):
        checked = _checked(name, username, secret)
        if isinstance(checked, str):
            skips.append(Skip(f"{table}.{name}", checked))
            continue
        # An http-basic entry for __token__ is a token, and Poetry asks for it as one.
        kind = "basic" if table == BASIC and checked[0] != TOKEN_USERNAME else "token"
        add(Move(table, name, checked[0], kind, _url_for(name, urls, notes), checked[1]))

    rewritten = rewrite(text, moves)
    _check_rewrite(data, rewritten, moves)
    return Plan(tuple(moves), tuple(skips), tuple(notes), rewritten)


def _parse(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PoetryFileError(f"auth.toml is not valid TOML ({exc}); nothing was changed") from None


def _entries(data: Mapping[str, Any], skips: list[Skip]) -> list[tuple[str, str, object, object]]:
    """(table, name, username, secret) of every entry that holds a secret, in file order."""
    found: list[tuple[str, str, object, object]] = []
    basic = data.get(BASIC, {})
    if not isinstance(basic, dict):
        skips.append(Skip(BASIC, "it is not a table"))
        basic = {}
    for name, entry in basic.items():
        if not isinstance(entry, dict):
            skips.append(Skip(f"{BASIC}.{name}", "it is not a table"))
        elif "password" in entry:
            found.append((BASIC, name, entry.get("username", ""), entry["password"]))
    tokens = data.get(TOKEN, {})
    if not isinstance(tokens, dict):
        skips.append(Skip(TOKEN, "it is not a table"))
        tokens = {}
    found.extend((TOKEN, name, TOKEN_USERNAME, secret) for name, secret in tokens.items())
    return found


def _checked(name: str, username: object, secret: object) -> tuple[str, str] | str:
    """(username, secret) when this entry can move, else why not (never quoting the secret)."""
    if not isinstance(secret, str):
        return f"the secret is a TOML {type(secret).__name__}, not a string"
    if not secret:
        return "the secret is empty"
    if not isinstance(username, str):
        return f"the username is a TOML {type(username).__name__}, not a string"
    if not NAME_PATTERN.fullmatch(name):
        return "the name holds characters other than letters, digits, '.', '_' and '-'"
    return username, secret


def _url_for(name: str, urls: Mapping[str, str], notes: list[str]) -> str | None:
    url = urls.get(name)
    if url is None:
        return PYPI_UPLOAD_URL if name == "pypi" else None
    try:
        return check_url(url)
    except BadRequestError as exc:  # its message never quotes the URL
        notes.append(f"the URL of repository {name!r} in config.toml is not used: {exc.message}")
        return None


# --- rewriting -----------------------------------------------------------------------------------


def rewrite(text: str, moves: Sequence[Move]) -> str:
    """auth.toml's ``text`` without the secrets of ``moves``; everything else kept as written.

    Removes each ``password`` key of a moved ``http-basic`` entry (then the entry, if nothing
    is left in it) and each moved ``pypi-token`` key (then the ``[pypi-token]`` table, if empty).
    Comments, order, usernames and ``certificates`` stay byte for byte.
    """
    if not moves:
        return text
    try:
        doc = tomlkit.parse(text)
        for move in moves:
            if move.table == BASIC:
                basic: Any = doc[BASIC]
                del basic[move.name]["password"]
                if not basic[move.name]:
                    del basic[move.name]
            else:
                tokens: Any = doc[TOKEN]
                del tokens[move.name]
        for table in (BASIC, TOKEN):
            if table in doc and not doc[table]:
                del doc[table]
        out = tomlkit.dumps(doc)
    except (TOMLKitError, KeyError, TypeError) as exc:
        raise PoetryFileError(
            f"cannot rewrite auth.toml ({type(exc).__name__}); nothing was changed"
        ) from None
    if text.endswith("\n") and not text.endswith("\n\n") and out.endswith("\n\n"):
        out = out.rstrip("\n") + "\n"  # the blank line before a removed table, at the end
    return out


def _without(data: dict[str, Any], moves: Sequence[Move]) -> dict[str, Any]:
    """What ``data`` must become: the rule of `rewrite`, applied to plain values."""
    expected = copy.deepcopy(data)
    for move in moves:
        if move.table == BASIC:
            del expected[BASIC][move.name]["password"]
            if not expected[BASIC][move.name]:
                del expected[BASIC][move.name]
        else:
            del expected[TOKEN][move.name]
    for table in (BASIC, TOKEN):
        if table in expected and not expected[table]:
            del expected[table]
    return expected


def _check_rewrite(data: dict[str, Any], rewritten: str, moves: Sequence[Move]) -> None:
    """Refuse a rewrite that means anything else than ``data`` without the moved secrets.

    tomlkit keeps the text, tomllib judges the meaning: a file that tomlkit would damage is
    left alone rather than written.
    """
    try:
        same = tomllib.loads(rewritten) == _without(data, moves)
    except tomllib.TOMLDecodeError:
        same = False
    if not same:
        raise PoetryFileError(
            "the rewritten auth.toml would differ in more than its secrets (please report this);"
            " nothing was changed"
        )
