"""helperctl against the real core in-process: output, exit codes, secrets in and (never) out."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from helperd_client import Credential, Hello, RecordInfo, Status
from helperd_client.errors import (
    BadPassphraseError,
    BadRequestError,
    DaemonUnreachableError,
    ForbiddenError,
    HelperdError,
    InternalError,
    LockedError,
    NotFoundError,
    ProtocolMismatchError,
    StoreUnavailableError,
)

from helperd import __version__
from helperd.core.record import Kind, Record
from helperd.ctl import cli_input
from helperd.ctl.main import cli, main
from helperd.ctl.session import Session
from helperd.daemon.main import main as helperd_main
from tests.support.core import CoreClient

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-é-pw"
PKGS = "https://pkgs.example.test/simple/"
SOCKET = Path("/run/user/1000/helperd/helperd.sock")
UNLOCKED = Status(
    version=__version__,
    protocol=1,
    pid=4242,
    store="file",
    store_reason="no usable OS keyring",
    initialized=True,
    locked=False,
    lockable=True,
    repositories=2,
    records=3,
    idle_lock_seconds=900.0,
)
LOCKED = Status(**{**UNLOCKED.__dict__, "locked": True, "repositories": None, "records": None})
MISSING = Status(**{**LOCKED.__dict__, "initialized": False})
KEYRING = Status(**{**UNLOCKED.__dict__, "store": "keyring", "lockable": False})
COMMANDS = ["status", "init", "set", "get", "list", "rm", "lock", "unlock", "passwd"]


class FakeClient(CoreClient):
    """helperctl's daemon: the real core in-process (`tests.support.core`), its calls recorded.

    Records live in the real service's store, so ``get``, ``set``, ``rm`` and ``list`` answer by
    the daemon's own rules. ``state`` is what ``status`` answers (a snapshot to render; a locked
    one locks the store too); ``init``, ``lock``, ``unlock`` and ``passwd`` are only recorded.
    ``error``, when set, is raised by every call.
    """

    def __init__(self, state: Status = UNLOCKED, error: BaseException | None = None) -> None:
        super().__init__(clock=lambda: NOW)
        self.path = SOCKET
        self.state = state
        self.error = error
        self.daemon_version = __version__
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        if state.locked:
            self.memory.lock()

    @property
    def ops(self) -> list[str]:
        """The operations called, in order."""
        return [op for op, _ in self.calls]

    def args(self, op: str) -> dict[str, Any]:
        """The arguments of the last call of ``op``."""
        return [args for name, args in self.calls if name == op][-1]

    def add(
        self,
        name: str,
        username: str,
        password: str = SECRET,
        *,
        kind: str = "basic",
        urls: Sequence[str] = (),
        expires_at: datetime | None = None,
    ) -> None:
        """Hold a record, created and updated at NOW."""
        record = Record(
            name=name,
            username=username,
            kind=Kind(kind),
            urls=tuple(urls),
            expires_at=expires_at,
            created_at=NOW,
            updated_at=NOW,
        )
        self.hold(record, password)

    def _call(self, op: str, **args: Any) -> None:
        self.calls.append((op, args))
        if self.error is not None:
            raise self.error

    def hello(self) -> Hello:
        self._call("hello")
        return dataclasses.replace(super().hello(), version=self.daemon_version)

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
        return super().get(name=name, url=url, service=service, username=username)

    def set(  # type: ignore[override]
        self,
        name: str,
        password: str,
        *,
        username: str | None = None,
        kind: str = "basic",
        urls: list[str] | tuple[str, ...] | None = None,
        expires_at: datetime | None = None,
        upstream: bool = False,
    ) -> RecordInfo:
        self._call(
            "set",
            name=name,
            password=password,
            username=username,
            kind=kind,
            urls=urls,
            expires_at=expires_at,
            **({"upstream": True} if upstream else {}),
        )
        return super().set(
            name,
            password,
            username=username,
            kind=kind,
            urls=urls,
            expires_at=expires_at,
            upstream=upstream,
        )

    def delete(self, name: str | None, username: str | None = None, **_: Any) -> int:
        self._call("delete", name=name, username=username)
        return super().delete(name, username)

    def list(self) -> list[RecordInfo]:
        self._call("list")
        return super().list()

    def init(self, passphrase: str | None) -> None:
        self._call("init", passphrase=passphrase)

    def lock(self) -> None:
        self._call("lock")

    def unlock(self, passphrase: str | None) -> None:
        self._call("unlock", passphrase=passphrase)

    def passwd(self, old: str, new: str) -> None:
        self._call("passwd", old=old, new=new)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeClient:
    """A fake daemon with an unlocked file store holding foo (alice, with a URL)."""
    client = FakeClient()
    client.add("foo", "alice", urls=[PKGS])
    return client


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make helperctl believe stdin is a terminal (CliRunner's stdin is not one)."""
    monkeypatch.setattr(cli_input, "stdin_is_tty", lambda: True)


