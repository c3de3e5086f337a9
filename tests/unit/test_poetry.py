"""integrations.poetry and ctl.poetry_store: Poetry's files, the plan, the rewrite, storing."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from helperd_client import Credential, Hello, RecordInfo, Status
from helperd_client.errors import HelperdError, StoreUnavailableError

from helperd.core.record import Kind, Record
from helperd.ctl.poetry_store import store_and_verify
from helperd.integrations import poetry
from helperd.integrations.poetry import Move, PoetryFileError, Skip
from tests.support.core import CoreClient

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ACME_URL = "https://pkgs.acme.test/simple/"
SECRETS = ("acme-s3cret", "staging-pw", "pypi-AgEIcHlwaS5vcmc")
SAMPLE = """\
# Poetry credentials (hand-edited, keep this note)
[http-basic.acme]  # the company index
username = "alice"
password = "acme-s3cret"  # rotated monthly

[certificates.acme]
cert = "/etc/ssl/acme-ca.pem"
client-cert = "/home/alice/.certs/acme.pem"

# staging mirror
[http-basic.my-repo]
password = "staging-pw"
username = "bob"

[pypi-token]
# upload tokens
pypi = "pypi-AgEIcHlwaS5vcmc"
"""
REWRITTEN = """\
# Poetry credentials (hand-edited, keep this note)
[http-basic.acme]  # the company index
username = "alice"

[certificates.acme]
cert = "/etc/ssl/acme-ca.pem"
client-cert = "/home/alice/.certs/acme.pem"

# staging mirror
[http-basic.my-repo]
username = "bob"
"""
UNLOCKED = Status(
    version="0.1.0",
    protocol=1,
    pid=4242,
    store="file",
    store_reason="key file",
    initialized=True,
    locked=False,
    lockable=True,
    repositories=0,
    records=0,
    idle_lock_seconds=None,
)


class FakeDaemon(CoreClient):
    """The daemon import-poetry and exec talk to: the real core in-process, its calls recorded.

    Records live in the real service's store, so ``get``, ``set`` and ``list`` answer by the
    daemon's own rules. ``state`` is what ``status`` answers (a locked one locks the store too);
    ``errors`` maps an op to the error it raises instead; ``garble`` makes ``get`` answer a
    secret other than the one stored (a store that lost a write).
    """

    def __init__(self, state: Status = UNLOCKED) -> None:
        super().__init__(clock=lambda: NOW + timedelta(seconds=self._tick))
        self.path = Path("/run/user/1000/helperd/helperd.sock")
        self.state = state
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: dict[str, HelperdError] = {}
        self.garble = False
        self.closed = False
        self._tick = 0
        if state.locked:
            self.memory.lock()

    @property
    def ops(self) -> list[str]:
        """The operations called, in order."""
        return [op for op, _ in self.calls]

    @property
    def records(self) -> dict[tuple[str, str], tuple[RecordInfo, str]]:
        """Every record the store holds, with its password, as of NOW."""
        return {
            key: (
                RecordInfo(
                    r.name,
                    r.username,
                    r.kind.value,
                    r.urls,
                    r.expires_at,
                    r.expired(NOW),
                    r.created_at,
                    r.updated_at,
                ),
                pw.get_secret_value(),
            )
            for key, (r, pw) in self.memory.data.items()
        }

    def _call(self, op: str, **args: Any) -> None:
        self.calls.append((op, args))
        if op in self.errors:
            raise self.errors[op]

    def hold(  # type: ignore[override]
        self,
        name: str,
        username: str,
        password: str,
        *,
        kind: str = "basic",
        urls: Sequence[str] = (),
        expired: bool = False,
    ) -> None:
        """Store a record, each one newer than the one before (an expired one too)."""
        self._tick += 1
        when = NOW + timedelta(seconds=self._tick)
        expires = NOW - timedelta(days=1) if expired else None
        record = Record(
            name=name,
            username=username,
            kind=Kind(kind),
            urls=tuple(urls),
            expires_at=expires,
            created_at=when,
            updated_at=when,
        )
        super().hold(record, password)

    def hello(self) -> Hello:
        self._call("hello")
        return super().hello()

    def status(self) -> Status:
        self._call("status")
        return self.state

    def get(
        self,
        *,
        name: str | None = None,
        url: str | None = None,
        service: str | None = None,
        username: str | None = None,
    ) -> Credential:
        self._call("get", name=name, url=url, service=service, username=username)
        found = super().get(name=name, url=url, service=service, username=username)
        if self.garble:
            return dataclasses.replace(found, password=found.password + "-garbled")
        return found

    def set(  # type: ignore[override]
        self,
        name: str,
        password: str,
        *,
        username: str | None = None,
        kind: str = "basic",
        urls: list[str] | tuple[str, ...] | None = None,
        expires_at: datetime | None = None,
    ) -> RecordInfo:
        self._call("set", name=name, username=username, kind=kind, urls=urls)
        self._tick += 1
        return super().set(
            name, password, username=username, kind=kind, urls=urls, expires_at=expires_at
        )

    def delete(self, name: str | None, username: str | None = None, **_: Any) -> int:
        self._call("delete", name=name, username=username)
        return 0

    def list(self) -> list[RecordInfo]:
        self._call("list")
        return super().list()

    def init(self, passphrase: str | None) -> None:
        self._call("init")

    def lock(self) -> None:
        self._call("lock")

    def unlock(self, passphrase: str | None) -> None:
        self._call("unlock")

    def passwd(self, old: str, new: str) -> None:
        self._call("passwd")

    def migrate(self, to: str, passphrase: str | None = None) -> tuple[int, str]:
        self._call("migrate", to=to)
        return 0, to

    def close(self) -> None:
        self.closed = True


def held(daemon: FakeDaemon) -> dict[tuple[str, str], tuple[str, str, tuple[str, ...]]]:
    """(name, username) -> (kind, password, urls) of every record."""
    return {k: (info.kind, pw, info.urls) for k, (info, pw) in daemon.records.items()}


# --- where the files are --------------------------------------------------------------------------


def test_config_dir_from_env() -> None:
    """$POETRY_CONFIG_DIR names Poetry's config folder, auth.toml inside it."""
    env = {"POETRY_CONFIG_DIR": "/srv/poetry"}

    assert Path("/srv/poetry") == poetry.config_dir(env)
    assert Path("/srv/poetry/auth.toml") == poetry.auth_toml_path(env)


