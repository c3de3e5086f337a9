"""git-credential-helperd's protocol: parsing git's attributes, printing answers, and the
get/store/erase rules, against a fake daemon (the real one is in tests/integration)."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import helperd_client
import pytest
from helperd_client import git_credential as gc
from helperd_client.client import Credential
from helperd_client.errors import NotFoundError

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def _cred(
    name: str,
    username: str,
    password: str,
    kind: str = "basic",
    expires_at: datetime | None = None,
    *,
    urls: tuple[str, ...] = (),
) -> Credential:
    return Credential(name, username, password, kind, urls, expires_at, None, None)


class FakeDaemon:
    """Answers ``get`` from a table keyed by what is asked; records writes."""

    def __init__(self, answers: dict[tuple[str, str, str | None], Credential]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, str | None]] = []
        self.sets: list[tuple[object, ...]] = []
        self.deletes: list[tuple[str | None, str | None]] = []

    def get(
        self,
        *,
        name: str | None = None,
        url: str | None = None,
        service: str | None = None,
        username: str | None = None,
    ) -> Credential:
        kind, asked = ("name", name) if name else ("url", url) if url else ("service", service)
        key = (kind, str(asked), username)
        self.asked.append(key)
        try:
            return self.answers[key]
        except KeyError:
            raise NotFoundError("no record") from None

    def set(self, name: str | None, password: str, **kw: object) -> object:
        self.sets.append((name, password, tuple(sorted(kw.items()))))
        return None

    def delete(self, name: str | None, username: str | None = None) -> int:
        self.deletes.append((name, username))
        return 1


ATTRS = {"protocol": "https", "host": "git.example.test", "path": "org/repo.git"}
URL = "https://git.example.test/org/repo.git"


def test_parse_stops_at_blank_line_and_ignores_lists() -> None:
    """Attributes end at the first blank line; ``key[]`` lines and junk are ignored; last wins."""
    text = "protocol=https\nhost=h\ncapability[]=authtype\nnoequals\nhost=h2\npassword=a=b\n\nx=y\n"
    expected = {"protocol": "https", "host": "h2", "password": "a=b"}
    assert expected == gc.parse(io.StringIO(text))


def test_url_of_builds_the_url_and_quotes_the_path() -> None:
    """protocol://host/path, with characters a path cannot hold percent-encoded."""
    assert URL == gc.url_of(ATTRS)
    assert "http://h:8080/" == gc.url_of({"protocol": "http", "host": "h:8080"})
    spaced = {"protocol": "https", "host": "h", "path": "a b/ü?#%"}
    assert "https://h/a%20b/%C3%BC%3F%23%25" == gc.url_of(spaced)


@pytest.mark.parametrize(
    "attrs", [{"protocol": "ssh", "host": "h"}, {"protocol": "https"}, {"host": "h"}, {}]
)
def test_url_of_serves_only_http_with_a_host(attrs: dict[str, str]) -> None:
    """Other protocols (ssh, cert, smtp) and a missing host give no URL: nothing is served."""
    assert None is gc.url_of(attrs)


def test_format_answer_prints_username_password_and_expiry() -> None:
    """The answer is username, password and, for a record with an expiry, its epoch seconds."""
    assert "username=u\npassword=p w=\n" == gc.format_answer("u", "p w=", None)
    expected = f"username=u\npassword=p\npassword_expiry_utc={int(T0.timestamp())}\n"
    assert expected == gc.format_answer("u", "p", T0)


@pytest.mark.parametrize(("user", "password"), [("u", "a\nb"), ("u", "a\rb"), ("u\n", "p")])
def test_format_answer_refuses_a_newline(user: str, password: str) -> None:
    """A value with a newline (or CR, NUL) cannot be passed in git's format: print nothing."""
    assert "" == gc.format_answer(user, password, None)


@pytest.mark.parametrize(
    "host", ["evil.test@git.example.test", "h/x", "h x", "h:port", "[::1", "h:123456", ""]
)
def test_url_of_refuses_what_is_not_a_host(host: str) -> None:
    """Userinfo, a path, a space or a bad port in git's host: no URL, so nothing is asked (a
    host of ``evil.test@git.example.test`` would otherwise ask for git.example.test's record)."""
    assert gc.url_of({"protocol": "https", "host": host}) is None
    assert gc.host_port({"protocol": "https", "host": host}) is None


