"""helperctl doctor's checks as pure functions of facts, its probes with stand-in programs,
and the command's output and exit status."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helperd_client import Hello, Status, shim

from helperd import __version__
from helperd.ctl import doctor, doctor_facts
from helperd.ctl.doctor import (
    AuthFacts,
    Connection,
    Facts,
    Finding,
    KeyringProbe,
    PathFacts,
    PipFacts,
)
from helperd.ctl.doctor_moved import OldSocket
from helperd.ctl.main import cli

UID = 1000
SOCKET = Path("/run/user/1000/helperd/helperd.sock")
HELLO = Hello("helperd", 1, __version__, ("hello", "status"))
OPEN = Status(
    version=__version__,
    protocol=1,
    pid=4242,
    store="file",
    store_reason="key file /srv/key",
    initialized=True,
    locked=False,
    lockable=False,
    repositories=2,
    records=2,
    idle_lock_seconds=None,
)
PLUGIN = "helperd_client.keyring_backend.HelperdKeyring"


def facts(**changes: Any) -> Facts:
    """A healthy setup: private folder and socket, a daemon that answers, keyring with helperd."""
    healthy = Facts(
        uid=UID,
        socket=SOCKET,
        socket_dir=PathFacts(SOCKET.parent, "dir", 0o700, UID),
        socket_file=PathFacts(SOCKET, "socket", 0o600, UID),
        connection=Connection("ok", hello=HELLO, status=OPEN),
        poetry=probe("poetry"),
        keyring_cli=probe("keyring"),
        pip=PipFacts(
            Path("/usr/bin/pip"), Path("/usr/bin"), Path("/k/keyring"), Path("/k/keyring")
        ),
        auth=AuthFacts(Path("/home/a/.config/pypoetry/auth.toml"), "absent"),
    )
    return dataclasses.replace(healthy, **changes)


def probe(tool: str, **changes: Any) -> KeyringProbe:
    """A probe of ``tool`` whose Python has helperd's plugin and picks it."""
    made = KeyringProbe(
        tool,
        "ok",
        Path(f"/opt/{tool}/bin/{tool}"),
        Path(f"/opt/{tool}/bin/python"),
        plugin=True,
        backend="keyring_backend HelperdKeyring",
        backend_class=PLUGIN,
    )
    return dataclasses.replace(made, **changes)


def by_name(found: list[Finding]) -> dict[str, Finding]:
    """Findings keyed by check name."""
    return {f.name: f for f in found}


def test_a_healthy_setup_is_all_ok() -> None:
    """Every check passes on a healthy setup, in the documented order."""
    found = doctor.run_checks(facts())

    assert [
        "socket-dir",
        "socket",
        "stale-socket",
        "daemon",
        "old-socket",
        "store",
        "config",
        "client-timeout",
        "key-file",
        "poetry-keyring",
        "keyring-cli",
        "pip-keyring",
        "keyring-shim",
        "poetry-auth-toml",
        "upstream",
        "providers",
    ] == [f.name for f in found]
    assert {"ok"} == {f.status for f in found}, found


# --- socket --------------------------------------------------------------------------------------


def test_socket_dir_open_to_others_fails_with_chmod() -> None:
    """A 0755 socket folder fails, and the fix is chmod 700 on it."""
    found = doctor.check_socket_dir(facts(socket_dir=PathFacts(SOCKET.parent, "dir", 0o755, UID)))

    assert ("fail", f"chmod 700 {SOCKET.parent}") == (found.status, found.fix)
    assert "0755" in found.message


def test_socket_dir_of_another_user_fails() -> None:
    """A socket folder that belongs to another user fails."""
    found = doctor.check_socket_dir(facts(socket_dir=PathFacts(SOCKET.parent, "dir", 0o700, 0)))

    assert "fail" == found.status
    assert "uid 0" in found.message