def run(client: FakeClient, *args: str, stdin: str | bytes | None = None) -> Result:
    """Run helperctl with ``client`` as its daemon and NOW as its clock."""
    session = Session(make_client=lambda _socket, _timeout: client, clock=lambda: NOW)
    return CliRunner().invoke(cli, list(args), input=stdin, obj=session)


def assert_no_secret(result: Result, secret: str = SECRET) -> None:
    """Neither output stream holds ``secret``."""
    assert secret not in result.stdout
    assert secret not in result.stderr


# --- status -------------------------------------------------------------------------------------


def test_status_human(fake: FakeClient) -> None:
    """`status` asks hello then status and prints version, pid, store, reason, state, count."""
    result = run(fake, "status")

    assert 0 == result.exit_code
    assert ["hello", "status"] == fake.ops
    assert f"helperd {__version__} (protocol 1, pid 4242)" in result.stdout
    assert "file (no usable OS keyring)" in result.stdout
    assert "state:        unlocked" in result.stdout
    assert "repositories: 2" in result.stdout
    assert str(SOCKET) in result.stdout
    assert_no_secret(result)


@pytest.mark.parametrize(
    ("state", "expected", "count"),
    [
        (LOCKED, "locked (`helperctl unlock`)", "unknown while locked"),
        (MISSING, "no store yet (`helperctl init`)", "none (no store yet)"),
    ],
)
def test_status_states(state: Status, expected: str, count: str) -> None:
    """A locked store points to unlock, a missing one to init; neither has a count."""
    result = run(FakeClient(state), "status")

    assert 0 == result.exit_code
    assert f"state:        {expected}" in result.stdout
    assert f"repositories: {count}" in result.stdout


def test_status_shows_the_passphrase_gate_and_key_memory() -> None:
    """A closed gate shows when a passphrase is checked again (whole seconds, rounded up);
    the key memory line says whether mlock held; --json carries the raw fields."""
    state = Status(**{**LOCKED.__dict__, "passphrase_retry_in": 3.2, "kdf_runs": 4})
    result = run(FakeClient(state), "status")
    assert "passphrase:   checked again in 4 s (too many wrong ones in a row)" in result.stdout
    assert "key memory:   not locked (mlock failed)" in result.stdout
    shown = json.loads(run(FakeClient(state), "status", "--json").stdout)
    assert (4, 3.2, False) == (
        shown["kdf_runs"],
        shown["passphrase_retry_in"],
        shown["memory_locked"],
    )


def test_status_notes_version_difference() -> None:
    """A daemon of another version than helperctl is pointed out."""
    client = FakeClient()
    client.daemon_version = "9.9.9"

    result = run(client, "status")

    assert f"this helperctl is {__version__}" in result.stdout


def test_status_json(fake: FakeClient) -> None:
    """`status --json` passes every Status field through, plus the socket."""
    result = run(fake, "status", "--json")

    assert 0 == result.exit_code
    data = json.loads(result.stdout)
    assert {**UNLOCKED.__dict__, "socket": str(SOCKET)} == data
    assert "  " in result.stdout  # indented


def test_status_json_locked() -> None:
    """While locked, `repositories` is null in JSON."""
    data = json.loads(run(FakeClient(LOCKED), "status", "--json").stdout)

    assert (True, None) == (data["locked"], data["repositories"])


def test_status_unreachable_exits_3() -> None:
    """No daemon: exit 3 and the client's message, which says how to start one."""
    error = DaemonUnreachableError(
        "helperd is not running (nothing listens): start it with `helperd &`"
    )

    result = run(FakeClient(error=error), "status")

    assert 3 == result.exit_code
    assert f"helperctl: {error.message}\n" == result.stderr
    assert "" == result.stdout


def test_protocol_mismatch_exits_1() -> None:
    """A daemon speaking another protocol is reported plainly, exit 1."""
    result = run(FakeClient(error=ProtocolMismatchError("helperd speaks v2")), "status")

    assert 1 == result.exit_code
    assert "helperctl: helperd speaks v2" in result.stderr


# --- get ----------------------------------------------------------------------------------------


def test_get_prints_password_alone(fake: FakeClient) -> None:
    """`get` prints the password and one newline, nothing else, like `keyring get`."""
    result = run(fake, "get", "foo")

    assert 0 == result.exit_code
    assert f"{SECRET}\n" == result.stdout
    assert "" == result.stderr


def test_get_keeps_escape_sequences(fake: FakeClient) -> None:
    """A password is printed verbatim, even when it holds terminal escapes."""
    fake.add("esc", "bob", "a\x1b[31mb")

    assert "a\x1b[31mb\n" == run(fake, "get", "esc").stdout


@pytest.mark.parametrize(
    ("target", "routed"),
    [
        ("foo", {"service": "foo"}),
        ("poetry-repository-foo", {"service": "poetry-repository-foo"}),
        ("pkgs.example.test:8443", {"service": "pkgs.example.test:8443"}),
        (f"{PKGS}privpkg/", {"url": f"{PKGS}privpkg/"}),
        ("http://10.0.0.1/simple/", {"url": "http://10.0.0.1/simple/"}),
    ],
)
def test_get_routes_url_or_service(fake: FakeClient, target: str, routed: dict[str, str]) -> None:
    """A TARGET with :// is asked as `url`, anything else as `service` (the daemon classifies)."""
    run(fake, "get", target)

    expected = {"name": None, "url": None, "service": None, "username": None, **routed}
    assert expected == fake.args("get")


