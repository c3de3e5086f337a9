"""The ``keyring`` shim's pieces: which calls it serves, what it prints, where it hands calls on,
and the ``keyring`` file that ``helperctl install-shim`` writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import helperd_client
import pytest
from click.testing import CliRunner
from helperd_client import shim
from helperd_client.names import EMPTY_USERNAME, POETRY_CHECK
from helperd_client.shim import MARKER, Lookup, find_real_keyring, format_answer, parse

from helperd.ctl.main import cli
from helperd.integrations import shim_install

# --- parsing: the served forms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["get", "S", "u"], Lookup("S", "u", creds=False, json=False)),
        (["get", "S", "--mode", "creds"], Lookup("S", None, creds=True, json=False)),
        (["get", "S", "--mode=creds"], Lookup("S", None, creds=True, json=False)),
        (["--mode", "creds", "get", "S", "u"], Lookup("S", "u", creds=True, json=False)),
        (
            ["--mode=creds", "--output=json", "get", "S"],
            Lookup("S", None, creds=True, json=True),
        ),
        (
            ["--mode=creds", "--output=json", "get", "S", "u"],
            Lookup("S", "u", creds=True, json=True),
        ),
        (
            ["--output", "json", "--mode", "creds", "get", "S"],
            Lookup("S", None, creds=True, json=True),
        ),
        (["--mode=password", "get", "S", "u"], Lookup("S", "u", creds=False, json=False)),
        (["--output=plain", "get", "S", "u"], Lookup("S", "u", creds=False, json=False)),
    ],
)
def test_served_forms_parse(argv: list[str], expected: Lookup) -> None:
    """pip's and uv's forms, options before or after the positionals, parse to one lookup."""
    assert expected == parse(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--help"],
        ["-h"],
        ["set", "S", "u"],
        ["del", "S", "u"],
        ["diagnose"],
        ["get", "S"],  # password mode needs a username: the real CLI prints its usage error
        ["get"],
        ["get", "S", "u", "extra"],
        ["get", "S", "u", "--output", "json"],  # {"password": ...}: not a form pip or uv uses
        ["-b", "keyring.backends.null.Keyring", "get", "S", "u"],
        ["--keyring-backend=x", "get", "S", "u"],
        ["-p", "/tmp", "get", "S", "u"],
        ["--list-backends"],
        ["--disable"],
        ["--mode", "bogus", "get", "S", "u"],
        ["--output", "yaml", "--mode", "creds", "get", "S"],
        ["--mode"],
        ["--mod", "creds", "get", "S"],  # argparse abbreviations: the real CLI's business
        ["get", "--", "S", "u"],
        ["get", "-", "u"],
        ["GET", "S", "u"],
    ],
)
def test_everything_else_is_handed_on(argv: list[str]) -> None:
    """Any other call, or a served one with an unknown option, goes to the real keyring."""
    assert parse(argv) is None


# --- output: what the real CLI prints ---------------------------------------------------------


def test_password_form_prints_the_password_line() -> None:
    """``get S U`` prints the password and a newline."""
    assert "s3cret\n" == format_answer(Lookup("S", "u", creds=False, json=False), "u", "s3cret")


def test_creds_form_prints_two_lines() -> None:
    """``--mode creds`` prints the username, then the password."""
    assert "alice\ns3cret\n" == format_answer(
        Lookup("S", None, creds=True, json=False), "alice", "s3cret"
    )


def test_json_form_is_jsons_default_dump() -> None:
    """``--output json`` is ``json.dumps`` with its defaults: ASCII escapes, ", " and ": "."""
    out = format_answer(Lookup("S", None, creds=True, json=True), "alïce", 'p"w é')
    assert '{"username": "al\\u00efce", "password": "p\\"w \\u00e9"}\n' == out
    assert {"username": "alïce", "password": 'p"w é'} == json.loads(out)


# --- forwarding: finding the real keyring ------------------------------------------------------


def _exe(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_find_real_keyring_skips_own_file_and_other_shims(tmp_path: Path) -> None:
    """The search skips the shim itself, any file with the shim's marker and non-executables."""
    own = _exe(tmp_path / "a" / "keyring", f"#!/bin/sh\n{MARKER}\n")
    other_shim = _exe(tmp_path / "b" / "keyring", f"#!/bin/sh\n{MARKER}\n")
    plain = tmp_path / "c" / "keyring"
    plain.parent.mkdir()
    plain.write_text("not executable")
    real = _exe(tmp_path / "d" / "keyring")
    path_env = os.pathsep.join(str(p.parent) for p in (own, other_shim, plain, real))
    assert str(real) == find_real_keyring(path_env, str(own))
    assert find_real_keyring(os.pathsep.join(str(p.parent) for p in (own, other_shim))) is None
    assert find_real_keyring(None) is None