def test_missing_socket_dir_is_fine() -> None:
    """A folder that does not exist yet is made by the daemon: ok."""
    found = doctor.check_socket_dir(facts(socket_dir=PathFacts(SOCKET.parent, "missing")))

    assert "ok" == found.status


def test_socket_open_to_others_fails_with_chmod() -> None:
    """A 0666 socket fails, and the fix is chmod 600 on it."""
    found = doctor.check_socket(facts(socket_file=PathFacts(SOCKET, "socket", 0o666, UID)))

    assert ("fail", f"chmod 600 {SOCKET}") == (found.status, found.fix)


def test_socket_that_is_a_file_fails() -> None:
    """A regular file where the socket should be fails: the daemon cannot listen there."""
    found = doctor.check_socket(facts(socket_file=PathFacts(SOCKET, "file", 0o600, UID)))

    assert "fail" == found.status
    assert "not a socket" in found.message


def test_socket_path_too_long_fails() -> None:
    """A socket path longer than sockaddr_un holds fails before anything else."""
    long = Path("/tmp/" + "x" * 120 + "/helperd.sock")
    found = doctor.check_socket(facts(socket=long, socket_file=PathFacts(long, "missing")))

    assert "fail" == found.status
    assert "HELPERD_SOCKET" in (found.fix or "")


def test_stale_socket_fails_with_rm() -> None:
    """A socket where the connection is refused is stale: fail, fix rm."""
    found = doctor.check_stale_socket(facts(connection=Connection("refused")))

    assert "fail" == found.status
    assert (found.fix or "").startswith(f"rm {SOCKET}")


# --- daemon and store ----------------------------------------------------------------------------


def test_daemon_down_fails_naming_how_to_start_it() -> None:
    """No socket: the daemon check fails and says how to start helperd, service or not."""
    found = doctor.check_daemon(
        facts(socket_file=PathFacts(SOCKET, "missing"), connection=Connection("missing"))
    )

    assert "fail" == found.status
    assert "systemctl --user start helperd.socket" in (found.fix or "")
    assert "helperd &" in (found.fix or "")


def test_hung_daemon_fails() -> None:
    """A daemon that accepts but never answers fails as hung."""
    found = doctor.check_daemon(facts(connection=Connection("timeout", "no answer within 2 s")))

    assert ("fail", True) == (found.status, "hangs" in found.message)


def test_other_daemon_version_warns() -> None:
    """A daemon of another version answers, with a warning."""
    other = dataclasses.replace(HELLO, version="0.0.9")
    found = doctor.check_daemon(facts(connection=Connection("ok", hello=other, status=OPEN)))

    assert "warn" == found.status


@pytest.mark.parametrize(
    ("changes", "status", "fix"),
    [
        ({"locked": True, "lockable": True, "repositories": None}, "warn", "helperctl unlock"),
        ({"initialized": False, "lockable": True, "repositories": None}, "warn", "helperctl init"),
        ({}, "ok", None),
    ],
)
def test_store(changes: dict[str, Any], status: str, fix: str | None) -> None:
    """A locked store or none yet warns with the command that opens or makes it."""
    state = dataclasses.replace(OPEN, **changes)
    found = doctor.check_store(facts(connection=Connection("ok", hello=HELLO, status=state)))

    assert (status, fix) == (found.status, found.fix)


def test_store_unknown_while_daemon_down() -> None:
    """Without a daemon the store is unknown: a warning, not a second failure."""
    found = doctor.check_store(facts(connection=Connection("missing")))

    assert "warn" == found.status


def test_key_file_error_fails_with_the_command_from_the_message() -> None:
    """The daemon's own key-file message is shown, and the command in it is the fix."""
    message = "key file /srv/key is open to group or others (mode 0644): run `chmod 600 /srv/key`"
    found = doctor.check_key_file(facts(key_file=Path("/srv/key"), key_error=message))

    assert ("fail", message, "chmod 600 /srv/key") == (found.status, found.message, found.fix)


