"""``helperd-keyring-shim``: a fast ``keyring`` CLI for pip's and uv's subprocess provider.

``helperctl install-shim`` puts a file named ``keyring`` first on PATH that runs this module. It
serves the three lookups pip and uv make (docs/pip-uv.md) straight from helperd, with the real
``keyring`` CLI's output and exit codes, and without importing ``keyring`` at all:

* ``get SERVICE USER``                          -> the password on one line
* ``get SERVICE [USER] --mode creds``           -> the username and the password on two lines
* ``--mode=creds --output=json get SERVICE [USER]`` -> ``{"username": ..., "password": ...}``

Options may come in either ``--opt value`` or ``--opt=value`` form and anywhere among the
arguments, as argparse allows. Not found, locked or any daemon error: exit 1 at once with no
output (a locked store also prints the plugin's hint on stderr), as ``keyring`` with helperd's
plugin does. When nothing listens on the socket, a daemon is started on demand
(`helperd_client.autostart`; ``HELPERD_AUTOSTART=0`` turns it off) and asked again. A daemon
that still cannot be reached (no socket, refused, no answer within the client timeout): the
call goes to the real ``keyring``. A socket whose folder or listener is not the user's own
(`helperd_client.trust`): exit 1 with the reason on stderr, never handed on. Every other call
(``set``, ``del``, ``diagnose``, ``--help``, other options) is handed unchanged to the real
``keyring`` further along PATH with ``os.execv``, so arguments, stdin and exit status pass
through. When there is none, the shim says so on stderr and exits 127 (a shell's "command not
found").

Stdlib only, and light: it must start in a few tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import sys

from helperd_client.autostart import AUTOSTART_ENV, start_daemon
from helperd_client.errors import (
    DaemonNotRunningError,
    DaemonUnreachableError,
    UntrustedSocketError,
)
from helperd_client.names import LOCKED_HINT, POETRY_CHECK, keyring_username
from helperd_client.paths import socket_file
from helperd_client.transport import ask_served, env_timeout
from helperd_client.wire import PROTOCOL_VERSION

__all__ = [
    "MARKER",
    "NOT_FOUND",
    "NO_KEYRING",
    "RECURSION_ENV",
    "Lookup",
    "Unreachable",
    "find_real_keyring",
    "format_answer",
    "main",
    "parse",
]

MARKER = "# helperd-keyring-shim: written by `helperctl install-shim`"
"""A line in every installed shim: PATH searches skip such files, and --uninstall checks it."""

RECURSION_ENV = "HELPERD_KEYRING_SHIM_FORWARDED"
"""Set before handing a call on: a shim that finds it set never hands a call on again."""

NOT_FOUND = 1
"""The real CLI's status when nothing is found (``raise SystemExit(1)``)."""

NO_KEYRING = 127
"""The status when no real ``keyring`` stands behind the shim."""


class Lookup:
    """A served ``get``: the service, the username (or None) and the output form."""

    __slots__ = ("creds", "json", "service", "username")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, service: str, username: str | None, *, creds: bool, json: bool) -> None:
        self.service = service
        self.username = username
        self.creds = creds
        self.json = json

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Lookup):
            return NotImplemented
        return (self.service, self.username, self.creds, self.json) == (
            other.service,
            other.username,
            other.creds,
            other.json,
        )

    def __repr__(self) -> str:
        return f"Lookup({self.service!r}, {self.username!r}, creds={self.creds}, json={self.json})"


Unreachable = DaemonUnreachableError
"""The daemon did not answer (closed, or too slow); `DaemonNotRunningError` when nothing listens."""


def parse(argv: list[str]) -> Lookup | None:
    """The lookup ``argv`` asks for, or None when the shim does not serve it (hand it on)."""
    options: dict[str, str] = {"--mode": "password", "--output": "plain"}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if name not in options:
                return None  # --help, -b, --, abbreviations, "-": the real CLI decides
            if not eq:
                i += 1
                if i == len(argv):
                    return None
                value = argv[i]
            options[name] = value
        else:
            positional.append(arg)
        i += 1
    mode, output = options["--mode"], options["--output"]
    if len(positional) not in (2, 3) or positional[0] != "get":
        return None
    username = positional[2] if len(positional) == 3 else None
    if mode == "password" and output == "plain" and username is not None:
        return Lookup(positional[1], username, creds=False, json=False)
    if mode == "creds" and output in ("plain", "json"):
        return Lookup(positional[1], username, creds=True, json=output == "json")
    return None


