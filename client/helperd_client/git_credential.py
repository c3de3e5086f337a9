"""``git-credential-helperd``: git's credential helper, served from helperd's records.

git runs ``git-credential-helperd get|store|erase`` (``credential.helper = helperd``) and
writes ``key=value`` lines on its stdin (docs/git.md; git's "gitcredentials" manual):

* ``get``   -> ``username=``, ``password=`` (and ``password_expiry_utc=`` for a record with an
  expiry) on stdout, from the record the URL ``protocol://host/path`` finds, else the one
  ``host:port`` finds (docs/lookup.md) when one of its URLs has git's protocol, host and port:
  the port is always given (the protocol's default when git gives none), so that git's host is
  never read as a repository's name, and a record kept for https is never sent over http;
* ``store`` -> updates the record that URL finds for git's username, else creates a basic
  record named after the host (``git-github.com``) with the URL ``protocol://host[/path]``;
* ``erase`` -> deletes the basic record that URL finds only when its username and password
  are the ones git rejected.

Only ``http`` and ``https`` are served (helperd's records hold only such URLs). When nothing
matches, the daemon is down (and cannot be started) or the store is locked, the helper
prints nothing on stdout and exits 0, so that git goes on to its next helper or prompts; a
locked store, a failed start and daemon errors are explained on stderr. A socket that is not
the user's own (`helperd_client.trust`) is refused before a byte is sent: the reason goes to
stderr, nothing to stdout, exit 1 (git ignores a helper's status and goes on). stdout never
carries anything but the protocol, and no secret is ever printed elsewhere.

Requests go through `helperd_client.Client` (its framing, trust check and timeout). When
nothing listens, a daemon is started on demand (`helperd_client.autostart`;
``HELPERD_AUTOSTART=0`` turns it off) and the action runs once more.
"""

from __future__ import annotations

import os
import re
import sys

from helperd_client.autostart import autostart_enabled, start_daemon
from helperd_client.errors import (
    DaemonNotRunningError,
    HelperdError,
    LockedError,
    NotFoundError,
    UntrustedSocketError,
)
from helperd_client.names import DEFAULT_PORTS
from helperd_client.paths import socket_file

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: keep start-up light
if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime
    from typing import Protocol

    from helperd_client.client import Credential

    class Daemon(Protocol):
        """What the actions need of `helperd_client.Client` (unit tests pass a fake)."""

        def get(
            self,
            *,
            name: str | None = None,
            url: str | None = None,
            service: str | None = None,
            username: str | None = None,
        ) -> Credential: ...

        def set(
            self,
            name: str | None,
            password: str,
            *,
            username: str | None = None,
            kind: str | None = None,
            urls: list[str] | None = None,
            expires_at: datetime | None = None,
        ) -> object: ...

        def delete(self, name: str | None, username: str | None = None) -> int: ...


__all__ = [
    "ACTIONS",
    "PROG",
    "erase",
    "format_answer",
    "get",
    "host_port",
    "main",
    "parse",
    "serve",
    "store",
    "url_of",
]

