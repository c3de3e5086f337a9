"""``helperctl doctor``: what is wrong with this helperd setup, and how to fix it.

Facts are gathered once, by `helperd.ctl.doctor_facts.gather` (re-exported here; every probe is
bounded in time and writes nothing); the checks are small pure functions of those facts
(`CHECKS`), each returning a `Finding`: ok, warn or fail, a message, and the fix. The checks of
the daemon's side live here, those of the tools it serves in `helperd.ctl.doctor_tools`. Tests
build `Facts` by hand, or gather them from deliberately broken setups.

No check ever reads a secret into its output: Poetry's auth.toml is reported as a count, and
the key file's bytes are read (as the daemon reads them) only to apply the daemon's own rules.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from helperd import __version__
from helperd.ctl.doctor_facts import (
    PROBE_TIMEOUT,
    AuthFacts,
    Connection,
    Facts,
    KeyringProbe,
    PathFacts,
    PipFacts,
    gather,
    probe_program,
)
from helperd.ctl.doctor_finding import Finding
from helperd.ctl.doctor_providers import providers_verdict
from helperd.ctl.doctor_tools import (
    check_auth_toml,
    check_keyring_cli,
    check_keyring_probe,
    check_pip,
    check_poetry,
    check_shim,
)
from helperd.ctl.doctor_upstream import upstream_verdict

__all__ = [
    "CHECKS",
    "PROBE_TIMEOUT",
    "AuthFacts",
    "Connection",
    "Facts",
    "Finding",
    "KeyringProbe",
    "PathFacts",
    "PipFacts",
    "check_auth_toml",
    "check_config",
    "check_daemon",
    "check_key_file",
    "check_keyring_cli",
    "check_keyring_probe",
    "check_old_socket",
    "check_pip",
    "check_poetry",
    "check_providers",
    "check_socket",
    "check_socket_dir",
    "check_stale_socket",
    "check_store",
    "gather",
    "probe_program",
    "render_text",
    "run_checks",
]

SOCKET_PATH_MAX = 107
"""Bytes of a Unix socket path that fit in ``sockaddr_un`` on Linux (104 on macOS)."""


# --- checks --------------------------------------------------------------------------------------


def check_socket_dir(facts: Facts) -> Finding:
    """The socket's folder: 0700 and ours (SPEC.md, "Security invariants")."""
    name, folder = "socket-dir", facts.socket_dir
    where = shlex.quote(str(folder.path))
    if folder.kind == "missing":
        return Finding(name, "ok", f"{folder.path} does not exist yet; helperd makes it 0700")
    if folder.kind != "dir":
        return Finding(
            name, "fail", f"{folder.path} is not a folder ({folder.kind})", f"move {where} away"
        )
    if folder.uid != facts.uid:
        return Finding(
            name,
            "fail",
            f"{folder.path} belongs to uid {folder.uid}, not to you (uid {facts.uid})",
            "use a socket folder of your own: unset HELPERD_SOCKET, or point it elsewhere",
        )
    if folder.mode & 0o077:
        return Finding(
            name,
            "fail",
            f"{folder.path} is mode {folder.mode:04o}: others can reach the socket's folder",
            f"chmod 700 {where}",
        )
    return Finding(name, "ok", f"{folder.path} is 0700 and yours")