def test_find_real_keyring_skips_own_file_through_a_symlink(tmp_path: Path) -> None:
    """A symlink to the running shim is the shim too."""
    own = _exe(tmp_path / "a" / "keyring")
    link_dir = tmp_path / "b"
    link_dir.mkdir()
    (link_dir / "keyring").symlink_to(own)
    real = _exe(tmp_path / "c" / "keyring")
    path_env = os.pathsep.join(map(str, (link_dir, real.parent)))
    assert str(real) == find_real_keyring(path_env, str(own))


def test_no_real_keyring_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With nothing behind the shim, a handed-on call exits 127 and names the fix."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(shim.RECURSION_ENV, raising=False)
    assert shim.NO_KEYRING == shim.main(["set", "S", "u"])
    err = capsys.readouterr().err
    assert "no real `keyring` found" in err
    assert "install-shim --uninstall" in err


def test_a_call_that_comes_back_is_not_handed_on_again(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The recursion marker stops a loop of shims handing a call to each other."""
    _exe(tmp_path / "keyring")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(shim.RECURSION_ENV, "1")
    assert shim.NO_KEYRING == shim.main(["del", "S", "u"])
    assert "came back to the shim" in capsys.readouterr().err


def test_unreachable_daemon_hands_the_get_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no socket, a served ``get`` goes to the real keyring instead of answering."""
    monkeypatch.setenv("HELPERD_SOCKET", str(tmp_path / "none.sock"))
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    handed: list[list[str]] = []

    def fake_forward(argv: list[str]) -> int:
        handed.append(argv)
        return 42

    monkeypatch.setattr(shim, "forward", fake_forward)
    assert 42 == shim.main(["get", "S", "u"])
    assert [["get", "S", "u"]] == handed


def test_a_chosen_backend_is_respected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With PYTHON_KEYRING_BACKEND set the user chose a backend: the real keyring answers."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    handed: list[list[str]] = []
    monkeypatch.setattr(shim, "serve", lambda lookup: pytest.fail("served"))

    def fake_forward(argv: list[str]) -> int:
        handed.append(argv)
        return 0

    monkeypatch.setattr(shim, "forward", fake_forward)
    assert 0 == shim.main(["get", "S", "u"])
    assert [["get", "S", "u"]] == handed


def test_poetry_probe_is_not_found_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poetry's availability probe is never answered, as in the plugin, without a request."""
    monkeypatch.setattr(shim, "ask", lambda *a: pytest.fail("asked the daemon"))
    lookup = Lookup(POETRY_CHECK, "python-poetry", creds=False, json=False)
    assert shim.NOT_FOUND == shim.serve(lookup)


def test_empty_username_marker_asks_for_the_empty_username(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Poetry's ``__poetry_source_empty_username__`` asks helperd for username "", as the plugin."""
    asked: list[tuple[str, str | None]] = []

    def fake_ask(service: str, username: str | None, timeout: float) -> None:
        asked.append((service, username))

    monkeypatch.setattr(shim, "ask", fake_ask)
    assert shim.NOT_FOUND == shim.serve(Lookup("S", EMPTY_USERNAME, creds=False, json=False))
    assert [("S", "")] == asked


def test_shim_module_stays_light() -> None:
    """Importing the shim loads neither keyring, platformdirs, asyncio, pydantic, dataclasses,
    typing nor pathlib (``-S``: without site, whose editable-install finders load pathlib)."""
    client = Path(helperd_client.__file__).resolve().parent.parent
    code = (
        f"import sys; sys.path.insert(0, {str(client)!r}); import helperd_client.shim;"
        "bad = {'keyring', 'platformdirs', 'asyncio', 'pydantic', 'dataclasses', 'click',"
        " 'typing', 'pathlib', 'helperd_client.client', 'helperd'} & set(sys.modules);"
        "print(sorted(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    assert "[]\n" == out.stdout


# --- the installed file ---------------------------------------------------------------------


def test_shim_script_uses_the_interpreter_with_lean_flags() -> None:
    """A short interpreter path goes straight into the shebang with -I."""
    text = shim_install.shim_script("/opt/venv/bin/python")
    assert text.startswith("#!/opt/venv/bin/python -I\n")
    assert MARKER in text


def test_shim_script_trampolines_awkward_interpreter_paths(tmp_path: Path) -> None:
    """A path with a space (or too long for a shebang) runs through /bin/sh, and still works."""
    venv = tmp_path / "with space"
    venv.symlink_to(sys.prefix, target_is_directory=True)  # the same venv, by an awkward path
    text = shim_install.shim_script(str(venv / "bin" / Path(sys.executable).name))
    assert text.startswith("#!/bin/sh\n")
    script = _exe(tmp_path / "bin" / "keyring", text)
    env = {"PATH": str(tmp_path / "bin"), "HELPERD_SOCKET": str(tmp_path / "none.sock")}
    done = subprocess.run([script, "--help"], check=False, capture_output=True, text=True, env=env)
    assert shim.NO_KEYRING == done.returncode, done.stderr
    assert "no real `keyring` found" in done.stderr


def test_install_shim_writes_and_uninstall_removes(tmp_path: Path) -> None:
    """install-shim writes an executable ``keyring`` in a new 0755 folder; --uninstall drops it."""
    folder = tmp_path / "bin"
    runner = CliRunner()
    done = runner.invoke(cli, ["install-shim", "--dir", str(folder)])
    assert 0 == done.exit_code, done.output
    target = folder / "keyring"
    assert 0o755 == folder.stat().st_mode & 0o777
    assert 0o755 == target.stat().st_mode & 0o777
    assert target.read_text().startswith(f"#!{sys.executable} -I\n")
    assert f"created {folder}\nwrote {target}\n" in done.stderr  # confirmations: stderr
    assert "" == done.stdout
    again = runner.invoke(cli, ["install-shim", "--dir", str(folder)])
    assert 0 == again.exit_code, again.output
    assert "created" not in again.output

    gone = runner.invoke(cli, ["install-shim", "--dir", str(folder), "--uninstall"])
    assert 0 == gone.exit_code, gone.output
    assert not target.exists()
    nothing = runner.invoke(cli, ["install-shim", "--dir", str(folder), "--uninstall"])
    assert 0 == nothing.exit_code
    assert "no shim" in nothing.output


def test_install_shim_leaves_a_foreign_keyring_alone(tmp_path: Path) -> None:
    """A ``keyring`` that the command did not write is neither overwritten nor removed."""
    foreign = _exe(tmp_path / "keyring", "#!/bin/sh\necho real\n")
    runner = CliRunner()
    for args in (
        ["install-shim", "--dir", str(tmp_path)],
        ["install-shim", "--dir", str(tmp_path), "--uninstall"],
    ):
        done = runner.invoke(cli, args)
        assert 1 == done.exit_code
        assert done.stderr.startswith("helperctl: ")  # as every refusal of helperctl
        assert "not written by helperctl install-shim" in done.stderr
        assert "#!/bin/sh\necho real\n" == foreign.read_text()