def test_bad_config_fails() -> None:
    """A config.toml the daemon would refuse fails the config check."""
    found = doctor.check_config(facts(config_error="config.toml: store: bad value"))

    assert ("fail", "config.toml: store: bad value") == (found.status, found.message)


# --- keyring -------------------------------------------------------------------------------------


def test_no_poetry_warns() -> None:
    """No poetry on PATH is a warning, not a failure."""
    found = doctor.check_poetry(facts(poetry=KeyringProbe("poetry", "absent")))

    assert "warn" == found.status


def test_plugin_missing_in_poetry_fails_with_poetry_self_add() -> None:
    """Poetry's Python without helperd's plugin fails, says what it picks, and the fix is
    `poetry self add`."""
    bare = probe("poetry", plugin=False, backend="SecretService Keyring", backend_class="x.Y")
    found = doctor.check_poetry(facts(poetry=bare))

    assert "fail" == found.status
    assert "not installed" in found.message
    assert "SecretService Keyring" in found.message
    assert (found.fix or "").startswith("poetry self add helperd-client")


def test_plugin_missing_in_keyring_cli_fails_with_pip_install() -> None:
    """The keyring CLI's Python without the plugin fails; the fix installs it with that Python."""
    bare = probe("keyring", plugin=False, backend="fail Keyring", backend_class="f.K")
    found = doctor.check_keyring_cli(facts(keyring_cli=bare))

    assert "fail" == found.status
    assert "/opt/keyring/bin/python -m pip install helperd-client" in (found.fix or "")


def test_plugin_steps_aside_while_daemon_down() -> None:
    """With the plugin installed but helperd down, another backend is picked: a warning."""
    other = probe("poetry", backend="fail Keyring", backend_class="keyring.backends.fail.Keyring")
    found = doctor.check_poetry(facts(poetry=other, connection=Connection("missing")))

    assert "warn" == found.status


def test_another_backend_forced_while_daemon_runs_fails() -> None:
    """With helperd running and the plugin installed, another backend means it was forced."""
    other = probe("keyring", backend="fail Keyring", backend_class="keyring.backends.fail.Keyring")
    found = doctor.check_keyring_cli(facts(keyring_cli=other))

    assert "fail" == found.status
    assert "PYTHON_KEYRING_BACKEND" in (found.fix or "")


def test_hanging_keyring_probe_fails() -> None:
    """An interpreter that cannot pick a backend in time is the hang Poetry users meet: fail."""
    found = doctor.check_poetry(facts(poetry=probe("poetry", state="timeout", error="10 s")))

    assert "fail" == found.status


def test_pip_skipping_its_own_keyring_for_one_without_plugin_fails() -> None:
    """pip skips the keyring in its own environment; the one it would run lacks the plugin."""
    chosen = probe("keyring", plugin=False, program=Path("/b/keyring"), python=Path("/b/python"))
    pip = PipFacts(Path("/a/pip"), Path("/a"), Path("/a/keyring"), Path("/b/keyring"), chosen)
    found = doctor.check_pip(facts(pip=pip))

    assert "fail" == found.status
    assert "skips /a/keyring" in found.message
    assert "would run /b/keyring" in found.message


def test_pip_with_no_other_keyring_warns() -> None:
    """When pip's own keyring is the only one, pip would find none: a warning with the fix,
    which suggests pipx only where pipx is installed, else a venv and pip."""
    alone = PipFacts(Path("/a/pip"), Path("/a"), Path("/a/keyring"))
    with_pipx = doctor.check_pip(facts(pip=alone, pipx=True))
    without = doctor.check_pip(facts(pip=alone, pipx=False))

    assert ("warn", "warn") == (with_pipx.status, without.status)
    assert "pipx install keyring && pipx inject keyring ./client" in (with_pipx.fix or "")
    assert "pipx" not in (without.fix or "")
    assert "python3 -m venv" in (without.fix or "")