def check_socket(facts: Facts) -> Finding:
    """The socket itself: a socket, 0600, ours, with a path short enough to bind."""
    name, sock = "socket", facts.socket_file
    where = shlex.quote(str(sock.path))
    size = len(os.fsencode(sock.path))
    if size > SOCKET_PATH_MAX:
        return Finding(
            name,
            "fail",
            f"{sock.path} is {size} bytes long; a Unix socket path holds at most {SOCKET_PATH_MAX}",
            "choose a shorter HELPERD_SOCKET or HELPERD_HOME",
        )
    if sock.kind == "missing":
        return Finding(name, "warn", f"no socket at {sock.path} (see the daemon check)")
    if sock.kind != "socket":
        return Finding(
            name,
            "fail",
            f"{sock.path} is a {sock.kind}, not a socket: helperd cannot listen there",
            f"move {where} away, then start helperd",
        )
    if sock.uid != facts.uid:
        return Finding(
            name,
            "fail",
            f"{sock.path} belongs to uid {sock.uid}, not to you (uid {facts.uid})",
            "stop the daemon that made it and use a socket of your own",
        )
    if sock.mode & 0o077:
        return Finding(
            name,
            "fail",
            f"{sock.path} is mode {sock.mode:04o}: it must be 0600",
            f"chmod 600 {where}",
        )
    return Finding(name, "ok", f"{sock.path} is 0600 and yours")


def check_stale_socket(facts: Facts) -> Finding:
    """A socket nobody listens on: a daemon was killed, and clients are refused at once."""
    name = "stale-socket"
    if facts.socket_file.kind == "socket" and facts.connection.state == "refused":
        where = shlex.quote(str(facts.socket))
        return Finding(
            name,
            "fail",
            f"{facts.socket} exists but nothing listens on it (a daemon was killed?)",
            f"rm {where}; then start helperd (helperd starts over a stale socket by itself too)",
        )
    return Finding(name, "ok", "no stale socket")


def _start_hint() -> str:
    return (
        "start it: `systemctl --user start helperd.socket` where it is installed as a service"
        " (`helperctl install-service`), else `helperd &`; servers and CI: docs/headless.md"
    )


def check_daemon(facts: Facts) -> Finding:
    """The daemon answers ``hello`` within the timeout, in our protocol."""
    name, conn = "daemon", facts.connection
    if conn.state == "ok" and conn.hello is not None and conn.status is not None:
        said = f"helperd {conn.hello.version} answers on {facts.socket} (pid {conn.status.pid})"
        if conn.hello.version != __version__:
            return Finding(
                name,
                "warn",
                f"{said}, but this helperctl is {__version__}",
                "install matching versions of helperd and helperd-client, then restart helperd",
            )
        return Finding(name, "ok", said)
    messages = {
        "missing": (f"helperd is not running: no socket at {facts.socket}", _start_hint()),
        "refused": (f"helperd is not running: nothing listens on {facts.socket}", _start_hint()),
        "timeout": (
            f"helperd at {facts.socket} does not answer ({conn.detail}): it hangs",
            (
                "restart it (`systemctl --user restart helperd.service`, or kill it and start"
                " `helperd` again)"
            ),
        ),
        "denied": (
            f"cannot connect to {facts.socket}: {conn.detail}",
            "the socket or its folder is not yours: see the socket checks",
        ),
        "untrusted": (
            conn.detail,
            "every client refuses this socket: see the socket checks, and docs/security.md",
        ),
    }
    other = (
        f"helperd at {facts.socket} fails: {conn.detail}",
        "the daemon's log says more: `journalctl --user -u helperd.service`, or its stderr",
    )
    message, fix = messages.get(conn.state, other)
    return Finding(name, "fail", message, fix)


def check_old_socket(facts: Facts) -> Finding:
    """A daemon still listening where an older version put the socket (clients look elsewhere)."""
    name = "old-socket"
    if not facts.old_sockets:
        return Finding(name, "ok", "no daemon listens at an older version's socket path")
    old = facts.old_sockets[0]
    if old.uid not in (facts.uid, 0, None):
        return Finding(
            name,
            "fail",
            f"a process of another user (uid {old.uid}) listens at {old.path}",
            "it is not your helperd: never point HELPERD_SOCKET there",
        )
    stop = f"kill {old.pid}" if old.pid else "stop it"
    return Finding(
        name,
        "warn",
        f"a helperd{f' (pid {old.pid})' if old.pid else ''} still listens at {old.path},"
        f" where older versions put the socket; clients now look at {facts.socket}",
        f"{stop}, then start helperd again (`helperd &`, or let a tool start it on demand)"
        f" so that it listens at {facts.socket}",
    )