def test_get_username(fake: FakeClient) -> None:
    """--username is passed with the lookup."""
    run(fake, "get", "foo", "--username", "alice")

    assert "alice" == fake.args("get")["username"]


def test_get_json(fake: FakeClient) -> None:
    """`get --json` prints the record, password included, with ISO times."""
    result = run(fake, "get", PKGS, "--json")

    assert 0 == result.exit_code
    assert {
        "name": "foo",
        "username": "alice",
        "password": SECRET,
        "kind": "basic",
        "urls": [PKGS],
        "expires_at": None,
        "created_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
    } == json.loads(result.stdout)


def test_get_not_found_exits_4(fake: FakeClient) -> None:
    """Nothing matches: exit 4, the daemon's message on stderr, nothing on stdout."""
    result = run(fake, "get", "nope")

    assert 4 == result.exit_code
    assert "helperctl: no record for service 'nope'\n" == result.stderr
    assert "" == result.stdout


def test_get_expired_exits_4(fake: FakeClient) -> None:
    """An expired record is not found (exit 4), and the message says it expired."""
    fake.add("old", "bob", expires_at=NOW - timedelta(days=1))

    result = run(fake, "get", "old")

    assert 4 == result.exit_code
    assert "expired" in result.stderr


# --- list ---------------------------------------------------------------------------------------


def test_list_table(fake: FakeClient) -> None:
    """`list` prints an aligned table with expiry marks and extra-URL counts, never a secret."""
    fake.add("acme", "__token__", kind="token", urls=[PKGS, "https://up.example.test/"])
    fake.add("old", "bob", expires_at=NOW - timedelta(hours=1))
    fake.add("soon", "", expires_at=NOW + timedelta(days=7))

    result = run(fake, "list")

    assert 0 == result.exit_code
    lines = result.stdout.splitlines()
    assert ["NAME", "USERNAME", "KIND", "URL", "EXPIRES"] == lines[0].split()
    assert lines[1].startswith("acme  __token__  token  https://pkgs.example.test/simple/ (+1)")
    assert "2025-06-01 11:00 UTC (expired)" in lines[3]
    assert "(none)" in lines[4]
    assert "2025-06-08 12:00 UTC" in lines[4]
    kind_at = lines[0].index("KIND")  # every row has its kind at the header's offset
    assert ["KIND", "token", "basic", "basic", "basic"] == [
        row[kind_at:].split()[0] for row in lines
    ]
    assert_no_secret(result)


def test_list_json(fake: FakeClient) -> None:
    """`list --json` prints an array of public facts: url is the first URL or null."""
    fake.add("bare", "bob", expires_at=NOW - timedelta(hours=1))

    result = run(fake, "list", "--json")

    assert 0 == result.exit_code
    assert [
        {
            "name": "bare",
            "urls": [],
            "url": None,
            "username": "bob",
            "kind": "basic",
            "expires_at": (NOW - timedelta(hours=1)).isoformat(),
            "expired": True,
            "created_at": NOW.isoformat(),
            "updated_at": NOW.isoformat(),
            "source": "local",
        },
        {
            "name": "foo",
            "urls": [PKGS],
            "url": PKGS,
            "username": "alice",
            "kind": "basic",
            "expires_at": None,
            "expired": False,
            "created_at": NOW.isoformat(),
            "updated_at": NOW.isoformat(),
            "source": "local",
        },
    ] == json.loads(result.stdout)
    assert_no_secret(result)


def test_list_redacts_userinfo() -> None:
    """A username in a stored URL's userinfo is never printed, in text or JSON."""
    client = FakeClient()
    client.add("foo", "alice", urls=["https://alice@pkgs.example.test/simple/"])

    text, data = run(client, "list"), run(client, "list", "--json")

    assert "alice@" not in text.stdout
    assert "https://pkgs.example.test/simple/" in text.stdout
    assert [PKGS] == json.loads(data.stdout)[0]["urls"]


def test_list_empty() -> None:
    """No records: nothing on stdout (scripts see an empty listing), a hint on stderr."""
    result = run(FakeClient(), "list")

    assert (0, "") == (result.exit_code, result.stdout)
    assert "helperctl set" in result.stderr
    assert [] == json.loads(run(FakeClient(), "list", "--json").stdout)


def test_list_locked_exits_5() -> None:
    """`list` on a locked store exits 5 with the daemon's message."""
    result = run(FakeClient(LOCKED), "list")

    assert 5 == result.exit_code
    assert "helperctl unlock" in result.stderr


def test_list_escapes_control_characters() -> None:
    """A name holding control characters is shown escaped, so it cannot drive the terminal."""
    client = FakeClient()
    client.add("evil\x1b]0;pwned\x07", "bob")

    result = run(client, "list")

    assert "\x1b" not in result.stdout
    assert "'evil\\x1b]0;pwned\\x07'" in result.stdout