def test_config_dir_default_is_poetrys() -> None:
    """Without it (or when empty), it is platformdirs' folder as Poetry asks for it."""
    expected = platformdirs.user_config_path("pypoetry", appauthor=False, roaming=True)

    assert expected == poetry.config_dir({"POETRY_CONFIG_DIR": ""})
    assert expected / "auth.toml" == poetry.auth_toml_path({})


def test_repository_urls() -> None:
    """[repositories.NAME] url is read; entries without a string URL are left out."""
    text = """\
[repositories.acme]
url = "https://pkgs.acme.test/simple/"
[repositories.nourl]
priority = "primary"
[repositories.odd]
url = 3
[virtualenvs]
in-project = true
"""
    assert {"acme": ACME_URL} == poetry.repository_urls(text)
    assert {} == poetry.repository_urls("[virtualenvs]\nin-project = true\n")


def test_read_repository_urls_missing_and_broken(tmp_path: Path) -> None:
    """No config.toml means no URLs; a broken one is an error that changes nothing."""
    assert {} == poetry.read_repository_urls(tmp_path / "config.toml")

    (tmp_path / "config.toml").write_text("[repositories\n")
    with pytest.raises(PoetryFileError, match="not valid TOML"):
        poetry.read_repository_urls(tmp_path / "config.toml")


def test_read_auth(tmp_path: Path) -> None:
    """A missing auth.toml is None; a symlink is followed; non-UTF-8 is refused."""
    assert poetry.read_auth(tmp_path / "auth.toml") is None

    real = tmp_path / "real.toml"
    real.write_text(SAMPLE)
    (tmp_path / "auth.toml").symlink_to(real)
    auth = poetry.read_auth(tmp_path / "auth.toml")
    assert auth is not None
    assert (tmp_path / "auth.toml", real, SAMPLE) == (auth.path, auth.real, auth.text)
    assert "acme-s3cret" not in repr(auth)

    real.write_bytes(b"password = '\xff'\n")
    with pytest.raises(PoetryFileError, match="not UTF-8"):
        poetry.read_auth(real)


# --- planning and rewriting -----------------------------------------------------------------------


def test_plan_of_sample() -> None:
    """Two http-basic entries and one pypi-token move, with the URLs that are known."""
    plan = poetry.plan_import(SAMPLE, {"acme": ACME_URL})

    assert [
        ("http-basic.acme", "acme", "alice", "basic", ACME_URL, "acme-s3cret"),
        ("http-basic.my-repo", "my-repo", "bob", "basic", None, "staging-pw"),
        ("pypi-token.pypi", "pypi", "__token__", "token", poetry.PYPI_UPLOAD_URL, SECRETS[2]),
    ] == [(m.where, m.name, m.username, m.kind, m.url, m.password) for m in plan.moves]
    assert ((), ()) == (plan.skips, plan.notes)
    assert all(secret not in repr(plan) for secret in SECRETS)


