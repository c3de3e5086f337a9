"""helperctl install-service: rendering, plans, the user-manager check, and running a plan.

systemctl and launchctl are stood in for by a fake runner, or by a fake ``systemctl`` script
on PATH; the one real ``systemctl`` test is the missing user manager, which this test
guarantees by leaving XDG_RUNTIME_DIR and the session bus out of the environment.
"""

from __future__ import annotations

import os
import plistlib
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from helperd.ctl.main import cli
from helperd.integrations import units
from helperd.integrations.units import MakeDir, Plan, RemoveFile, Run, ServiceError, WriteFile
from tests.support.tools import require_tool

HELPERD = units.helperd_executable()
HOME = Path("/home/alice")


class FakeRunner:
    """Records every command; answers from ``answers`` (argv prefix -> result), else success."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.answers = answers or {}

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(tuple(argv))
        named = (Path(argv[0]).name, *argv[1:])  # systemctl may come as a full path
        for prefix, (code, out, err) in self.answers.items():
            if tuple(named[: len(prefix)]) == prefix:
                return subprocess.CompletedProcess(list(argv), code, out, err)
        return subprocess.CompletedProcess(list(argv), 0, "", "")


def plan(**overrides: object) -> Plan:
    """A plan with defaults for alice on Linux, with this venv's helperd."""
    args: dict[str, object] = {
        "platform": "linux",
        "system": False,
        "uninstall": False,
        "env": {"XDG_RUNTIME_DIR": "/run/user/1000"},
        "home": HOME,
        "uid": 1000,
        "user": "alice",
        "helperd": HELPERD,
    }
    args.update(overrides)
    return units.plan_service(**args)  # type: ignore[arg-type]


def fake_systemctl(folder: Path, state: str = "running") -> Path:
    """A ``systemctl`` script in ``folder`` that logs its arguments and reports ``state``."""
    folder.mkdir(exist_ok=True)
    log = folder / "systemctl.log"
    script = folder / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        f'if [ "$2" = is-system-running ]; then echo {state}; [ {state} = running ]; fi\n'
    )
    script.chmod(0o755)
    return log


# --- rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*units.USER_UNITS, *units.SYSTEM_UNITS])
def test_render_unit_names_the_installed_helperd(name: str) -> None:
    """Every unit comes out with the real helperd in ExecStart= (or none) and no placeholder."""
    text = units.render_unit(name, HELPERD)

    assert "@HELPERD@" not in text
    if name.endswith(".service"):
        assert f"ExecStart={HELPERD}\n" in text


def test_exec_path_escapes_specifiers_and_quotes_spaces() -> None:
    """A path with a space is quoted, and % and $ are escaped as systemd wants."""
    text = units.render_unit("helperd.service", Path("/opt/my tools/100%/$v/helperd"))

    assert 'ExecStart="/opt/my tools/100%%/$$v/helperd"\n' in text


def test_relative_path_is_refused() -> None:
    """systemd runs absolute paths only: a relative one is refused before anything is written."""
    with pytest.raises(ServiceError, match="absolute path"):
        units.render_unit("helperd.service", Path("bin/helperd"))