PROG = "git-credential-helperd"
ACTIONS = ("get", "store", "erase")
SCHEMES = ("http", "https")
# git's ``host``: a host name, an IPv4 address or a bracketed IPv6 one, and an optional port;
# never userinfo (``user@host``), a path or a space, which would make the URL ask elsewhere.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")
NAME_PREFIX = "git-"
MAX_NAME_TRIES = 100  # git-HOST, git-HOST-2, ...: a bound, so that store always ends
LOCKED_HINT = (
    f"{PROG}: the helperd store is locked, so no password was handed to git;"
    " `helperctl unlock` opens it"
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
# RFC 3986 unreserved characters, sub-delims, ':', '@' and '/': kept as they are in a path.
_PATH_SAFE = frozenset(_NAME_CHARS | set("~!$&'()*+,;=:@/"))


def parse(lines: Iterable[str]) -> dict[str, str]:
    """git's attributes from ``key=value`` lines, up to a blank line or the end.

    The last value of a key wins, as in git. Multi-valued keys (``capability[]``,
    ``wwwauth[]``) and lines without ``=`` are ignored: this helper needs none of them.
    """
    attrs: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\n")
        if not line:
            break
        key, eq, value = line.partition("=")
        if eq and not key.endswith("[]"):
            attrs[key] = value
    return attrs


def url_of(attrs: dict[str, str]) -> str | None:
    """``protocol://host/path`` from git's attributes; None unless http(s) with a valid host."""
    protocol, host = attrs.get("protocol", ""), attrs.get("host", "")
    if protocol not in SCHEMES or _HOST.fullmatch(host) is None:
        return None
    return f"{protocol}://{host}/{_quote(attrs.get('path', ''))}"


def host_port(attrs: dict[str, str]) -> tuple[str, int] | None:
    """git's host and port (the protocol's default when git gives none), for a URL `url_of`
    accepts; None otherwise."""
    protocol = attrs.get("protocol", "")
    found = _HOST.fullmatch(attrs.get("host", ""))
    if protocol not in SCHEMES or found is None:
        return None
    port = int(found[2]) if found[2] else DEFAULT_PORTS[protocol]
    return found[1], port


def format_answer(username: str, password: str, expires_at: datetime | None) -> str:
    """The lines a ``get`` prints; empty when a value cannot travel on one line."""
    if any(ch in value for value in (username, password) for ch in "\n\r\0"):
        return ""  # git's format has no escape: a newline would end or forge an attribute
    lines = f"username={username}\npassword={password}\n"
    if expires_at is not None:
        lines += f"password_expiry_utc={int(expires_at.timestamp())}\n"
    return lines


def get(daemon: Daemon, attrs: dict[str, str]) -> str:
    """Answer git's ``get``: the lines to print (empty when helperd has nothing)."""
    url = url_of(attrs)
    if url is None:
        return ""
    username = attrs.get("username")
    found: Credential | None
    try:
        found = daemon.get(url=url, username=username)
    except NotFoundError:
        found = _on_host(daemon, attrs, username)
    if found is None:
        return ""
    return format_answer(found.username, found.password, found.expires_at)


def _on_host(daemon: Daemon, attrs: dict[str, str], username: str | None) -> Credential | None:
    """The record the service ``host:port`` finds, when one of its URLs has git's protocol,
    host and port; else None.

    With the port always given the daemon reads the service only as a host (a repository name
    holds no ``:``): git asking for host ``acme`` never gets repository ``acme``, nor
    ``poetry-repository-acme`` Poetry's. The daemon's host rule ignores the scheme, so the
    URLs are checked here: a record kept for ``https://h/`` is not sent to ``http://h``.
    """
    protocol = attrs["protocol"]
    where = host_port(attrs)
    if where is None:
        return None
    host, port = where
    try:
        found = daemon.get(service=f"{host}:{port}", username=username)
    except NotFoundError:
        return None
    from urllib.parse import urlsplit  # noqa: PLC0415 - only a host lookup needs it

    wanted = (protocol, host.strip("[]").lower(), port)
    for stored in found.urls:
        parts = urlsplit(stored)
        default = DEFAULT_PORTS.get(parts.scheme)
        found_at = (parts.scheme, parts.hostname or "", parts.port or default)
        if found_at == wanted:
            return found
    return None


def store(daemon: Daemon, attrs: dict[str, str]) -> None:
    """Keep the credential git just used successfully (a no-op when helperd already has it)."""
    url, username, password = url_of(attrs), attrs.get("username"), attrs.get("password")
    if url is None or username is None or password is None:
        return
    keep, expires_at = _expiry(attrs.get("password_expiry_utc"))
    if not keep:
        return  # already expired, or garbled: nothing worth keeping
    try:
        found = daemon.get(url=url, username=username)
    except NotFoundError:
        found = None
    if found is not None:
        if found.password == password and (expires_at is None or expires_at == found.expires_at):
            # git stores back what this helper just served; an older git drops the expiry.
            return
        daemon.set(
            found.name, password, username=found.username, kind=found.kind, expires_at=expires_at
        )
        return
    name = _free_name(daemon, attrs["host"], username)
    daemon.set(name, password, username=username, kind="basic", urls=[url], expires_at=expires_at)


def erase(daemon: Daemon, attrs: dict[str, str]) -> None:
    """Delete the basic record at git's URL whose username and password git rejected.

    Only a URL match counts (no ``host[:port]`` fallback): a password kept for an index on
    the same host is never deleted because a git server refused it.
    """
    url, username, password = url_of(attrs), attrs.get("username"), attrs.get("password")
    if url is None or username is None or password is None:
        return
    try:
        found = daemon.get(url=url, username=username)
    except NotFoundError:
        return
    if found.kind == "basic" and found.username == username and found.password == password:
        daemon.delete(found.name, found.username)


def main(argv: list[str] | None = None) -> int:
    """Run ``git-credential-helperd ACTION`` with git's attributes on stdin."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: {PROG} get|store|erase (git runs it; see docs/git.md)", file=sys.stderr)
        return 2
    if args[0] not in ACTIONS:
        return 0  # git's rule for helpers: ignore an action you do not know
    # Bytes, not sys.stdin's locale: git's values are UTF-8 whatever LANG says.
    try:
        attrs = parse(line.decode() for line in iter(sys.stdin.buffer.readline, b""))
    except UnicodeDecodeError:
        print(f"{PROG}: git's input is not UTF-8; nothing done", file=sys.stderr)
        return 0
    return serve(args[0], attrs)


def serve(action: str, attrs: dict[str, str]) -> int:
    """Run ``action`` against helperd, print its answer; returns the exit status."""
    try:
        out = _run_starting(action, attrs)
    except UntrustedSocketError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    except LockedError:
        print(LOCKED_HINT, file=sys.stderr)
        return 0
    except DaemonNotRunningError:
        return 0  # HELPERD_AUTOSTART=0 and no daemon: git asks its next helper or the user
    except HelperdError as exc:  # unreachable, a failed start, store_unavailable, ...
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 0
    except Exception as exc:  # a garbled answer: its text could hold anything, so no message
        print(f"{PROG}: unexpected {type(exc).__name__}; nothing done", file=sys.stderr)
        return 0
    sys.stdout.buffer.write(out.encode())
    sys.stdout.flush()
    return 0


def _run(action: str, attrs: dict[str, str], daemon: Daemon) -> str:
    if action == "get":
        return get(daemon, attrs)
    (store if action == "store" else erase)(daemon, attrs)
    return ""


def _run_starting(action: str, attrs: dict[str, str]) -> str:
    """`_run` on a `Client`; when nothing listens, start a daemon (as the plugin does), again."""
    from helperd_client.client import Client  # noqa: PLC0415 - only once there is work to do

    path = socket_file()
    with Client(path) as daemon:
        try:
            return _run(action, attrs, daemon)
        except DaemonNotRunningError:
            if not autostart_enabled():
                raise
            # No request reached a daemon, so running the action again does nothing twice.
            start_daemon(path, daemon.timeout)
        return _run(action, attrs, daemon)


def _expiry(value: str | None) -> tuple[bool, datetime | None]:
    """git's ``password_expiry_utc``: whether to keep the credential, and its expiry time
    (None when git gave none); not kept when it has passed or is garbled."""
    if value is None:
        return True, None
    from datetime import UTC, datetime  # noqa: PLC0415 - only for credentials with an expiry

    try:
        when = datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return False, None
    return when > datetime.now(UTC), when


def _free_name(daemon: Daemon, host: str, username: str) -> str:
    """``git-HOST`` (``:`` and other characters a name cannot hold become ``-``), or
    ``git-HOST-2``, ... when that name already holds a live record for ``username``."""
    base = NAME_PREFIX + "".join(ch if ch in _NAME_CHARS else "-" for ch in host.strip("[]"))
    for n in range(1, MAX_NAME_TRIES + 1):
        name = base if n == 1 else f"{base}-{n}"
        try:
            daemon.get(name=name, username=username)
        except NotFoundError:
            return name
    return f"{base}-{os.getpid()}"


def _quote(path: str) -> str:
    """Percent-encode what a URL path cannot hold (git hands the path over decoded)."""
    return "".join(
        ch if ch in _PATH_SAFE else "".join(f"%{b:02X}" for b in ch.encode()) for ch in path
    )


if __name__ == "__main__":
    raise SystemExit(main())