def test_rewrite_keeps_everything_but_the_secrets() -> None:
    """Comments, order, usernames and certificates stay byte for byte; no secret remains."""
    plan = poetry.plan_import(SAMPLE, {})

    assert REWRITTEN == plan.rewritten
    assert all(secret not in plan.rewritten for secret in SECRETS)
    assert "password" not in plan.rewritten


def test_rewrite_without_moves_is_identity() -> None:
    """Nothing to move: the text comes back unchanged."""
    assert SAMPLE == poetry.rewrite(SAMPLE, [])


def test_skipped_entries_stay_in_the_file() -> None:
    """Empty, non-string and oddly named secrets are reported, never quoted, and kept."""
    text = """\
[http-basic.empty]
username = "u"
password = ""
[http-basic.number]
username = "u"
password = 1234
[http-basic.baduser]
username = 7
password = "pw-baduser"
[http-basic."has space"]
password = "pw-space"
[http-basic.nopw]
username = "carol"
[pypi-token]
gone = "tok-gone"
empty = ""
"""
    plan = poetry.plan_import(text, {})

    assert [
        Skip("http-basic.empty", "the secret is empty"),
        Skip("http-basic.number", "the secret is a TOML int, not a string"),
        Skip("http-basic.baduser", "the username is a TOML int, not a string"),
        Skip(
            "http-basic.has space",
            "the name holds characters other than letters, digits, '.', '_' and '-'",
        ),
        Skip("pypi-token.empty", "the secret is empty"),
    ] == list(plan.skips)
    assert ["pypi-token.gone"] == [m.where for m in plan.moves]
    assert text.replace('gone = "tok-gone"\n', "") == plan.rewritten
    assert all(s not in repr(plan.skips) for s in ("pw-baduser", "pw-space", "1234"))


def test_token_username_in_http_basic_is_a_token() -> None:
    """http-basic with username __token__ becomes a token record; a second one for the same
    (name, username) is left in the file."""
    text = '[http-basic.pypi]\nusername = "__token__"\npassword = "t1"\n[pypi-token]\npypi = "t2"\n'

    plan = poetry.plan_import(text, {})

    assert [("http-basic.pypi", "token")] == [(m.where, m.kind) for m in plan.moves]
    assert [
        Skip("pypi-token.pypi", "http-basic.pypi moves the same (name, username) already")
    ] == list(plan.skips)
    assert '[http-basic.pypi]\nusername = "__token__"\n[pypi-token]\npypi = "t2"\n' == (
        plan.rewritten
    )


def test_entry_with_only_a_password_goes_entirely() -> None:
    """An http-basic table left empty is removed, and so is an emptied http-basic."""
    text = '[http-basic.solo]\npassword = "pw"\n\n[certificates.solo]\ncert = "/c.pem"\n'

    plan = poetry.plan_import(text, {})

    assert ("", "basic") == (plan.moves[0].username, plan.moves[0].kind)
    assert '[certificates.solo]\ncert = "/c.pem"\n' == plan.rewritten


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'http-basic.foo.username = "a"\nhttp-basic.foo.password = "pw"\npypi-token.x = "t"\n',
            'http-basic.foo.username = "a"\n',
        ),
        (
            '[http-basic]\nfoo = { username = "a", password = "pw" }\n',
            '[http-basic]\nfoo = { username = "a"  }\n',
        ),
        ('pypi-token = { x = "t", y = "" }\n', 'pypi-token = {  y = "" }\n'),
    ],
    ids=["dotted-keys", "inline-table", "inline-tokens"],
)
def test_other_toml_shapes(text: str, expected: str) -> None:
    """Dotted keys and inline tables are rewritten too, their secrets gone."""
    plan = poetry.plan_import(text, {})

    assert expected == plan.rewritten
    assert "pw" not in plan.rewritten
    assert '"t"' not in plan.rewritten


def test_invalid_auth_toml() -> None:
    """auth.toml that is not TOML is an error, with no secret in its message."""
    with pytest.raises(PoetryFileError, match="not valid TOML") as info:
        poetry.plan_import('[http-basic.a]\npassword = "pw-x\n', {})

    assert "pw-x" not in info.value.message


