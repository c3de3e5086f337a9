"""Secret hygiene: a unique secret, every op and every error path, then a search everywhere.

The daemon runs at ``--log-level debug`` with a passphrase store. Every secret the test
hands over (passwords, passphrases, wrong passphrases, a URL's password, secrets inside
malformed frames) contains one needle, unique to the run. Afterwards the needle must be in
none of: the daemon's log and every file under its home, helperctl's stderr (and stdout,
except where ``get`` prints the password by design), the text and ``repr`` of every
exception the client raised, every error answer, ``repr``/``str``/dumps of every protocol
model, the daemon's ``/proc/PID/cmdline`` and ``/proc/PID/environ``.

Core dumps: ``/proc/PID/limits`` must say 0 for "Max core file size" although the daemon
was started with it unlimited. Not dumpable: proc(5) says the files of a non-dumpable
process belong to root; a daemon run with group ``nobody`` shows ``/proc/PID/environ`` owned
by group nobody while dumpable and by group root once ``prctl(PR_SET_DUMPABLE, 0)`` ran.
A sleeping child started the same way is the control.
"""

from __future__ import annotations

import enum
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
import types
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helperd_client import (
    BadPassphraseError,
    BadRequestError,
    Client,
    HelperdError,
    LockedError,
    NotFoundError,
)
from helperd_client.wire import MAX_LINE
from pydantic import AwareDatetime, BaseModel, SecretStr

from helperd.core import protocol
from helperd.core.record import Kind
from helperd.testing import Daemon, wait_for_gate
from tests.hardening import NOBODY, Figures, Spawn, require_root, sized, stop_process, timeout_for

pytestmark = pytest.mark.timeout(timeout_for(180, 600))

NEEDLE = f"Hy9n-{secrets.token_hex(6)}"
SECRET_NAMES = {"password", "passphrase", "old", "new"}
HELPERCTL = str(Path(sys.executable).parent / "helperctl")


def secret(tag: str) -> str:
    """A secret for one step of the test: the needle plus what it is for."""
    return f"{NEEDLE}-{tag}"


class Seen:
    """Everything that must not hold the needle, collected as the test goes."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str | bytes) -> None:
        """Remember ``text`` (to be searched) under the label ``where``."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        self.texts.append((where, text))

    def error(self, where: str, exc: BaseException) -> None:
        """Remember an exception's text and repr."""
        self.add(f"{where}: str", str(exc))
        self.add(f"{where}: repr", repr(exc))

    def leaks(self) -> list[str]:
        """Where the needle was found."""
        return [where for where, text in self.texts if NEEDLE in text]


def expect_error(seen: Seen, where: str, kind: type[HelperdError], call: Any) -> HelperdError:
    """Call ``call``, which must raise ``kind``; remember the exception."""
    with pytest.raises(kind) as caught:
        call()
    seen.error(where, caught.value)
    return caught.value


def every_op_through_the_client(client: Client, seen: Seen) -> None:
    """Every op, with its success and its error paths, each secret carrying the needle."""
    url = "https://pkgs.example.test/simple/"
    client.hello()
    seen.add("status", repr(client.status()))
    client.init(secret("passphrase"))
    client.set("acme", secret("basic"), username="alice", urls=[url])
    soon = datetime.now(UTC) + timedelta(hours=1)
    client.set("acme", secret("token"), kind="token", expires_at=soon)
    client.set("svc.example", secret("generic"), username="bob", kind="generic")
    client.set(None, secret("by-service"), service="poetry-repository-other", username="carol")
    for found in (
        client.get(name="acme"),
        client.get(url=url + "pkg/"),
        client.get(service="pkgs.example.test"),
        client.get(service="poetry-repository-acme", username="__token__"),
        client.get(service="svc.example", username="bob"),
    ):
        assert found.password.startswith(NEEDLE)
        seen.add("Credential repr", repr(found))
    seen.add("list", repr(client.list()))
    expect_error(seen, "get missing", NotFoundError, lambda: client.get(name="missing"))
    expect_error(
        seen,
        "set with a URL password",
        BadRequestError,
        lambda: client.set(
            "acme", "pw", username="x", urls=[f"https://x:{secret('url')}@pkgs.example.test/"]
        ),
    )
    expect_error(
        seen,
        "set with a bad name",
        BadRequestError,
        lambda: client.set("bad name!", secret("bad-name"), username="u"),
    )
    past = datetime.now(UTC) - timedelta(days=1)
    expect_error(
        seen,
        "set expired",
        BadRequestError,
        lambda: client.set("acme", secret("past"), username="u", expires_at=past),
    )
    expect_error(seen, "init again", BadRequestError, lambda: client.init(secret("init-again")))
    client.lock()
    expect_error(seen, "get while locked", LockedError, lambda: client.get(name="acme"))
    expect_error(seen, "unlock wrong", BadPassphraseError, lambda: client.unlock(secret("wrong")))
    wait_for_gate(client)
    client.unlock(secret("passphrase"))
    expect_error(
        seen,
        "passwd wrong",
        BadPassphraseError,
        lambda: client.passwd(secret("wrong-old"), secret("never-set")),
    )
    wait_for_gate(client)
    client.passwd(secret("passphrase"), secret("passphrase-2"))
    expect_error(
        seen, "migrate to file", BadRequestError, lambda: client.migrate("file", secret("m1"))
    )
    expect_error(
        seen,
        "migrate to keyring",
        HelperdError,
        lambda: client.migrate("keyring", secret("m2")),
    )
    assert 1 == client.delete("svc.example", "bob")
    expect_error(seen, "delete missing", NotFoundError, lambda: client.delete("missing"))