def test_poetry_with_helperd_says_how_to_store_a_token() -> None:
    """When Poetry picks helperd, its line says to store a token with helperctl set --token
    --password-stdin, since `poetry config pypi-token.NAME` takes the token only as an argument."""
    found = doctor.check_poetry(facts())

    assert "ok" == found.status
    assert "helperctl set NAME --token --password-stdin" in found.message


# --- auth.toml -----------------------------------------------------------------------------------


def test_plaintext_secrets_are_counted() -> None:
    """Two secrets in auth.toml warn with the count and point at import-poetry."""
    auth = AuthFacts(Path("/p/auth.toml"), "ok", secrets=2)
    found = doctor.check_auth_toml(facts(auth=auth))

    assert ("warn", "/p/auth.toml holds 2 plaintext secrets") == (found.status, found.message)
    assert (found.fix or "").startswith("helperctl import-poetry")


def test_entries_import_poetry_leaves_are_warned_about() -> None:
    """An entry import-poetry cannot move (``password = 1234``) is not called clean."""
    auth = AuthFacts(Path("/p/auth.toml"), "ok", secrets=0, left=1)
    found = doctor.check_auth_toml(facts(auth=auth))

    assert "warn" == found.status
    assert "1 entry with a password or token that import-poetry cannot move" in found.message
    assert "--dry-run" in (found.fix or "")


def test_auth_facts_count_without_values(tmp_path: Path) -> None:
    """gather's auth.toml reader counts two passwords and a token; the values go nowhere."""
    (tmp_path / "auth.toml").write_text(
        '[http-basic.a]\nusername = "u"\npassword = "pw-one"\n'
        '[http-basic.b]\nusername = "v"\npassword = "pw-two"\n'
        '[pypi-token]\nc = "tok-three"\n'
    )
    auth = doctor_facts.auth_facts({"POETRY_CONFIG_DIR": str(tmp_path)})

    assert AuthFacts(tmp_path / "auth.toml", "ok", secrets=3) == auth


def test_backups_left_by_an_import_are_warned_about(tmp_path: Path) -> None:
    """auth.toml rewritten clean, but its editor's backup (``auth.toml~``) still holds both
    secrets and vim's swap file may: doctor warns with the count and the ``rm`` that ends it,
    never a value; a backup holding no secret is not named."""
    (tmp_path / "auth.toml").write_text('[http-basic.a]\nusername = "u"\n')
    (tmp_path / "auth.toml~").write_text(
        '[http-basic.a]\nusername = "u"\npassword = "pw-one"\n[pypi-token]\nc = "tok-two"\n'
    )
    (tmp_path / ".auth.toml.swp").write_bytes(b"b0VIM 9.0\x00\xff\x00password")
    (tmp_path / "auth.toml.orig").write_text('[http-basic.a]\nusername = "u"\n')

    auth = doctor_facts.auth_facts({"POETRY_CONFIG_DIR": str(tmp_path)})
    found = doctor.check_auth_toml(facts(auth=auth))

    backup, swap = tmp_path / "auth.toml~", tmp_path / ".auth.toml.swp"
    assert ((backup, 2), (swap, None)) == auth.backups
    assert "warn" == found.status
    assert found.message.startswith(
        f"{backup} holds 2 plaintext secrets; {swap} may hold plaintext secrets (not TOML)"
    )
    assert found.message.endswith(f"{tmp_path / 'auth.toml'} holds no plaintext secret")
    assert f"rm -- {shlex.quote(str(backup))} {swap}" in (found.fix or "")
    assert "pw-one" not in found.message + (found.fix or "")


def test_backups_beside_secrets_still_in_auth_toml() -> None:
    """With secrets in auth.toml too, the import comes first, then the ``rm``."""
    backups = ((Path("/p/auth.toml~"), 1),)
    auth = AuthFacts(Path("/p/auth.toml"), "ok", secrets=2, backups=backups)
    found = doctor.check_auth_toml(facts(auth=auth))

    assert "warn" == found.status
    assert found.message.endswith("; /p/auth.toml~ holds 1 plaintext secret")
    assert (found.fix or "").startswith("helperctl import-poetry")
    assert (found.fix or "").endswith("then `rm -- '/p/auth.toml~'`")