@pytest.mark.parametrize(
    ("protocol", "host", "expected"),
    [
        ("https", "h", ("h", 443)),
        ("http", "h", ("h", 80)),
        ("http", "127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("https", "[::1]:3141", ("[::1]", 3141)),
        ("https", "[::1]", ("[::1]", 443)),
    ],
)
def test_host_port_gives_the_default_port(
    protocol: str, host: str, expected: tuple[str, int]
) -> None:
    assert expected == gc.host_port({"protocol": protocol, "host": host})


def test_get_asks_by_url_then_by_host_and_port() -> None:
    """get asks by URL with git's username, then by ``host:port`` as a keyring service, the
    protocol's default port given, and serves a record with a URL on that host."""
    record = _cred("n", "alice", "pw", urls=("https://git.example.test/simple/",))
    daemon = FakeDaemon({("service", "git.example.test:443", "alice"): record})
    assert "username=alice\npassword=pw\n" == gc.get(daemon, {**ATTRS, "username": "alice"})
    expected = [("url", URL, "alice"), ("service", "git.example.test:443", "alice")]
    assert expected == daemon.asked


def test_get_never_asks_by_the_bare_host() -> None:
    """git's host ``acme`` is asked as ``acme:80``, which no repository name can be: the
    daemon's service rules would otherwise serve repository ``acme`` to a server named so."""
    daemon = FakeDaemon({})
    assert "" == gc.get(daemon, {"protocol": "http", "host": "acme", "path": "x.git"})
    assert [("url", "http://acme/x.git", None), ("service", "acme:80", None)] == daemon.asked


@pytest.mark.parametrize(
    "urls",
    [
        ("https://git.example.test:80/",),  # the right port, the other scheme
        ("http://other.test/",),  # another host
        ("http://git.example.test:8080/",),  # another port
        (),  # a generic entry named like the service
    ],
)
def test_get_serves_a_host_record_only_on_git_s_scheme_host_and_port(
    urls: tuple[str, ...],
) -> None:
    """Whatever the daemon's host rule finds, a record none of whose URLs has git's protocol,
    host and port is not served: a password kept for https never goes out over http."""
    record = _cred("n", "alice", "pw", urls=urls)
    services = ("git.example.test", "git.example.test:80")  # a daemon that finds it either way
    daemon = FakeDaemon({("service", service, None): record for service in services})
    assert "" == gc.get(daemon, {"protocol": "http", "host": "git.example.test", "path": "r.git"})


def test_get_prints_nothing_when_nothing_matches() -> None:
    """No record by URL nor by host: no output, so git asks the next helper or prompts."""
    assert "" == gc.get(FakeDaemon({}), ATTRS)


def test_store_does_nothing_when_helperd_already_holds_it() -> None:
    """git stores back the credential this helper served: no write (an older git drops the
    expiry, which must not clear the record's)."""
    held = _cred("acme", "alice", "pw", expires_at=T0)
    daemon = FakeDaemon({("url", URL, "alice"): held})
    gc.store(daemon, {**ATTRS, "username": "alice", "password": "pw"})
    assert [] == daemon.sets


def test_store_updates_the_record_the_url_finds() -> None:
    """A new password for a matching record replaces it, keeping its name, username and kind."""
    daemon = FakeDaemon({("url", URL, "aws"): _cred("acme", "aws", "old", kind="token")})
    gc.store(daemon, {**ATTRS, "username": "aws", "password": "new"})
    expected = [("acme", "new", (("expires_at", None), ("kind", "token"), ("username", "aws")))]
    assert expected == daemon.sets


def test_store_creates_a_record_named_after_the_host() -> None:
    """Nothing matches: a basic record ``git-HOST`` (``:`` becomes ``-``) with git's URL and
    the expiry git gave; a name already held for that username moves on to ``-2``."""
    attrs = {"protocol": "http", "host": "127.0.0.1:8080", "username": "bob", "password": "pw"}
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    attrs["password_expiry_utc"] = str(int(expiry.timestamp()))
    daemon = FakeDaemon({("name", "git-127.0.0.1-8080", "bob"): _cred("x", "bob", "other")})
    gc.store(daemon, attrs)
    fields = (
        ("expires_at", expiry),
        ("kind", "basic"),
        ("urls", ["http://127.0.0.1:8080/"]),
        ("username", "bob"),
    )
    assert [("git-127.0.0.1-8080-2", "pw", fields)] == daemon.sets


def test_store_skips_an_expired_credential() -> None:
    """A password whose expiry has passed is not kept."""
    daemon = FakeDaemon({})
    gc.store(daemon, {**ATTRS, "username": "u", "password": "p", "password_expiry_utc": "1000"})
    assert ([], []) == (daemon.asked, daemon.sets)


def test_erase_deletes_only_a_matching_basic_record() -> None:
    """erase deletes the basic record at the URL when username and password match, else
    nothing (another password, or a token record)."""
    daemon = FakeDaemon(
        {
            ("url", URL, "alice"): _cred("acme", "alice", "pw"),
            ("url", URL, "__token__"): _cred("acme", "__token__", "tok", kind="token"),
        }
    )
    gc.erase(daemon, {**ATTRS, "username": "alice", "password": "wrong"})
    gc.erase(daemon, {**ATTRS, "username": "__token__", "password": "tok"})
    gc.erase(daemon, {**ATTRS, "username": "alice"})
    assert [] == daemon.deletes
    gc.erase(daemon, {**ATTRS, "username": "alice", "password": "pw"})
    assert [("acme", "alice")] == daemon.deletes


def test_erase_never_falls_back_to_the_host() -> None:
    """erase asks by URL only: a password kept for an index on the same host stays."""
    daemon = FakeDaemon({("service", "git.example.test", "alice"): _cred("idx", "alice", "pw")})
    gc.erase(daemon, {**ATTRS, "username": "alice", "password": "pw"})
    assert ([("url", URL, "alice")], []) == (daemon.asked, daemon.deletes)


def test_unknown_action_is_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    """An action git may add later is ignored silently with status 0, as git asks of helpers."""
    assert 0 == gc.main(["later"])
    assert ("", "") == capsys.readouterr()


def test_git_credential_module_stays_light() -> None:
    """Importing the helper loads neither keyring, platformdirs, asyncio, pydantic, click nor
    helperd (``-S``: without site, whose editable-install finders load pathlib)."""
    client = Path(helperd_client.__file__).resolve().parent.parent
    code = (
        f"import sys; sys.path.insert(0, {str(client)!r}); import helperd_client.git_credential;"
        "bad = {'keyring', 'platformdirs', 'asyncio', 'pydantic', 'click', 'helperd',"
        " 'helperd_client.client', 'typing', 'pathlib'} & set(sys.modules);"
        "print(sorted(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert "[]\n" == out.stdout