def test_quoted_path_passes_systemd_analyze(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit when helperd's path holds a space."""
    tool = require_tool("systemd-analyze")
    spaced = tmp_path / "my tools"
    spaced.mkdir()
    (spaced / "helperd").symlink_to(HELPERD)
    units_dir = tmp_path / "units"
    units_dir.mkdir()
    for name in units.USER_UNITS:
        (units_dir / name).write_text(units.render_unit(name, spaced / "helperd"))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_PAGER": ""}
    result = subprocess.run(
        [tool, "--user", "verify", *units.USER_UNITS],
        cwd=units_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (0, "") == (result.returncode, result.stderr)


def test_render_plist_fills_every_placeholder() -> None:
    """The agent runs helperd, listens and tells helperd the same socket, and logs where asked."""
    socket = Path("/var/folders/xy/T/helperd/helperd.sock")
    log = HOME / "Library" / "Logs" / "helperd.log"
    agent = plistlib.loads(units.render_plist(HELPERD, socket, log))

    assert [str(HELPERD)] == agent["ProgramArguments"]
    assert str(socket) == agent["Sockets"]["Listeners"]["SockPathName"]
    assert str(socket) == agent["EnvironmentVariables"]["HELPERD_SOCKET"]
    assert str(log) == agent["StandardErrorPath"]
    assert 0o600 == agent["Sockets"]["Listeners"]["SockPathMode"]


# --- where things are ----------------------------------------------------------------------------


def test_user_unit_dir_follows_xdg_config_home() -> None:
    """~/.config/systemd/user by default; $XDG_CONFIG_HOME/systemd/user when it is absolute."""
    assert HOME / ".config/systemd/user" == units.user_unit_dir({}, HOME)
    assert Path("/cfg/systemd/user") == units.user_unit_dir({"XDG_CONFIG_HOME": "/cfg"}, HOME)
    assert HOME / ".config/systemd/user" == units.user_unit_dir({"XDG_CONFIG_HOME": "rel"}, HOME)


def test_helperd_executable_prefers_the_one_beside_this_python(tmp_path: Path) -> None:
    """helperd beside the running Python wins over PATH; PATH is the fallback; none is an error."""
    (tmp_path / "helperd").write_text("#!/bin/sh\n")
    (tmp_path / "helperd").chmod(0o755)
    python = str(tmp_path / "python")

    assert tmp_path / "helperd" == units.helperd_executable(executable=python, which=lambda _: None)
    other = str(tmp_path / "elsewhere" / "python")
    found = units.helperd_executable(executable=other, which=lambda _: "/opt/hd/bin/helperd")
    assert Path("/opt/hd/bin/helperd") == found
    with pytest.raises(ServiceError, match="cannot find the helperd executable"):
        units.helperd_executable(executable=other, which=lambda _: None)


@pytest.mark.parametrize(
    ("first_lines", "expected"),
    [
        ("#!/opt/venv/bin/python3\nimport sys\n", "/opt/venv/bin/python3"),
        (
            "#!/bin/sh\n'''exec' \"/long path/bin/python\" \"$0\" \"$@\"\n' '''\n",
            "/long path/bin/python",
        ),
        ("#!/bin/bash\nexec something\n", None),
    ],
)
def test_script_interpreter(tmp_path: Path, first_lines: str, expected: str | None) -> None:
    """The interpreter comes from a direct #! line or pip's /bin/sh launcher; a shell
    wrapper with no python beside it has none."""
    script = tmp_path / "tool"
    script.write_text(first_lines)

    found = units.script_interpreter(script)
    assert expected == (None if found is None else str(found))


def test_script_interpreter_through_env_and_beside(tmp_path: Path) -> None:
    """``#!/usr/bin/env python3`` is looked up on PATH; a binary falls back to the python
    beside it."""
    env_script = tmp_path / "a"
    env_script.write_text("#!/usr/bin/env python3\n")
    assert units.script_interpreter(env_script) is not None
    binary = tmp_path / "b"
    binary.write_bytes(b"\x7fELF\x02\x01")
    (tmp_path / "python").write_text("")
    assert tmp_path / "python" == units.script_interpreter(binary)


# --- plans ---------------------------------------------------------------------------------------


def test_user_install_plan() -> None:
    """Both user units go to ~/.config/systemd/user, then daemon-reload and enable --now."""
    made = plan()

    folder = HOME / ".config/systemd/user"
    writes = [s.path for s in made.steps if isinstance(s, WriteFile)]
    runs = [s.argv for s in made.steps if isinstance(s, Run)]
    assert [folder / "helperd.socket", folder / "helperd.service"] == writes
    assert [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "--now", "helperd.socket"),
    ] == runs
    assert () == made.notes


def test_user_install_notes_a_socket_clients_would_not_find() -> None:
    """HELPERD_SOCKET elsewhere, or another XDG_CONFIG_HOME, gets a note naming the fix."""
    env = {"XDG_RUNTIME_DIR": "/run/user/1000", "HELPERD_SOCKET": "/tmp/x.sock"}
    env["XDG_CONFIG_HOME"] = "/cfg"
    notes = plan(env=env).notes

    assert 2 == len(notes)
    assert "unset HELPERD_SOCKET" in notes[0]
    assert "XDG_CONFIG_HOME is /cfg" in notes[1]


def test_user_uninstall_plan() -> None:
    """Uninstall disables and stops, removes both files, and reloads."""
    made = plan(uninstall=True)

    assert (
        Run(("systemctl", "--user", "disable", "--now", *units.USER_UNITS), False)
        == (made.steps[0])
    )
    folder = HOME / ".config/systemd/user"
    removed = [s.path for s in made.steps if isinstance(s, RemoveFile)]
    assert [folder / "helperd.socket", folder / "helperd.service"] == removed
    assert Run(("systemctl", "--user", "daemon-reload")) == made.steps[-1]


def test_system_plan_installs_the_template_and_says_how_to_provision(tmp_path: Path) -> None:
    """--system writes the template into /etc/systemd/system and prints the key, enable and
    HELPERD_SOCKET steps for helperd@alice."""
    # A helperd of our own, never the one install.sh may have put in /opt/helperd: the plan
    # reads its #! line, and that install's Python is not this test's business.
    helperd = tmp_path / "helperd"
    helperd.write_text("#!/usr/bin/python3\nimport sys\n")
    made = plan(system=True, helperd=helperd)

    writes = [s.path for s in made.steps if isinstance(s, WriteFile)]
    assert [
        Path("/etc/systemd/system/helperd@.socket"),
        Path("/etc/systemd/system/helperd@.service"),
    ] == writes
    assert Run(("systemctl", "daemon-reload")) == made.steps[-1]
    text = "\n".join(made.next_steps)
    assert "systemd-creds encrypt --name=helperd.key - /etc/helperd/alice.key.cred" in text
    assert "systemctl enable --now helperd@alice.socket" in text
    assert "export HELPERD_SOCKET=/run/helperd/alice/helperd.sock" in text
    assert () == made.blockers


def test_system_plan_blocks_a_helperd_in_a_home_folder() -> None:
    """ProtectHome=yes hides /home from the template's service: such a helperd is refused."""
    made = plan(system=True, helperd=Path("/home/alice/.venv/bin/helperd"))

    assert any("ProtectHome=yes" in b for b in made.blockers)


def test_system_plan_blocks_an_interpreter_in_a_home_folder(tmp_path: Path) -> None:
    """A helperd outside /home whose Python lives under /root (pyenv) is refused too."""
    helperd = tmp_path / "helperd"
    helperd.write_text("#!/root/.pyenv/versions/3.11.7/bin/python3.11\nimport sys\n")

    made = plan(system=True, helperd=helperd)

    assert 1 == len(made.blockers)
    assert made.blockers[0].startswith("/root/.pyenv/versions/3.11.7/bin/python3.11 is under")


def test_launchd_plan() -> None:
    """macOS: the socket folder, the rendered plist in LaunchAgents, then bootout (ignored
    when not loaded) and bootstrap into the user's GUI domain."""
    env = {"TMPDIR": "/var/folders/xy/T/"}
    made = plan(platform="darwin", env=env, uid=501)

    plist = HOME / "Library/LaunchAgents/com.helperd.agent.plist"
    assert MakeDir(Path("/var/folders/xy/T/helperd-501"), 0o700) == made.steps[0]
    write = made.steps[1]
    assert isinstance(write, WriteFile)
    assert plist == write.path
    assert str(HELPERD) == plistlib.loads(write.content)["ProgramArguments"][0]
    assert Run(("launchctl", "bootout", "gui/501/com.helperd.agent"), False) == made.steps[2]
    assert Run(("launchctl", "bootstrap", "gui/501", str(plist))) == made.steps[3]


def test_unsupported_setups_are_refused() -> None:
    """--system on macOS, and platforms without a known service manager, say why."""
    with pytest.raises(ServiceError, match="drop --system"):
        plan(platform="darwin", system=True)
    with pytest.raises(ServiceError, match=r"docs/headless\.md"):
        plan(platform="freebsd14")


# --- the user manager ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["running", "degraded"])
def test_a_user_manager_that_answers_is_usable(tmp_path: Path, state: str) -> None:
    """running or degraded both mean a user manager takes units (degraded exits 1)."""
    fake_systemctl(tmp_path)
    runner = FakeRunner({("systemctl",): (0 if state == "running" else 1, f"{state}\n", "")})

    assert units.user_manager_problem({"PATH": str(tmp_path)}, runner) is None


def test_no_user_manager_is_explained(tmp_path: Path) -> None:
    """offline (or a bus error) is reported with what systemctl said and the missing variable."""
    log = fake_systemctl(tmp_path, "offline")
    problem = units.user_manager_problem({"PATH": str(tmp_path)}, units.run_command)

    assert problem is not None
    assert "offline" in problem
    assert "XDG_RUNTIME_DIR is not set" in problem
    assert "--user is-system-running\n" == log.read_text()


def test_no_systemctl_is_explained(tmp_path: Path) -> None:
    """Without systemctl on PATH, the problem says this system does not run systemd."""
    problem = units.user_manager_problem({"PATH": str(tmp_path)}, FakeRunner())

    assert problem is not None
    assert "does not run systemd" in problem


# --- running a plan ------------------------------------------------------------------------------


def test_execute_writes_units_and_runs_commands_in_order(tmp_path: Path) -> None:
    """Files are written 0644 whatever the umask, then the commands run in order."""
    made = plan(env={"XDG_CONFIG_HOME": str(tmp_path), "XDG_RUNTIME_DIR": "/run/user/1000"})
    runner = FakeRunner()
    said: list[str] = []
    old = os.umask(0o077)
    try:
        units.execute(made, run=runner, echo=said.append)
    finally:
        os.umask(old)

    folder = tmp_path / "systemd/user"
    assert ["helperd.service", "helperd.socket"] == sorted(p.name for p in folder.iterdir())
    assert 0o644 == stat.S_IMODE((folder / "helperd.service").stat().st_mode)
    assert f"ExecStart={HELPERD}\n" in (folder / "helperd.service").read_text()
    assert [s.argv for s in made.steps if isinstance(s, Run)] == runner.calls
    assert f"wrote {folder / 'helperd.socket'}" == said[0]


def test_a_failed_command_stops_the_plan(tmp_path: Path) -> None:
    """A failing checked command raises ServiceError with its status and first line of stderr;
    an unchecked one is reported and the plan goes on."""
    made = plan(env={"XDG_CONFIG_HOME": str(tmp_path), "XDG_RUNTIME_DIR": "/run/user/1000"})
    runner = FakeRunner({("systemctl", "--user", "enable"): (1, "", "Unit not found.\nmore")})

    with pytest.raises(ServiceError, match=r"exit status 1\): Unit not found\.$"):
        units.execute(made, run=runner, echo=lambda _: None)

    removal = plan(env={"XDG_CONFIG_HOME": str(tmp_path)}, uninstall=True)
    runner = FakeRunner({("systemctl", "--user", "disable"): (1, "", "not loaded")})
    said: list[str] = []
    units.execute(removal, run=runner, echo=said.append)
    assert any("ignored: not loaded" in line for line in said)
    assert [] == list((tmp_path / "systemd/user").iterdir())


# --- the command ---------------------------------------------------------------------------------


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary XDG_CONFIG_HOME, not created yet, and no session bus or runtime folder."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    for name in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "HELPERD_SOCKET", "HELPERD_HOME"):
        monkeypatch.delenv(name, raising=False)
    return folder


def test_help_has_examples() -> None:
    """--help of install-service exits 0 and shows examples."""
    result = CliRunner().invoke(cli, ["install-service", "--help"])

    assert 0 == result.exit_code
    assert "helperctl install-service --dry-run" in result.stdout.split("Examples:")[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux only")
def test_dry_run_names_the_installed_paths(config_home: Path) -> None:
    """--dry-run prints the installed helperd, the unit files under $XDG_CONFIG_HOME with
    their contents, and the systemctl commands, and creates nothing."""
    result = CliRunner().invoke(cli, ["install-service", "--dry-run"])

    assert 0 == result.exit_code, result.output
    folder = config_home / "systemd" / "user"
    assert f"helperd: {HELPERD}\n" in result.stdout
    assert f"write {folder / 'helperd.socket'} (mode 0644):\n" in result.stdout
    assert f"write {folder / 'helperd.service'} (mode 0644):\n" in result.stdout
    assert f"  | ExecStart={HELPERD}\n" in result.stdout
    assert "run systemctl --user enable --now helperd.socket\n" in result.stdout
    assert not config_home.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux only")
def test_uninstall_dry_run(config_home: Path) -> None:
    """--uninstall --dry-run names what it would disable and remove, and removes nothing."""
    result = CliRunner().invoke(cli, ["install-service", "--uninstall", "--dry-run"])

    assert 0 == result.exit_code, result.output
    folder = config_home / "systemd" / "user"
    assert "run systemctl --user disable --now helperd.socket helperd.service\n" in result.stdout
    assert f"remove {folder / 'helperd.service'} (not there now)\n" in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux only")
def test_system_dry_run_prints_the_template_steps(config_home: Path) -> None:
    """--system --dry-run names the template's paths under /etc/systemd/system and the steps
    for each served user; it needs no root."""
    result = CliRunner().invoke(cli, ["install-service", "--system", "--dry-run"])

    assert 0 == result.exit_code, result.output
    assert "write /etc/systemd/system/helperd@.service (mode 0644):\n" in result.stdout
    assert "run systemctl daemon-reload\n" in result.stdout
    assert "systemd-creds encrypt --name=helperd.key" in result.stdout
    assert "systemctl enable --now helperd@" in result.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux only")
def test_no_user_manager_writes_nothing_and_says_what_to_do(config_home: Path) -> None:
    """With the real systemctl and no runtime folder or session bus (as in a container or an
    SSH login without linger), install-service exits 1 naming loginctl enable-linger and the
    headless recipes, and writes nothing."""
    require_tool("systemctl")
    result = CliRunner().invoke(cli, ["install-service"])

    assert 1 == result.exit_code, result.output
    assert "no systemd user manager is reachable" in result.stderr
    assert "loginctl enable-linger" in result.stderr
    assert "docs/headless.md" in result.stderr
    assert "Traceback" not in result.output
    assert not config_home.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux only")
def test_install_then_uninstall_with_a_user_manager(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a user manager (a fake systemctl that says running), install writes both units and
    enables the socket; uninstall disables and removes them; a second uninstall has nothing
    to do."""
    bin_dir = tmp_path / "bin"
    log = fake_systemctl(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = config_home / "systemd" / "user"

    installed = CliRunner().invoke(cli, ["install-service"])
    assert 0 == installed.exit_code, installed.output
    assert ["helperd.service", "helperd.socket"] == sorted(p.name for p in folder.iterdir())
    assert [
        "--user is-system-running",
        "--user daemon-reload",
        "--user enable --now helperd.socket",
    ] == log.read_text().splitlines()
    assert "starts on the first connection" in installed.stderr

    log.write_text("")
    removed = CliRunner().invoke(cli, ["install-service", "--uninstall"])
    assert 0 == removed.exit_code, removed.output
    assert [] == list(folder.iterdir())
    assert [
        "--user is-system-running",
        "--user disable --now helperd.socket helperd.service",
        "--user daemon-reload",
    ] == log.read_text().splitlines()

    again = CliRunner().invoke(cli, ["install-service", "--uninstall"])
    assert 0 == again.exit_code
    assert "nothing to uninstall" in again.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux only")
def test_uninstall_with_nothing_installed_needs_no_user_manager(config_home: Path) -> None:
    """With no unit files, --uninstall says there is nothing to do and exits 0, even where no
    user manager answers."""
    result = CliRunner().invoke(cli, ["install-service", "--uninstall"])

    assert 0 == result.exit_code, result.output
    assert "nothing to uninstall" in result.stderr
    assert not config_home.exists()