# --- set ----------------------------------------------------------------------------------------


def test_set_from_stdin(fake: FakeClient) -> None:
    """`set --password-stdin` stores a basic record and says so on stderr, never the secret."""
    result = run(
        fake, "set", "foo", "--url", PKGS, "--username", "alice", "--password-stdin",
        stdin=SECRET,
    )  # fmt: skip

    assert 0 == result.exit_code
    assert {
        "name": "foo",
        "password": SECRET,
        "username": "alice",
        "kind": "basic",
        "urls": [PKGS],
        "expires_at": None,
    } == fake.args("set")
    assert "" == result.stdout
    assert "helperctl: " not in result.stderr
    assert "stored basic record 'foo' for username 'alice', 1 URL\n" == result.stderr
    assert_no_secret(result)


@pytest.mark.parametrize(
    ("stdin", "stored"),
    [
        ("pw", "pw"),
        ("pw\n", "pw"),
        ("pw\r\n", "pw"),
        ("pw\n\n", "pw\n"),
        ("pw\r\n\r\n", "pw\r\n"),
        ("pw\r", "pw\r"),
        ("line one\nline two\n", "line one\nline two"),
        ("  spaced  \n", "  spaced  "),
    ],
)
def test_set_strips_one_trailing_newline(fake: FakeClient, stdin: str, stored: str) -> None:
    """Exactly one trailing \\n or \\r\\n is stripped; inner newlines and spaces are kept."""
    result = run(fake, "set", "foo", "-u", "alice", "--password-stdin", stdin=stdin)

    assert 0 == result.exit_code
    assert stored == fake.args("set")["password"]


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_set_refuses_empty_password(fake: FakeClient, stdin: str) -> None:
    """An empty password on stdin is a usage error (exit 2); nothing is stored."""
    result = run(fake, "set", "foo", "-u", "alice", "--password-stdin", stdin=stdin)

    assert 2 == result.exit_code
    assert "empty" in result.stderr
    assert "set" not in fake.ops


def test_set_refuses_non_utf8_stdin(fake: FakeClient) -> None:
    """Stdin that is not UTF-8 is a usage error, and is not quoted."""
    result = run(fake, "set", "foo", "-u", "alice", "--password-stdin", stdin=b"\xffpw")

    assert 2 == result.exit_code
    assert "not UTF-8" in result.stderr
    assert "set" not in fake.ops


def test_set_without_tty_or_flag_exits_2(fake: FakeClient) -> None:
    """No terminal and no --password-stdin: exit 2 naming the flag, before any daemon call."""
    result = run(fake, "set", "foo", "-u", "alice", stdin=SECRET)

    assert 2 == result.exit_code
    assert "--password-stdin" in result.stderr
    assert [] == fake.ops


