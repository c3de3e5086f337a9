"""The service-manager files in systemd/ and launchd/: what they say, and what the tools say.

The units are rendered by ``helperctl install-service``'s own renderer (``@HELPERD@``
becomes this venv's ``helperd``) into a temporary folder, then checked with
``systemd-analyze verify`` and ``systemd-analyze security --offline=yes``, which work
without systemd as PID 1. The launchd plist is only parsed: launchd runs on macOS alone.
"""

from __future__ import annotations

import os
import plistlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helperd_client import Client
from helperd_client.paths import socket_path

from helperd.core.config import Settings, cert_folder
from helperd.integrations import units
from helperd.testing import daemon_env, start_daemon
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
PLIST = ROOT / "launchd" / "com.helperd.agent.plist"

USER_UNITS = ("helperd.socket", "helperd.service")
SYSTEM_UNITS = ("helperd@.socket", "helperd@.service")
INSTANCE = "alice"

# The exposure scores docs/service.md gives; a change that raises one fails here.
USER_EXPOSURE = 3.6
SYSTEM_EXPOSURE = 0.2


def settings_of(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of every setting in a unit file, in order (keys may repeat)."""
    section = ""
    found = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(path: Path, section: str, key: str) -> list[str]:
    """Every value ``key`` has in ``section`` of a unit file."""
    return [v for s, k, v in settings_of(path) if (s, k) == (section, key)]


def render(name: str, folder: Path, instance: str | None = None) -> Path:
    """Write the unit ``name`` into ``folder`` as install-service renders it, with this
    venv's ``helperd`` (`helperd.integrations.units.render_unit`)."""
    text = units.render_unit(name, units.helperd_executable())
    target = folder / (name.replace("@.", f"@{instance}.") if instance else name)
    target.write_text(text)
    return target


@pytest.fixture
def folder() -> Iterator[Path]:
    """A temporary folder for rendered units (and a runtime folder for the user manager)."""
    with tempfile.TemporaryDirectory(prefix="hdunits") as path:
        yield Path(path)


def analyze(folder: Path, *args: str, user: bool) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze in ``folder``; a user manager needs XDG_RUNTIME_DIR to exist."""
    tool = require_tool("systemd-analyze")
    runtime = folder / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_PAGER": "", "LC_ALL": "C"}
    command = [tool, *(["--user"] if user else []), *args]
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False
    )


class TestVerify:
    def test_user_units_are_clean(self, folder: Path) -> None:
        """systemd-analyze --user verify has nothing to say about the rendered user units."""
        for name in USER_UNITS:
            render(name, folder)
        result = analyze(folder, "verify", *USER_UNITS, user=True)
        assert (0, "", "") == (result.returncode, result.stdout, result.stderr)

    def test_system_template_is_clean(self, folder: Path) -> None:
        """systemd-analyze verify has nothing to say about an instance of the template."""
        names = [render(name, folder, INSTANCE).name for name in SYSTEM_UNITS]
        result = analyze(folder, "verify", *names, user=False)
        assert (0, "", "") == (result.returncode, result.stdout, result.stderr)

    def test_an_unrendered_unit_is_refused(self, folder: Path) -> None:
        """The placeholder cannot run by mistake: verify rejects the unit as it is stored."""
        for name in USER_UNITS:
            (folder / name).write_text((SYSTEMD / name).read_text())
        result = analyze(folder, "verify", *USER_UNITS, user=True)
        assert 0 != result.returncode
        assert "@HELPERD@" in result.stderr


class TestSecurity:
    @pytest.mark.parametrize(
        ("name", "user", "limit"),
        [
            ("helperd.service", True, USER_EXPOSURE),
            ("helperd@.service", False, SYSTEM_EXPOSURE),
        ],
    )
    def test_exposure(self, folder: Path, name: str, user: bool, limit: float) -> None:
        """systemd-analyze security --offline=yes rates each service at most its recorded
        exposure (docs/service.md)."""
        unit = render(name, folder, INSTANCE if "@" in name else None)
        result = analyze(
            folder,
            "security",
            "--offline=yes",
            f"--threshold={round(limit * 10)}",
            "--no-pager",
            unit.name,
            user=user,
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
        assert match is not None, result.stdout + result.stderr
        assert float(match[1]) <= limit
        assert 0 == result.returncode, result.stdout[-2000:] + result.stderr


class TestUserUnits:
    def test_socket(self) -> None:
        """The socket is where every client looks by default, 0600 in a 0700 folder,
        handed over under the name helperd and removed when the socket unit stops."""
        unit = SYSTEMD / "helperd.socket"
        assert ["%t/helperd/helperd.sock"] == values(unit, "Socket", "ListenStream")
        assert ["0600"] == values(unit, "Socket", "SocketMode")
        assert ["0700"] == values(unit, "Socket", "DirectoryMode")
        assert ["helperd"] == values(unit, "Socket", "FileDescriptorName")
        assert ["yes"] == values(unit, "Socket", "RemoveOnStop")
        assert ["sockets.target"] == values(unit, "Install", "WantedBy")
        runtime = "/run/user/1000"
        rendered = values(unit, "Socket", "ListenStream")[0].replace("%t", runtime)
        assert socket_path({"XDG_RUNTIME_DIR": runtime}) == Path(rendered)

    def test_service(self) -> None:
        """The service notifies, runs the rendered helperd and is hardened as docs say."""
        unit = SYSTEMD / "helperd.service"
        expected = {
            "Type": "notify",
            "ExecStart": "@HELPERD@",
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "RestrictAddressFamilies": "AF_UNIX",
            "LimitCORE": "0",
            "UMask": "0077",
        }
        assert expected == {key: values(unit, "Service", key)[0] for key in expected}
        assert ["helperd.socket"] == values(unit, "Unit", "Requires")

    def test_writable_paths_are_the_store_folders(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """ReadWritePaths= (and the folders made before start) are exactly where the
        daemon keeps config.toml and its store, with the default XDG folders, plus the
        runtime folder where it writes client-certificate files (made by the socket unit)."""
        monkeypatch.setenv("HOME", str(tmp_path))
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
            monkeypatch.delenv(name, raising=False)
        settings = Settings.resolve(env={})
        unit = SYSTEMD / "helperd.service"
        [writable] = values(unit, "Service", "ReadWritePaths")
        made = values(unit, "Service", "ExecStartPre")[0].split()[-2:]
        expected = {settings.config_dir, settings.data_dir}
        paths = writable.split()
        assert "-%t/helperd" == paths[-1]
        assert cert_folder({"XDG_RUNTIME_DIR": "%t"}).parent == Path(paths[-1].lstrip("-"))
        assert expected == {Path(p.replace("%h", str(tmp_path))) for p in paths[:-1]}
        assert expected == {Path(p.replace("%h", str(tmp_path))) for p in made}


class TestSystemTemplate:
    def test_socket_and_service_agree(self) -> None:
        """The socket is the user's, 0600, in a folder of their own; the service runs as
        that user and tells helperd (and so `status`) the same socket path."""
        socket_unit = SYSTEMD / "helperd@.socket"
        service = SYSTEMD / "helperd@.service"
        [listen] = values(socket_unit, "Socket", "ListenStream")
        assert "/run/helperd/%i/helperd.sock" == listen
        assert ["%i"] == values(socket_unit, "Socket", "SocketUser")
        assert ["0600"] == values(socket_unit, "Socket", "SocketMode")
        assert ["helperd"] == values(socket_unit, "Socket", "FileDescriptorName")
        assert "install -d -m 0700 -o %i /run/helperd/%i" in values(
            socket_unit, "Socket", "ExecStartPre"
        )
        assert ["%i"] == values(service, "Service", "User")
        assert ["notify"] == values(service, "Service", "Type")
        environment = dict(v.partition("=")[::2] for v in values(service, "Service", "Environment"))
        assert listen == environment["HELPERD_SOCKET"]
        assert "file" == environment["HELPERD_STORE"]
        assert "%S/helperd/%i" == environment["HELPERD_HOME"]
        assert ["helperd/%i"] == values(service, "Service", "StateDirectory")
        # Certificate files: beside the socket, writable, not in the service's private /dev/shm.
        assert "/run/helperd/%i" == environment["XDG_RUNTIME_DIR"]
        assert ["-/run/helperd/%i"] == values(service, "Service", "ReadWritePaths")
        assert ["0700"] == values(service, "Service", "StateDirectoryMode")

    def test_key_comes_from_a_credential_named_helperd_key(self) -> None:
        """The key is the credential helperd.key, which the daemon finds by itself in
        $CREDENTIALS_DIRECTORY."""
        service = SYSTEMD / "helperd@.service"
        assert ["helperd.key:/etc/helperd/%i.key.cred"] == values(
            service, "Service", "LoadCredentialEncrypted"
        )
        with tempfile.TemporaryDirectory(prefix="hdcred") as credentials:
            key = Path(credentials) / "helperd.key"
            key.write_bytes(os.urandom(32))
            env = {"HELPERD_HOME": "/var/lib/helperd/alice", "CREDENTIALS_DIRECTORY": credentials}
            assert key == Settings.resolve(env=env).key_file


class TestProvisioning:
    """docs/service.md's recipe for the template's key, as far as it runs without PID 1."""

    def test_encrypted_credential_reaches_the_daemon(self, home: Path) -> None:
        """A key encrypted with systemd-creds under the name helperd.key decrypts as
        LoadCredentialEncrypted=helperd.key:... does it, and a daemon with that credential
        directory (and HELPERD_STORE=file, as the unit sets) opens its store with it."""
        tool = require_tool("systemd-creds")
        # A host key of the test's own, instead of /var/lib/systemd/credential.secret.
        env = {**os.environ, "SYSTEMD_CREDENTIAL_SECRET": str(home / "host.secret")}
        cred = home / "alice.key.cred"
        key = os.urandom(32)
        encrypt = [tool, "encrypt", "--with-key=host", "--name=helperd.key", "-", str(cred)]
        subprocess.run(encrypt, input=key, env=env, check=True, capture_output=True)
        assert key not in cred.read_bytes()

        credentials = home / "credentials"
        credentials.mkdir(mode=0o700)
        decrypt = [tool, "decrypt", "--name=helperd.key", str(cred), "-"]
        plain = subprocess.run(decrypt, env=env, check=True, capture_output=True).stdout
        assert key == plain
        (credentials / "helperd.key").write_bytes(plain)
        (credentials / "helperd.key").chmod(0o400)

        extra = {"HELPERD_STORE": "file", "CREDENTIALS_DIRECTORY": str(credentials)}
        daemon = start_daemon(home, env=extra)
        try:
            with daemon.client() as client:
                client.set("acme", "s3cret", username="alice")
                assert "s3cret" == client.get(name="acme").password
                assert "credentials/helperd.key" in client.status().store_reason
        finally:
            daemon.stop()

    def test_a_credential_needs_the_name_helperd_key(self, home: Path) -> None:
        """Encrypted without --name=helperd.key, the credential carries its file name and
        systemd refuses to load it as helperd.key."""
        tool = require_tool("systemd-creds")
        env = {**os.environ, "SYSTEMD_CREDENTIAL_SECRET": str(home / "host.secret")}
        source = home / "alice.key"
        source.write_bytes(os.urandom(32))
        cred = home / "alice.key.cred"
        subprocess.run(
            [tool, "encrypt", "--with-key=host", str(source), str(cred)],
            env=env,
            check=True,
            capture_output=True,
        )
        decrypt = [tool, "decrypt", "--name=helperd.key", str(cred), "-"]
        result = subprocess.run(decrypt, env=env, capture_output=True, text=True, check=False)
        assert 0 != result.returncode
        assert "does not match" in result.stderr


class TestLaunchd:
    """Parsed only: launchd and launch_activate_socket exist on macOS alone."""

    def test_plist(self) -> None:
        """A socket-activated agent: helperd, one stream Unix socket, mode 0600, started on
        the first connection rather than at load."""
        with PLIST.open("rb") as handle:
            agent = plistlib.load(handle)
        assert "com.helperd.agent" == agent["Label"]
        assert ["@HELPERD@"] == agent["ProgramArguments"]
        assert False is agent["RunAtLoad"]
        listeners = agent["Sockets"]["Listeners"]
        assert 0o600 == listeners["SockPathMode"] == 384
        assert ("stream", "Unix") == (listeners["SockType"], listeners["SockFamily"])
        assert "@SOCKET@" == listeners["SockPathName"]
        assert listeners["SockPathName"] == agent["EnvironmentVariables"]["HELPERD_SOCKET"]
        assert "@LOG@" == agent["StandardErrorPath"]

    def test_renders_to_a_valid_plist(self, tmp_path: Path) -> None:
        """Rendered through plistlib, paths with XML-special characters stay intact."""
        odd = Path("/Users/a&b <c>/helperd.sock")
        helperd = units.helperd_executable()
        data = units.render_plist(helperd, odd, tmp_path / "helperd.log")
        assert b"@" not in data.replace(b"com.helperd.agent", b"")
        agent = plistlib.loads(data)
        assert str(odd) == agent["Sockets"]["Listeners"]["SockPathName"]
        assert str(odd) == agent["EnvironmentVariables"]["HELPERD_SOCKET"]
        assert [str(helperd)] == agent["ProgramArguments"]


# Runs its arguments with writable executable memory refused by the kernel (PR_SET_MDWE,
# Linux 6.3+): what MemoryDenyWriteExecute=yes enforces. Exits 77 where the kernel cannot.
MDWE = """
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""
MDWE_PROBE = """
import mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    raise SystemExit(0)
raise SystemExit(1)
"""


def test_daemon_tolerates_memory_deny_write_execute(home: Path) -> None:
    """The units set MemoryDenyWriteExecute=yes: the daemon serves a passphrase store
    (Argon2id) while the kernel refuses it writable executable memory."""
    under_mdwe = [sys.executable, "-c", MDWE, sys.executable]
    probe = subprocess.run([*under_mdwe, "-c", MDWE_PROBE], check=False)
    if probe.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later has it)")
    assert 0 == probe.returncode, "W+X memory was not refused: the emulation is not in force"
    with (home / "daemon.log").open("ab") as log:
        process = subprocess.Popen(
            [*under_mdwe, "-m", "helperd", "--store", "file"],
            env=daemon_env(home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 20
        while not (home / "helperd.sock").exists():
            assert process.poll() is None, (home / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.02)
        with Client(home / "helperd.sock", timeout=20) as client:
            client.init("correct horse battery staple")
            client.set("acme", "s3cret", username="alice")
            client.lock()
            client.unlock("correct horse battery staple")
            assert "s3cret" == client.get(name="acme").password
    finally:
        process.terminate()
        process.wait(15)
    assert 0 == process.returncode