def test_unsafe_rewrite_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rewrite that would change anything else than the secrets is never used."""
    monkeypatch.setattr(poetry, "rewrite", lambda text, moves: REWRITTEN + "extra = 1\n")

    with pytest.raises(PoetryFileError, match="differ in more than its secrets"):
        poetry.plan_import(SAMPLE, {})


def test_url_with_password_is_not_used() -> None:
    """A config.toml URL carrying a password is left out, with a note that does not quote it."""
    plan = poetry.plan_import(SAMPLE, {"acme": "https://u:url-pw@pkgs.acme.test/simple/"})

    assert plan.moves[0].url is None
    assert 1 == len(plan.notes)
    assert "'acme'" in plan.notes[0]
    assert "url-pw" not in plan.notes[0]


# --- storing and writing --------------------------------------------------------------------------


def test_store_and_verify_new_records() -> None:
    """Every move is set, then read back; new records get config.toml's URL."""
    daemon = FakeDaemon()
    plan = poetry.plan_import(SAMPLE, {"acme": ACME_URL})

    stored = store_and_verify(daemon, plan.moves)

    assert ["new", "new", "new"] == [s.outcome for s in stored]
    assert {
        ("acme", "alice"): ("basic", "acme-s3cret", (ACME_URL,)),
        ("my-repo", "bob"): ("basic", "staging-pw", ()),
        ("pypi", "__token__"): ("token", SECRETS[2], (poetry.PYPI_UPLOAD_URL,)),
    } == held(daemon)
    assert ["get", "set"] * 3 + ["get"] * 3 == daemon.ops


def test_store_and_verify_existing_records() -> None:
    """A held record is replaced (or found the same), its URLs kept and config.toml's added."""
    daemon = FakeDaemon()
    daemon.hold("acme", "alice", "old-pw", urls=["https://upload.acme.test/"])
    daemon.hold("my-repo", "bob", "staging-pw", urls=["https://staging.test/simple/"])
    plan = poetry.plan_import(SAMPLE, {"acme": ACME_URL})

    stored = store_and_verify(daemon, plan.moves)

    assert ["replaced", "same", "new"] == [s.outcome for s in stored]
    assert ("basic", "acme-s3cret", ("https://upload.acme.test/", ACME_URL)) == held(daemon)[
        "acme", "alice"
    ]
    assert ("basic", "staging-pw", ("https://staging.test/simple/",)) == held(daemon)[
        "my-repo", "bob"
    ]


def test_a_url_held_with_a_trailing_slash_is_not_added_again() -> None:
    """config.toml's ``.../simple`` is the URL a record holds as ``.../simple/`` (lookups ignore
    the trailing slash), so the record keeps its one URL."""
    daemon = FakeDaemon()
    daemon.hold("acme", "alice", "old-pw", urls=[ACME_URL])
    plan = poetry.plan_import(SAMPLE, {"acme": ACME_URL.rstrip("/")})

    store_and_verify(daemon, plan.moves)

    assert (ACME_URL,) == held(daemon)["acme", "alice"][2]


def test_store_and_verify_detects_a_lost_write() -> None:
    """A secret read back that differs fails the import, without quoting either secret."""
    daemon = FakeDaemon()
    daemon.garble = True
    plan = poetry.plan_import(SAMPLE, {})

    with pytest.raises(StoreUnavailableError, match=r"http-basic\.acme") as info:
        store_and_verify(daemon, plan.moves)

    assert all(secret not in info.value.message for secret in SECRETS)


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_write_back(tmp_path: Path, mode: int) -> None:
    """auth.toml is replaced with the new text, keeping its mode whatever the umask, with no
    temporary file left behind."""
    path = tmp_path / "auth.toml"
    path.write_text(SAMPLE)
    os.chmod(path, mode)
    auth = poetry.read_auth(path)
    assert auth is not None
    old = os.umask(0o077)
    try:
        poetry.write_back(auth, REWRITTEN)
    finally:
        os.umask(old)

    assert REWRITTEN == path.read_text()
    assert mode == stat.S_IMODE(path.stat().st_mode)
    assert ["auth.toml"] == sorted(p.name for p in tmp_path.iterdir())


def test_write_back_through_symlink(tmp_path: Path) -> None:
    """Through a symlink, the file behind it is rewritten and the link stays."""
    real = tmp_path / "real.toml"
    real.write_text(SAMPLE)
    link = tmp_path / "auth.toml"
    link.symlink_to(real)
    auth = poetry.read_auth(link)
    assert auth is not None

    poetry.write_back(auth, REWRITTEN)

    assert (True, REWRITTEN) == (link.is_symlink(), real.read_text())


def test_write_back_refuses_a_changed_file(tmp_path: Path) -> None:
    """A file that changed since it was read is left as it is now."""
    path = tmp_path / "auth.toml"
    path.write_text(SAMPLE)
    auth = poetry.read_auth(path)
    assert auth is not None
    path.write_text(SAMPLE + '[http-basic.new]\npassword = "x"\n')

    with pytest.raises(PoetryFileError, match="changed while importing"):
        poetry.write_back(auth, REWRITTEN)

    assert SAMPLE + '[http-basic.new]\npassword = "x"\n' == path.read_text()


def test_move_repr_hides_the_secret() -> None:
    """A Move's repr never shows its password."""
    move = Move("http-basic", "acme", "alice", "basic", None, "acme-s3cret")

    assert "acme-s3cret" not in repr(move)