def test_set_refuses_url_with_password(
    fake: FakeClient, tty: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL with a password in it is refused before any prompt; the password is never shown."""

    def no_prompt(label: str, *, confirm: bool) -> str:
        raise AssertionError("prompted")

    monkeypatch.setattr(cli_input, "prompt_secret", no_prompt)
    url = "https://alice:hunter2@pkgs.example.test/simple/"

    result = run(fake, "set", "foo", "--url", url)

    assert 2 == result.exit_code
    assert "password" in result.stderr
    assert_no_secret(result, "hunter2")
    assert [] == fake.ops


@pytest.mark.parametrize("url", ["ftp://pkgs.example.test/", "pkgs.example.test/simple"])
def test_set_refuses_bad_url(fake: FakeClient, url: str) -> None:
    """A URL that is not http(s) with a host is refused (exit 2); nothing is stored."""
    result = run(fake, "set", "foo", "--url", url, "--password-stdin", stdin=SECRET)

    assert 2 == result.exit_code
    assert "set" not in fake.ops


def test_set_refuses_bad_name(fake: FakeClient) -> None:
    """A name outside [A-Za-z0-9._-] is a usage error before any daemon call."""
    result = run(fake, "set", "foo bar", "--password-stdin", stdin=SECRET)

    assert 2 == result.exit_code
    assert [] == fake.ops


@pytest.mark.parametrize(
    ("extra", "username"),
    [([], "__token__"), (["--username", "aws"], "aws")],
)
def test_set_token(fake: FakeClient, extra: list[str], username: str) -> None:
    """--token makes a token record whose username is __token__ unless --username says."""
    result = run(fake, "set", "pypi", "--token", *extra, "--password-stdin", stdin="pypi-AgE")

    assert 0 == result.exit_code
    assert ("token", username) == (fake.args("set")["kind"], fake.args("set")["username"])
    assert f"stored token record 'pypi' for username {username!r}\n" == result.stderr


def test_set_several_urls(fake: FakeClient) -> None:
    """--url repeats; without it, no URLs are sent (the daemon keeps a replaced record's)."""
    up = "https://up.example.test/legacy/"
    run(
        fake, "set", "foo", "-u", "alice", "--url", PKGS, "--url", up, "--password-stdin", stdin="x"
    )
    with_urls = fake.args("set")["urls"]
    run(fake, "set", "foo", "-u", "alice", "--password-stdin", stdin="x")

    assert ([PKGS, up], None) == (with_urls, fake.args("set")["urls"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12h", NOW + timedelta(hours=12)),
        ("30m", NOW + timedelta(minutes=30)),
        ("7d", NOW + timedelta(days=7)),
        ("1w", NOW + timedelta(weeks=1)),
        ("1d12h", NOW + timedelta(days=1, hours=12)),
        ("90s", NOW + timedelta(seconds=90)),
        ("2030-01-31T12:00:00", datetime(2030, 1, 31, 12, tzinfo=UTC)),
        ("2030-01-31T12:00:00Z", datetime(2030, 1, 31, 12, tzinfo=UTC)),
        ("2030-01-31T14:00:00+02:00", datetime(2030, 1, 31, 12, tzinfo=UTC)),
        ("2030-01-31", datetime(2030, 1, 31, tzinfo=UTC)),
    ],
)
def test_parse_expiry(text: str, expected: datetime) -> None:
    """ISO-8601 (naive means UTC) or a duration from now, always returned in UTC."""
    actual = cli_input.parse_expiry(text, NOW)

    assert expected == actual
    assert UTC == actual.tzinfo


def test_set_expires_at_relative(fake: FakeClient) -> None:
    """--expires-at 12h is twelve hours after the session's clock."""
    result = run(
        fake, "set", "foo", "-u", "a", "--expires-at", "12h", "--password-stdin", stdin="x"
    )

    assert 0 == result.exit_code
    assert NOW + timedelta(hours=12) == fake.args("set")["expires_at"]
    assert "expires 2025-06-02 00:00 UTC" in result.stderr


@pytest.mark.parametrize("text", ["yesterday", "2020-01-01", "0h", "12x", "99999999999w"])
def test_set_refuses_bad_expiry(fake: FakeClient, text: str) -> None:
    """An expiry that is not a time, or not in the future, is a usage error; nothing is stored."""
    result = run(fake, "set", "foo", "--expires-at", text, "--password-stdin", stdin="x")

    assert 2 == result.exit_code
    assert "--expires-at" in result.stderr
    assert [] == fake.ops


@pytest.mark.parametrize(("state", "hint"), [(LOCKED, "unlock"), (MISSING, "init")])
def test_set_needs_open_store(state: Status, hint: str) -> None:
    """A locked or missing store exits 5 before the secret is read, saying what to run."""
    client = FakeClient(state)

    result = run(client, "set", "foo", "-u", "alice", "--password-stdin", stdin=SECRET)

    assert 5 == result.exit_code
    assert f"`helperctl {hint}`" in result.stderr
    assert ["status"] == client.ops


def test_set_prompts_twice_on_tty(fake: FakeClient, tty: None) -> None:
    """On a terminal the password is asked twice with hidden input, prompts on stderr."""
    result = run(fake, "set", "foo", "-u", "alice", stdin=f"{SECRET}\n{SECRET}\n")

    assert 0 == result.exit_code
    assert SECRET == fake.args("set")["password"]
    assert "Password:" in result.stderr
    assert "Repeat password:" in result.stderr
    assert_no_secret(result)


def test_password_stdin_on_a_terminal_asks_hidden(fake: FakeClient, tty: None) -> None:
    """``--password-stdin`` with stdin on a terminal, where typing would echo the secret (and
    end only at Ctrl-D): the password is asked hidden, twice, and the user is told why."""
    result = run(fake, "set", "foo", "-u", "alice", "--password-stdin", stdin=f"{SECRET}\n" * 2)

    assert 0 == result.exit_code
    assert SECRET == fake.args("set")["password"]
    assert "stdin is a terminal: asking for the password hidden" in result.stderr
    assert "Repeat password:" in result.stderr
    assert_no_secret(result)


def test_lock_without_a_store_says_there_is_nothing_to_lock() -> None:
    client = FakeClient(dataclasses.replace(UNLOCKED, initialized=False, locked=True))
    result = run(client, "lock")
    assert (0, "") == (result.exit_code, result.stdout)
    assert "there is no store yet, so nothing to lock" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("set", "foo", "--password-stdin"),
        ("set", "foo", "--provider-command", "--", "true"),
        ("set-cert", "foo", "--client-cert", "c.pem"),
    ],
    ids=["set", "provider", "set-cert"],
)
def test_a_write_to_a_store_that_cannot_open_gives_its_reason(command: tuple[str, ...]) -> None:
    """A store the daemon cannot open (a key file open to others) is not "locked": a write is
    refused with the daemon's reason and exit 1, before any secret is read, as get's is."""
    reason = "key file /k is open to group or others (mode 0640): run `chmod 600 /k`"
    client = FakeClient(dataclasses.replace(UNLOCKED, locked=True, store_error=reason))
    result = run(client, *command, stdin="pw\n")

    assert 1 == result.exit_code, result.output
    assert f"helperctl: the store cannot be opened: {reason}\n" == result.stderr
    assert ["status"] == client.ops