def check_store(facts: Facts) -> Finding:
    """The store the daemon uses, and whether it is open."""
    name, state = "store", facts.connection.status
    if state is None:
        return Finding(name, "warn", "unknown: the daemon is not reachable", "see the daemon check")
    said = f"{state.store} store ({state.store_reason})"
    if state.store_error is not None:
        return Finding(
            name,
            "fail",
            f"{said}: cannot be opened: {state.store_error}",
            "do what the message says; the daemon needs no restart",
        )
    if state.lockable and not state.initialized:
        return Finding(name, "warn", f"{said}: no store exists yet", "helperctl init")
    if state.locked:
        return Finding(
            name, "warn", f"{said}: locked, so no tool gets a password", "helperctl unlock"
        )
    count = f"{state.repositories} repositor{'y' if state.repositories == 1 else 'ies'}"
    return Finding(name, "ok", f"{said}: open, {count}")


def check_config(facts: Facts) -> Finding:
    """config.toml and the HELPERD_* variables are valid."""
    if facts.config_error is not None:
        return Finding(
            "config", "fail", facts.config_error, "correct config.toml or the HELPERD_* variable"
        )
    return Finding("config", "ok", "config.toml and HELPERD_* variables are valid")


def check_key_file(facts: Facts) -> Finding:
    """A configured key file passes the daemon's rules (ours, 0600, at least 32 bytes)."""
    name = "key-file"
    if facts.key_file is None:
        return Finding(name, "ok", "no key file configured (HELPERD_KEY_FILE)")
    if facts.key_error is not None:
        command = re.search(r"`([^`]+)`", facts.key_error)
        fix = command[1] if command else f"make {facts.key_file} a file of yours, mode 0600"
        return Finding(name, "fail", facts.key_error, fix)
    return Finding(name, "ok", f"{facts.key_file} is yours, private, and long enough")


def check_client_timeout(facts: Facts) -> Finding:
    """HELPERD_TIMEOUT sits above the daemon's answer bound (else a hung keyring looks like
    a dead daemon); it is warned about, never changed."""
    if facts.timeout_warning is None:
        return Finding(
            "client-timeout", "ok", "HELPERD_TIMEOUT leaves room for the daemon's answer"
        )
    return Finding(
        "client-timeout", "warn", facts.timeout_warning, "unset HELPERD_TIMEOUT (default 2 s)"
    )


def check_upstream(facts: Facts) -> Finding:
    """The upstream secret engine's last refresh, as the daemon reports it (docs/fleet.md)."""
    state = facts.connection.status
    return Finding("upstream", *upstream_verdict(None if state is None else state.upstream))


def check_providers(facts: Facts) -> Finding:
    """Whether each provider record's last run worked, and whether its token is still valid
    (docs/providers.md)."""
    conn = facts.connection
    return Finding("providers", *providers_verdict(conn.status, conn.failing, datetime.now(UTC)))


CHECKS: tuple[Callable[[Facts], Finding], ...] = (
    check_socket_dir,
    check_socket,
    check_stale_socket,
    check_daemon,
    check_old_socket,
    check_store,
    check_config,
    check_client_timeout,
    check_key_file,
    check_poetry,
    check_keyring_cli,
    check_pip,
    check_shim,
    check_auth_toml,
    check_upstream,
    check_providers,
)
"""Every check, in the order doctor reports them."""


def run_checks(
    facts: Facts, checks: Sequence[Callable[[Facts], Finding]] = CHECKS
) -> list[Finding]:
    """Apply ``checks`` to ``facts``."""
    return [check(facts) for check in checks]


def render_text(findings: Sequence[Finding]) -> list[str]:
    """One line per finding, ``STATUS  name: message``, and an indented ``fix:`` line."""
    lines = []
    for found in findings:
        lines.append(f"{found.status:<4}  {found.name}: {found.message}")
        if found.fix and found.status != "ok":
            lines.append(f"      fix: {found.fix}")
    return lines