def bad_frames() -> list[bytes]:
    """Malformed frames, each carrying the needle where a secret would be."""
    pw = secret("frame")
    return [
        json.dumps({"v": 1, "id": 1, "op": "set", "name": "a", "password": [pw]}).encode(),
        json.dumps({"v": 1, "id": 2, "op": "set", "name": "a", "password": {"p": pw}}).encode(),
        json.dumps({"v": 1, "id": 3, "op": "set", "name": 5, "password": pw}).encode(),
        json.dumps({"v": 1, "id": 4, "op": "set", "name": "a", "password": "p", "x": pw}).encode(),
        json.dumps({"v": 2, "id": 5, "op": "set", "name": "a", "password": pw}).encode(),
        json.dumps({"v": 1, "id": 6, "op": "unlock", "passphrase": [pw]}).encode(),
        json.dumps({"v": 1, "id": 7, "op": "passwd", "old": pw, "new": 7}).encode(),
        json.dumps({"v": 1, "id": 8, "op": "init", "passphrase": pw, "extra": pw}).encode(),
        json.dumps({"v": 1, "id": 9, "op": "set", "name": "a", "password": pw, "kind": 3}).encode(),
        b'{"v":1,"id":10,"op":"set","name":"a","password":"' + pw.encode(),  # truncated
        b'{"v":1,"id":11,"op":"set","password":"' + pw.encode() + b'\xff\xfe"}',  # bad UTF-8
        b'{"v":1,"id":12,"op":"set","password":"' + pw.encode() + b'\x00"}',  # raw NUL
        (pw * (MAX_LINE // len(pw) + 2)).encode(),  # too_large
    ]


def send_bad_frames(path: Path, seen: Seen) -> None:
    """Each bad frame on its own connection; remember every answer."""
    for frame in bad_frames():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(frame + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(65_536)
                if not chunk:
                    break
                answer += chunk
        assert answer, f"no answer to {frame[:60]!r}"
        assert not json.loads(answer)["ok"]
        seen.add(f"answer to {frame[:40]!r}", answer)


def helperctl(daemon: Daemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run helperctl against ``daemon``; stdin feeds ``--password-stdin``/``--passphrase-stdin``."""
    return subprocess.run(
        [HELPERCTL, *args],
        input=stdin,
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def every_helperctl_path(daemon: Daemon, seen: Seen) -> None:
    """helperctl commands and failures; stderr always searched, stdout unless it is the secret."""
    url_with_password = f"https://u:{secret('cli-url')}@h.example.test/"
    runs = [
        (("set", "cli", "--username", "u", "--password-stdin"), secret("cli"), 0, True),
        (("set", "cli2", "--url", url_with_password, "--password-stdin"), "pw", 2, True),
        (("get", "cli"), "", 0, False),
        (("get", "cli", "--json"), "", 0, False),
        (("list",), "", 0, True),
        (("list", "--json"), "", 0, True),
        (("status", "--json"), "", 0, True),
        (("get", "missing"), "", 4, True),
        (("lock",), "", 0, True),
        (("get", "cli"), "", 5, True),
        (("unlock", "--passphrase-stdin"), secret("cli-wrong"), 5, True),
        (("unlock", "--passphrase-stdin"), secret("passphrase-2"), 0, True),
        (("init", "--passphrase-stdin"), secret("cli-init"), 2, True),
        (("rm", "cli"), "", 0, True),
    ]
    for args, stdin, code, stdout_clean in runs:
        done = helperctl(daemon, *args, stdin=stdin)
        label = "helperctl " + " ".join(a if NEEDLE not in a else "<secret>" for a in args)
        assert code == done.returncode, f"{label}: {done.stderr}"
        if args[0] == "unlock" and code:
            with Client(daemon.socket) as client:
                wait_for_gate(client)
        seen.add(f"{label}: stderr", done.stderr)
        if stdout_clean:
            seen.add(f"{label}: stdout", done.stdout)
        else:
            assert NEEDLE in done.stdout, "get prints the password"
    for args in (("cli",), ("cli", "--json")):
        done = helperctl(daemon, "get", *args)
        seen.add(f"helperctl get {args} after rm: stderr", done.stderr)


def test_no_secret_anywhere(spawn: Spawn, home: Path, figures: Figures) -> None:
    """Every op and error path at debug level; the needle is found nowhere it must not be."""
    daemon = spawn(key=False, log_level="debug")
    seen = Seen()
    started = time.monotonic()
    with Client(daemon.socket, timeout=10.0) as client:
        every_op_through_the_client(client, seen)
    send_bad_frames(daemon.socket, seen)
    every_helperctl_path(daemon, seen)
    pid = daemon.process.pid
    seen.add("/proc/PID/cmdline", Path(f"/proc/{pid}/cmdline").read_bytes())
    try:
        seen.add("/proc/PID/environ", Path(f"/proc/{pid}/environ").read_bytes())
    except PermissionError:  # not root, and the daemon is not dumpable: nobody else reads it
        assert os.geteuid() != 0
    daemon.stop()
    for path in home.rglob("*"):
        if path.is_file():
            seen.add(f"file {path.name}", path.read_bytes())
    log = daemon.log.read_text(errors="replace")
    figures("places searched for the needle", len(seen.texts))
    figures("daemon log lines searched (debug level)", len(log.splitlines()))
    figures("hygiene run", time.monotonic() - started, "s")
    assert "DEBUG" in log, "the daemon logged at debug level"
    assert [] == seen.leaks()


# --- models -----------------------------------------------------------------------------------


SIMPLE: dict[Any, Any] = {
    str: "plain",
    int: 1,
    float: 1.0,
    bool: False,
    datetime: datetime(2026, 1, 1, tzinfo=UTC),
    AwareDatetime: datetime(2026, 1, 1, tzinfo=UTC),
    Kind: Kind.BASIC,
}


def sample(annotation: Any, field: str) -> Any:  # noqa: PLR0911 - one return per type
    """A value for a field: the needle for secrets, something harmless for the rest."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Annotated, typing.Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)), field)
    if origin is typing.Literal:
        return args[0]
    if origin is list:
        return [sample(args[0], field)]
    if origin is tuple:  # tuple[X, ...]: a provider's argv and env names
        return (sample(args[0], field),)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return next(iter(annotation))
    if annotation is SecretStr:
        return SecretStr(secret(f"model-{field}"))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return build(annotation)
    return SIMPLE[annotation]


def build(model: type[BaseModel]) -> BaseModel:
    """An instance of ``model`` with every field set."""
    hints = typing.get_type_hints(model, include_extras=True)
    values = {name: sample(hints[name], name) for name in model.model_fields}
    return model.model_construct(**values)


MODELS = [
    getattr(protocol, name)
    for name in protocol.__all__
    if isinstance(getattr(protocol, name), type) and issubclass(getattr(protocol, name), BaseModel)
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_no_model_shows_a_secret(model: type[BaseModel]) -> None:
    """repr, str and dumps of every protocol model hide its secrets; only the wire shows them."""
    for name, info in model.model_fields.items():
        if name in SECRET_NAMES:
            assert "SecretStr" in str(info.annotation), f"{model.__name__}.{name} is no SecretStr"
    instance = build(model)
    shown = [repr(instance), str(instance), instance.model_dump_json(), str(instance.model_dump())]
    for text in shown:
        assert NEEDLE not in text
    has_secret = any(n in SECRET_NAMES for n in model.model_fields)
    if model is protocol.GetResult:
        assert NEEDLE in protocol.render_ok(1, instance).decode(), "the wire reveals the password"
    elif has_secret:
        assert NEEDLE not in str(instance.model_dump(mode="json"))


def test_wrong_passphrases_close_the_gate_exponentially(spawn: Spawn, figures: Figures) -> None:
    """After the n-th wrong passphrase in a row, none is checked for 2^(n-1) s (CI: n <= 3;
    full: up to the 30 s cap): the wrong one is answered after its KDF alone, a retry before
    the gate opens is refused unchecked, one after it is checked. A right one resets n.
    """
    tries = sized(3, 6)
    daemon = spawn(key=False)
    with Client(daemon.socket, timeout=10.0, passphrase_timeout=90.0) as client:
        client.init("right")
        client.lock()
        answers, closed = [], []
        for _ in range(tries):
            wait_for_gate(client)
            runs = client.status().kdf_runs
            started = time.monotonic()
            with pytest.raises(BadPassphraseError, match=r"^wrong passphrase"):
                client.unlock("wrong")
            answers.append(time.monotonic() - started)
            status = client.status()
            closed.append(status.passphrase_retry_in)
            assert runs + 1 == status.kdf_runs
            with pytest.raises(BadPassphraseError, match=r"^too many wrong passphrases"):
                client.unlock("right")  # refused unchecked, though right
            assert runs + 1 == client.status().kdf_runs
        wait_for_gate(client)
        client.unlock("right")
        client.lock()
        with pytest.raises(BadPassphraseError, match=r"^wrong passphrase"):
            client.unlock("wrong")
        after_reset = client.status().passphrase_retry_in
    figures("answers to wrong passphrases 1..n", " ".join(f"{a:.1f}" for a in answers), "s")
    figures("gate closed after them for", " ".join(f"{c:.1f}" for c in closed), "s")
    figures("gate after a right one reset the count", after_reset, "s")
    for n, wait in enumerate(closed, start=1):
        assert wait <= min(2 ** (n - 1), 30), f"try {n}: the gate stays closed {wait:.2f} s"
    assert after_reset <= 1.0


def proc_limit(pid: int, name: str) -> tuple[str, str]:
    """The (soft, hard) values of one line of /proc/PID/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            soft, hard = line[len(name) :].split()[:2]
            return soft, hard
    raise LookupError(name)


def dumpable_by_owner(pid: int, gid: int) -> bool:
    """Whether ``pid`` (running with all group IDs ``gid``) is dumpable, from /proc ownership."""
    groups = next(
        line
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Gid:")
    )
    assert [str(gid)] * 4 == groups.split()[1:], "the process runs with the group asked for"
    owner = Path(f"/proc/{pid}/environ").stat().st_gid
    assert owner in (gid, 0)
    return owner == gid


def test_core_dumps_off_and_not_dumpable(spawn: Spawn, figures: Figures) -> None:
    """/proc shows RLIMIT_CORE 0 and a non-dumpable daemon, though started with core dumps on.

    Fails until the daemon calls `helperd.daemon.hardening.harden_process` at start.
    """
    require_root("runs the daemon with group nobody to read dumpability from /proc")
    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    core_on = {resource.RLIMIT_CORE: (hard, hard)}
    control = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        group=NOBODY,
        extra_groups=[],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (hard, hard)),  # noqa: PLW1509
    )
    try:
        time.sleep(0.2)
        assert dumpable_by_owner(control.pid, NOBODY), "the control is dumpable: method works"
        assert "0" != proc_limit(control.pid, "Max core file size")[0]
        daemon = spawn(group=NOBODY, limits=core_on)
        pid = daemon.process.pid
        soft_core, hard_core = proc_limit(pid, "Max core file size")
        dumpable = dumpable_by_owner(pid, NOBODY)
    finally:
        stop_process(control)
    figures("daemon Max core file size (soft/hard)", f"{soft_core}/{hard_core}")
    figures("daemon dumpable", str(dumpable))
    assert "0" == soft_core, "core dumps are on: call harden_process() at start"
    assert not dumpable, "the daemon is dumpable: call harden_process() at start"