def test_set_prompt_mismatch_asks_again(fake: FakeClient, tty: None) -> None:
    """Two different entries are refused and asked again."""
    result = run(fake, "set", "foo", "-u", "alice", stdin="one\ntwo\npw\npw\n")

    assert 0 == result.exit_code
    assert "pw" == fake.args("set")["password"]
    assert "differ" in result.stderr


def test_set_prompt_empty_asks_again(fake: FakeClient, tty: None) -> None:
    """An empty entry is refused and asked again."""
    result = run(fake, "set", "foo", "-u", "alice", stdin="\npw\npw\n")

    assert 0 == result.exit_code
    assert "pw" == fake.args("set")["password"]
    assert "empty password is refused" in result.stderr


def test_set_prompt_gives_up(fake: FakeClient, tty: None) -> None:
    """After three failed tries helperctl gives up with exit 1 and stores nothing."""
    result = run(fake, "set", "foo", "-u", "alice", stdin="a\nb\nc\nd\ne\nf\n")

    assert 1 == result.exit_code
    assert "no password accepted after 3 tries" in result.stderr
    assert "set" not in fake.ops


def test_prompt_at_end_of_input_exits_1(fake: FakeClient, tty: None) -> None:
    """Stdin ending at the prompt is an error (exit 1), not a crash."""
    result = run(fake, "set", "foo", "-u", "alice", stdin="")

    assert 1 == result.exit_code
    assert "helperctl: stdin ended" in result.stderr