def format_answer(lookup: Lookup, username: str, password: str) -> str:
    """What the real CLI prints for ``lookup`` (``print`` of keyring's credential fields)."""
    if lookup.json:
        return json.dumps({"username": username, "password": password}) + "\n"
    if lookup.creds:
        return f"{username}\n{password}\n"
    return f"{password}\n"


def ask(service: str, username: str | None, timeout: float) -> dict[str, object] | None:
    """helperd's answer to ``get`` by keyring service: the result, or None when it has none.

    Raises:
        DaemonNotRunningError: nothing listens on the socket.
        Unreachable: the daemon could not be reached or did not answer within ``timeout``.
        UntrustedSocketError: the socket's folder or its listener is not the caller's own.
    """
    message: dict[str, object] = {"v": PROTOCOL_VERSION, "id": 1, "op": "get", "service": service}
    if username is not None:
        message["username"] = username
    # The client's checked transport; a daemon at its connection cap is asked again.
    response = ask_served(socket_file(), message, timeout)
    result = response.get("result")
    if response.get("ok") is True and isinstance(result, dict):
        return result
    error = response.get("error")
    if isinstance(error, dict) and error.get("code") == "locked":
        print(LOCKED_HINT, file=sys.stderr)
    return None


def ask_starting(service: str, username: str | None, timeout: float) -> dict[str, object] | None:
    """`ask`; when nothing listens, start a daemon on demand (as the plugin does), ask again."""
    try:
        return ask(service, username, timeout)
    except DaemonNotRunningError:
        try:
            start_daemon(socket_file(), timeout)
        finally:
            os.environ[AUTOSTART_ENV] = "0"  # a real keyring handed the call need not try
    return ask(service, username, timeout)


def serve(lookup: Lookup) -> int | None:
    """Answer ``lookup`` from helperd: the exit status, or None when the daemon is unreachable."""
    if lookup.service == POETRY_CHECK:
        return NOT_FOUND  # the plugin never answers Poetry's probe
    username = keyring_username(lookup.username)
    try:
        result = ask_starting(lookup.service, username, env_timeout())
    except Unreachable:
        return None
    except Exception as exc:  # a garbled answer is "not found", as in the plugin
        if isinstance(exc, UntrustedSocketError):
            # Never handed on: another keyring must not answer in place of an impostor either.
            print(f"helperd-keyring-shim: {exc.message}", file=sys.stderr)
        return NOT_FOUND
    if result is None:
        return NOT_FOUND
    user, password = result.get("username"), result.get("password")
    if not isinstance(user, str) or not isinstance(password, str):
        return NOT_FOUND
    sys.stdout.write(format_answer(lookup, user, password))
    sys.stdout.flush()
    return 0


def is_shim(path: str) -> bool:
    """Whether the file at ``path`` is a shim written by ``helperctl install-shim``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    return MARKER.encode() in head


def find_real_keyring(path_env: str | None, own: str | None = None) -> str | None:
    """The first executable ``keyring`` on ``path_env`` that is neither ``own`` nor a shim."""
    own_real = os.path.realpath(own) if own else None
    for directory in (path_env or "").split(os.pathsep):
        candidate = os.path.join(directory or ".", "keyring")
        if not os.path.isfile(candidate) or not os.access(candidate, os.X_OK):
            continue
        if os.path.realpath(candidate) == own_real or is_shim(candidate):
            continue
        return candidate
    return None


def forward(argv: list[str]) -> int:
    """Exec the real ``keyring`` with ``argv``; returns only when there is none."""
    if os.environ.get(RECURSION_ENV):
        print(
            "helperd-keyring-shim: the call came back to the shim; refusing to hand it on again",
            file=sys.stderr,
        )
        return NO_KEYRING
    real = find_real_keyring(os.environ.get("PATH"), sys.argv[0] if sys.argv else None)
    if real is None:
        print(
            "helperd-keyring-shim: no real `keyring` found on PATH behind the shim, so"
            f" `keyring {' '.join(argv)}` cannot run; install keyring (`pipx install keyring`)"
            " or remove the shim (`helperctl install-shim --uninstall`)",
            file=sys.stderr,
        )
        return NO_KEYRING
    os.environ[RECURSION_ENV] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(real, [real, *argv])  # noqa: S606 - argv passes through unchanged, as documented
    return NO_KEYRING  # pragma: no cover - execv does not return


def main(argv: list[str] | None = None) -> int:
    """Run the shim on ``argv`` (default: the command line); returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    lookup = parse(args)
    if lookup is not None and not os.environ.get("PYTHON_KEYRING_BACKEND"):
        status = serve(lookup)
        if status is not None:
            return status
    return forward(args)


if __name__ == "__main__":
    raise SystemExit(main())