# --- probes --------------------------------------------------------------------------------------


def fake_python(folder: Path, body: str) -> Path:
    """A shell script standing in for a Python: it ignores ``-c CODE`` and runs ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    python = folder / "python"
    python.write_text(f"#!/bin/sh\n{body}\n")
    python.chmod(0o755)
    return python


def fake_tool(folder: Path, name: str, python: Path) -> Path:
    """A console script ``name`` whose #! line names ``python``."""
    tool = folder / name
    tool.write_text(f"#!{python}\nimport sys\n")
    tool.chmod(0o755)
    return tool


def answer(plugin: bool, backend: str, backend_class: str) -> str:
    """The line the probe prints, as a shell ``echo``."""
    data = {"plugin": plugin, "backend": backend, "backend_class": backend_class, "error": None}
    return f"echo 'HELPERD-DOCTOR {json.dumps(data)}'"


def test_probe_reads_the_interpreter_from_the_shebang(tmp_path: Path) -> None:
    """The probe runs the Python named by the tool's #! line and reads its answer."""
    python = fake_python(tmp_path / "env", answer(False, "SecretService Keyring", "k.S"))
    tool = fake_tool(tmp_path / "env", "keyring", python)

    found = doctor.probe_program("keyring", tool, {"PATH": "/usr/bin:/bin"}, 5.0)

    assert (
        KeyringProbe("keyring", "ok", tool, python, False, "SecretService Keyring", "k.S") == found
    )


def test_probe_is_bounded(tmp_path: Path) -> None:
    """An interpreter that never answers is killed after the limit and reported as timeout."""
    python = fake_python(tmp_path / "env", "sleep 30")
    tool = fake_tool(tmp_path / "env", "poetry", python)

    started = time.monotonic()
    found = doctor.probe_program("poetry", tool, {"PATH": "/usr/bin:/bin"}, 0.5)

    assert "timeout" == found.state
    assert time.monotonic() - started < 5


def test_probe_of_a_non_python_program(tmp_path: Path) -> None:
    """A shell wrapper with no python beside it cannot be probed: no-python."""
    tool = tmp_path / "poetry"
    tool.write_text("#!/bin/sh\nexec true\n")

    assert "no-python" == doctor.probe_program("poetry", tool, {}, 1.0).state


def test_pip_facts_skip_pips_own_keyring(tmp_path: Path) -> None:
    """pip's choice is the first keyring on PATH outside pip's own environment."""
    own = tmp_path / "venv"
    python = fake_python(own, answer(True, "h", PLUGIN))
    fake_tool(own, "pip", python)
    fake_tool(own, "keyring", python)
    other = tmp_path / "pipx"
    other.mkdir()
    fake_tool(other, "keyring", python)
    search = f"{own}{os.pathsep}{other}"

    found = doctor_facts.pip_facts(search, {"PATH": search}, 5.0)

    assert (own / "keyring", other / "keyring") == (found.first, found.chosen)
    assert found.probe is not None
    assert found.probe.picks_helperd


def test_pip_facts_keep_a_keyring_outside_pips_environment(tmp_path: Path) -> None:
    """A keyring that is not in pip's own scripts folder is the one pip runs: no second probe."""
    own = tmp_path / "venv"
    python = fake_python(own, answer(True, "h", PLUGIN))
    fake_tool(own, "pip", python)
    other = tmp_path / "pipx"
    other.mkdir()
    fake_tool(other, "keyring", python)
    search = f"{other}{os.pathsep}{own}"

    found = doctor_facts.pip_facts(search, {"PATH": search}, 5.0)

    assert (other / "keyring", other / "keyring", None) == (found.first, found.chosen, found.probe)


# --- the command ---------------------------------------------------------------------------------