def test_interrupt_exits_130(fake: FakeClient, tty: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C at a prompt ends helperctl with 130 and stores nothing."""

    def interrupted(label: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_input, "_hidden", interrupted)

    result = run(fake, "set", "foo", "-u", "alice")

    assert 130 == result.exit_code
    assert "helperctl: interrupted\n" == result.stderr
    assert "set" not in fake.ops


def test_ctrl_c_in_click_prompt_exits_130(
    fake: FakeClient, tty: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside click.prompt, which turns it into Abort as click does, also exits 130."""

    def prompt(*args: object, **kwargs: object) -> str:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.Abort from None  # what click.prompt does on Ctrl-C

    monkeypatch.setattr(click, "prompt", prompt)

    result = run(FakeClient(LOCKED), "unlock")

    assert 130 == result.exit_code
    assert "helperctl: interrupted\n" == result.stderr


# --- rm, lock -----------------------------------------------------------------------------------


def test_rm_counts(fake: FakeClient) -> None:
    """`rm NAME` deletes every record of NAME and says how many, never a secret."""
    fake.add("foo", "__token__", kind="token")

    result = run(fake, "rm", "foo")

    assert 0 == result.exit_code
    assert {"name": "foo", "username": None} == fake.args("delete")
    assert "removed 2 records of 'foo'\n" == result.stderr
    assert_no_secret(result)


def test_rm_username(fake: FakeClient) -> None:
    """`rm NAME --username USER` deletes that record only."""
    result = run(fake, "rm", "foo", "--username", "alice")

    assert {"name": "foo", "username": "alice"} == fake.args("delete")
    assert "removed 1 record of 'foo'\n" == result.stderr


def test_rm_not_found_exits_4(fake: FakeClient) -> None:
    """Nothing to delete: exit 4."""
    assert 4 == run(fake, "rm", "nope").exit_code


def test_lock() -> None:
    """`lock` asks the daemon to lock, then says how to unlock."""
    client = FakeClient(LOCKED)  # what status answers after the lock

    result = run(client, "lock")

    assert (0, ["lock", "status"]) == (result.exit_code, client.ops)
    assert "locked: `helperctl unlock` opens the store again\n" == result.stderr


def test_lock_store_without_passphrase() -> None:
    """A store without a passphrase stays open after `lock`, and helperctl says so."""
    client = FakeClient(KEYRING)

    result = run(client, "lock")

    assert 0 == result.exit_code
    assert "the keyring store has no passphrase: it stays open\n" == result.stderr


# --- unlock, init, passwd -----------------------------------------------------------------------


def test_unlock_from_stdin() -> None:
    """`unlock --passphrase-stdin` sends stdin less one trailing newline."""
    client = FakeClient(LOCKED)

    result = run(client, "unlock", "--passphrase-stdin", stdin="pass phrase\n")

    assert 0 == result.exit_code
    assert {"passphrase": "pass phrase"} == client.args("unlock")


def test_unlock_prompts_once(tty: None) -> None:
    """On a terminal, `unlock` asks once."""
    client = FakeClient(LOCKED)

    result = run(client, "unlock", stdin="pp\n")

    assert 0 == result.exit_code
    assert {"passphrase": "pp"} == client.args("unlock")
    assert "Repeat" not in result.stderr


def test_unlock_without_tty_or_flag_exits_2() -> None:
    """No terminal and no --passphrase-stdin: exit 2 naming the flag."""
    client = FakeClient(LOCKED)

    result = run(client, "unlock", stdin="pp\n")

    assert 2 == result.exit_code
    assert "--passphrase-stdin" in result.stderr
    assert "unlock" not in client.ops


def test_unlock_bad_passphrase_exits_5() -> None:
    """A wrong passphrase exits 5 with the daemon's message."""
    client = FakeClient(LOCKED)
    client.unlock = lambda passphrase: (_ for _ in ()).throw(  # type: ignore[method-assign]
        BadPassphraseError("wrong passphrase")
    )

    result = run(client, "unlock", "--passphrase-stdin", stdin="nope")

    assert 5 == result.exit_code
    assert "helperctl: wrong passphrase\n" == result.stderr


def test_unlock_missing_store_exits_5() -> None:
    """`unlock` never creates a store: with none, exit 5 pointing to init, without asking."""
    client = FakeClient(MISSING)

    result = run(client, "unlock", "--passphrase-stdin", stdin="pp")

    assert 5 == result.exit_code
    assert "`helperctl init`" in result.stderr
    assert ["status"] == client.ops


def test_unlock_store_without_passphrase() -> None:
    """A keyring store has no passphrase: `unlock` asks for none and says so."""
    client = FakeClient(KEYRING)

    result = run(client, "unlock")

    assert 0 == result.exit_code
    assert {"passphrase": None} == client.args("unlock")
    assert "no passphrase" in result.stderr


def test_init_from_stdin() -> None:
    """`init --passphrase-stdin` creates the store with stdin's passphrase."""
    client = FakeClient(MISSING)

    result = run(client, "init", "--passphrase-stdin", stdin="pp\n")

    assert 0 == result.exit_code
    assert {"passphrase": "pp"} == client.args("init")
    assert "created" in result.stderr
    assert_no_secret(result, "pp\n")


def test_init_prompts_twice(tty: None) -> None:
    """On a terminal, `init` asks twice."""
    client = FakeClient(MISSING)

    result = run(client, "init", stdin="pp\npp\n")

    assert 0 == result.exit_code
    assert {"passphrase": "pp"} == client.args("init")
    assert "Repeat passphrase:" in result.stderr


def test_init_without_tty_or_flag_exits_2() -> None:
    """No terminal and no --passphrase-stdin: exit 2 telling to use the flag."""
    client = FakeClient(MISSING)

    result = run(client, "init", stdin="pp\n")

    assert 2 == result.exit_code
    assert "--passphrase-stdin" in result.stderr
    assert "init" not in client.ops


def test_init_refuses_existing_store(fake: FakeClient) -> None:
    """`init` refuses (exit 2) when a store exists, before asking for anything."""
    result = run(fake, "init", "--passphrase-stdin", stdin="pp")

    assert 2 == result.exit_code
    assert "exists already" in result.stderr
    assert ["status"] == fake.ops


def test_passwd_from_stdin(fake: FakeClient) -> None:
    """`passwd --passphrase-stdin` reads two lines: the current passphrase, then the new one."""
    result = run(fake, "passwd", "--passphrase-stdin", stdin="old one\r\nnew one\r\n")

    assert 0 == result.exit_code
    assert {"old": "old one", "new": "new one"} == fake.args("passwd")
    assert_no_secret(result, "new one")


@pytest.mark.parametrize("stdin", ["only\n", "a\nb\nc\n", "\nnew\n", "old\n\n"])
def test_passwd_needs_two_lines(fake: FakeClient, stdin: str) -> None:
    """Stdin without exactly two non-empty lines is a usage error; nothing changes."""
    result = run(fake, "passwd", "--passphrase-stdin", stdin=stdin)

    assert 2 == result.exit_code
    assert "passwd" not in fake.ops


def test_passwd_prompts(fake: FakeClient, tty: None) -> None:
    """On a terminal, `passwd` asks the current passphrase once and the new one twice."""
    result = run(fake, "passwd", stdin="old\nnew\nnew\n")

    assert 0 == result.exit_code
    assert {"old": "old", "new": "new"} == fake.args("passwd")
    assert 1 == result.stderr.count("Current passphrase:")
    assert 1 == result.stderr.count("Repeat new passphrase:")


def test_passwd_without_tty_or_flag_exits_2(fake: FakeClient) -> None:
    """No terminal and no --passphrase-stdin: exit 2 before any daemon call."""
    result = run(fake, "passwd", stdin="a\nb\n")

    assert 2 == result.exit_code
    assert [] == fake.ops


def test_passwd_store_without_passphrase_exits_2() -> None:
    """A keyring store has no passphrase to change."""
    result = run(FakeClient(KEYRING), "passwd", "--passphrase-stdin", stdin="a\nb\n")

    assert 2 == result.exit_code
    assert "keyring store has no passphrase" in result.stderr


# --- errors, options, help, entry point ---------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadRequestError("bad"), 2),
        (DaemonUnreachableError("down"), 3),
        (NotFoundError("none"), 4),
        (LockedError("locked"), 5),
        (BadPassphraseError("wrong"), 5),
        (ForbiddenError("forbidden"), 1),
        (StoreUnavailableError("damaged"), 1),
        (InternalError("bug"), 1),
        (HelperdError("odd"), 1),
    ],
)
@pytest.mark.parametrize("command", [["list"], ["get", "foo"], ["rm", "foo"], ["lock"]])
def test_error_exit_codes(error: HelperdError, code: int, command: list[str]) -> None:
    """Each error ends the command with its exit code and `helperctl: <message>` on stderr."""
    result = run(FakeClient(error=error), *command)

    assert code == result.exit_code
    assert f"helperctl: {error.message}\n" == result.stderr
    assert "" == result.stdout