def run_doctor(monkeypatch: pytest.MonkeyPatch, made: Facts, *args: str) -> Any:
    """Run ``helperctl doctor`` on ``made`` instead of gathered facts."""
    monkeypatch.setattr(doctor, "gather", lambda **_: made)
    return CliRunner().invoke(cli, ["doctor", *args])


def test_text_output_and_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """One line per check, `STATUS  name: message`, a fix line under a problem, exit 1 on a
    failure."""
    broken = facts(socket_file=PathFacts(SOCKET, "socket", 0o666, UID))
    result = run_doctor(monkeypatch, broken)

    assert 1 == result.exit_code
    lines = result.stdout.splitlines()
    failed = lines.index(f"fail  socket: {SOCKET} is mode 0666: it must be 0600")
    assert f"      fix: chmod 600 {SOCKET}" == lines[failed + 1]
    assert "ok    socket-dir: " in lines[0]
    assert f"1 failed, 0 warnings, {len(doctor.CHECKS)} checks" in result.stderr


def test_json_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """--json prints a list of {name, status, message, fix}; warnings alone exit 0."""
    result = run_doctor(monkeypatch, facts(poetry=KeyringProbe("poetry", "absent")), "--json")

    assert 0 == result.exit_code
    data = json.loads(result.stdout)
    assert len(doctor.CHECKS) == len(data)
    assert {"name", "status", "message", "fix"} == set(data[0])
    assert "warn" == next(d["status"] for d in data if d["name"] == "poetry-keyring")


def test_help_has_examples() -> None:
    """--help of doctor exits 0 and shows examples."""
    result = CliRunner().invoke(cli, ["doctor", "--help"])

    assert 0 == result.exit_code
    assert "helperctl doctor" in result.stdout.split("Examples:")[1]


def test_shim_check(tmp_path: Path) -> None:
    """The shim check says whether helperd's shim is first on PATH and what stands behind it."""
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
    (first / "keyring").write_text(f"#!/bin/sh\n{shim.MARKER}\n")
    (first / "keyring").chmod(0o755)
    alone = doctor.check_shim(facts(shim=doctor_facts.ShimFacts.of(str(first))))
    assert "warn" == alone.status
    assert "no real keyring behind it" in alone.message
    assert "pipx" not in (alone.fix or "")
    (second / "keyring").write_text("#!/bin/sh\nexit 0\n")
    (second / "keyring").chmod(0o755)
    backed = doctor.check_shim(facts(shim=doctor_facts.ShimFacts.of(f"{first}:{second}")))
    assert "ok" == backed.status
    assert str(second / "keyring") in backed.message
    assert "ok" == doctor.check_shim(facts()).status


def test_daemon_at_the_old_path_says_how_to_move() -> None:
    """A helperd of ours still at an older version's path: warn, stop it by PID, start again."""
    old = OldSocket(Path("/tmp/helperd-1000/helperd.sock"), pid=4321, uid=UID)
    found = doctor.check_old_socket(facts(old_sockets=(old,)))
    assert "warn" == found.status
    assert (found.fix or "").startswith("kill 4321, then start helperd again")
    assert str(old.path) in found.message
    assert str(SOCKET) in found.message


def test_another_users_listener_at_the_old_path_fails() -> None:
    """Another UID listening at an old path is named as not yours."""
    old = OldSocket(Path("/tmp/helperd-1000/helperd.sock"), pid=4321, uid=65534)
    found = doctor.check_old_socket(facts(old_sockets=(old,)))
    assert ("fail", True) == (found.status, "uid 65534" in found.message)


def test_untrusted_socket_fails_the_daemon_check() -> None:
    """A connection refused by the client-side checks fails, quoting them."""
    detail = "refusing to use the helperd socket /x/helperd.sock: /x belongs to another user"
    found = doctor.check_daemon(facts(connection=Connection("untrusted", detail)))
    assert ("fail", detail) == (found.status, found.message)