def test_usage_error_exits_2(fake: FakeClient) -> None:
    """An unknown option is a usage error: exit 2."""
    assert 2 == run(fake, "list", "--nope").exit_code


def test_no_secret_option(fake: FakeClient) -> None:
    """There is no option to pass a secret on the command line."""
    for option in ("--password", "--passphrase", "--token=x"):
        assert 2 == run(fake, "set", "foo", option, "x").exit_code


def test_socket_and_timeout_reach_the_client(fake: FakeClient) -> None:
    """--socket and --timeout are what the client is built with; it is closed at the end."""
    seen: list[tuple[Path | None, float | None]] = []

    def make(socket: Path | None, timeout: float | None) -> FakeClient:
        seen.append((socket, timeout))
        return fake

    args = ["--socket", "/tmp/x.sock", "--timeout", "0.5", "lock"]
    result = CliRunner().invoke(cli, args, obj=Session(make_client=make))

    assert 0 == result.exit_code
    assert [(Path("/tmp/x.sock"), 0.5)] == seen
    assert fake.closed


def test_defaults_leave_socket_and_timeout_to_client(fake: FakeClient) -> None:
    """Without options the client applies its own socket rule and timeout."""
    seen: list[tuple[Path | None, float | None]] = []

    def make(socket: Path | None, timeout: float | None) -> FakeClient:
        seen.append((socket, timeout))
        return fake

    CliRunner().invoke(cli, ["lock"], obj=Session(make_client=make))

    assert [(None, None)] == seen


@pytest.mark.parametrize("timeout", ["0", "-1", "soon"])
def test_bad_timeout_exits_2(fake: FakeClient, timeout: str) -> None:
    """--timeout must be a positive number."""
    assert 2 == run(fake, "--timeout", timeout, "lock").exit_code


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help(command: list[str]) -> None:
    """--help of the group and of every command exits 0 and shows examples."""
    result = CliRunner().invoke(cli, [*command, "--help"])

    assert 0 == result.exit_code
    assert "Examples:" in result.stdout
    assert "helperctl " in result.stdout.split("Examples:")[1]


def test_main_entry_point(fake: FakeClient, capsys: pytest.CaptureFixture[str]) -> None:
    """`main` (the console script) runs a command and exits with its status."""
    with pytest.raises(SystemExit) as exit_info:
        main(["get", "foo"], obj=Session(make_client=lambda _s, _t: fake))

    assert 0 == exit_info.value.code
    assert f"{SECRET}\n" == capsys.readouterr().out


def test_version(fake: FakeClient) -> None:
    """--version prints helperctl's version."""
    assert f"helperctl, version {__version__}\n" == run(fake, "--version").stdout


def test_import_is_light() -> None:
    """Importing helperd.ctl.main loads neither pydantic nor asyncio: helperctl starts fast."""
    code = (
        "import sys, helperd.ctl.main; "
        "print(sorted(m for m in ('pydantic', 'asyncio', 'cryptography') if m in sys.modules))"
    )

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert "[]\n" == out


# --- -h ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], *([name] for name in sorted(cli.commands))])
def test_dash_h_shows_help(command: list[str]) -> None:
    """-h works like --help for helperctl and every subcommand: usage on stdout, exit 0,
    the daemon never asked."""
    result = CliRunner().invoke(cli, [*command, "-h"])

    assert 0 == result.exit_code, result.output
    assert result.stdout.startswith(f"Usage: {' '.join(['cli', *command])} ")
    assert result.stdout == CliRunner().invoke(cli, [*command, "--help"]).stdout


def test_helperd_dash_h_shows_help() -> None:
    """``helperd -h`` shows the daemon's help and exits 0, without starting a daemon."""
    result = CliRunner().invoke(helperd_main, ["-h"])

    assert 0 == result.exit_code, result.output
    assert "--socket" in result.stdout


@pytest.mark.parametrize("option", ["--timeout", "--socket"])
def test_an_own_option_after_the_command_says_where_it_goes(option: str) -> None:
    """``helperctl get acme --timeout 3``: exit 2, and the message says to put it first."""
    result = run(FakeClient(UNLOCKED), "get", "acme", option, "3")
    assert 2 == result.exit_code
    assert f"give it before the command, as in `helperctl {option} VALUE get ...`" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("seconds", "shown"), [(900.0, "15 min"), (5.0, "5 s"), (90.0, "1.5 min"), (100.0, "1.7 min")]
)
def test_status_shows_the_auto_lock_in_words(seconds: float, shown: str) -> None:
    """A short idle lock shows in seconds, not as 0.0833333 min."""
    state = dataclasses.replace(UNLOCKED, lockable=True, idle_lock_seconds=seconds)
    result = run(FakeClient(state), "status")
    assert f"auto-lock:    after {shown} without use" in result.stdout
