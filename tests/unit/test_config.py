"""Settings are resolved once: flags over HELPERD_* over config.toml over defaults."""

from __future__ import annotations

import os
import pwd
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from helperd_client.errors import BadRequestError

from helperd.core.config import Settings, cert_folder, idle_exit_seconds
from helperd.daemon.main import main as daemon_main
from tests.support.tools import require_root


def test_defaults_under_helperd_home(home: Path) -> None:
    """With only HELPERD_HOME, everything lives in it and the defaults apply."""
    settings = Settings.resolve(env={"HELPERD_HOME": str(home)})
    assert (home / "helperd.sock", home, home) == (
        settings.socket_path,
        settings.config_dir,
        settings.data_dir,
    )
    assert ("auto", "info", timedelta(minutes=15), None) == (
        settings.store,
        settings.log_level,
        settings.idle_lock,
        settings.key_file,
    )
    assert home / "store.enc" == settings.store_file


def test_precedence_flag_env_file(home: Path) -> None:
    """A flag beats HELPERD_STORE, which beats config.toml."""
    (home / "config.toml").write_text('store = "keyring"\nlog_level = "debug"\n')
    env = {"HELPERD_HOME": str(home)}
    assert "keyring" == Settings.resolve(env=env).store
    assert "file" == Settings.resolve(env={**env, "HELPERD_STORE": "file"}).store
    assert "auto" == Settings.resolve(env={**env, "HELPERD_STORE": "file"}, store="auto").store
    assert "debug" == Settings.resolve(env=env).log_level


def test_config_file_values(home: Path) -> None:
    """config.toml sets timeouts, the connection cap and the idle lock (0 turns it off)."""
    (home / "config.toml").write_text(
        "idle_lock_seconds = 0\nread_timeout = 5\nmax_connections = 10\nkeyring_timeout = 0.5\n"
    )
    settings = Settings.resolve(env={"HELPERD_HOME": str(home)})
    assert (None, 5.0, 10, 0.5) == (
        settings.idle_lock,
        settings.read_timeout,
        settings.max_connections,
        settings.keyring_timeout,
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("stroe = 'file'\n", id="typo-key"),
        pytest.param("store = 'cloud'\n", id="bad-choice"),
        pytest.param("read_timeout = -1\n", id="negative"),
        pytest.param("this is not toml\n", id="not-toml"),
    ],
)
def test_bad_config_is_refused_clearly(home: Path, text: str) -> None:
    """An unknown key, a bad value or broken TOML is an error naming the file."""
    (home / "config.toml").write_text(text)
    with pytest.raises(BadRequestError, match=r"config\.toml"):
        Settings.resolve(env={"HELPERD_HOME": str(home)})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("stroe = 'file'\n", "stroe: unknown key (did you mean store?)", id="near"),
        pytest.param(
            "colour = 'red'\n",
            "colour: unknown key (known keys: backlog, cert_files_on_disk,",
            id="far",
        ),
        pytest.param(
            "[upstream]\naddress = 'https://bao'\ntoken_file = '/t'\nmout = 'kv'\n",
            "upstream.mout: unknown key (did you mean mount?)",
            id="in-a-table",
        ),
    ],
)
def test_an_unknown_key_names_the_one_meant(home: Path, text: str, expected: str) -> None:
    """A typo in a key is answered with the nearest key of its table, or the list of them."""
    (home / "config.toml").write_text(text)
    with pytest.raises(BadRequestError) as caught:
        Settings.resolve(env={"HELPERD_HOME": str(home)})
    assert expected in caught.value.message


def test_bad_store_variable(home: Path) -> None:
    """HELPERD_STORE must be auto, keyring or file."""
    with pytest.raises(BadRequestError, match="HELPERD_STORE"):
        Settings.resolve(env={"HELPERD_HOME": str(home), "HELPERD_STORE": "cloud"})


def test_key_file_from_systemd_credentials(home: Path) -> None:
    """$CREDENTIALS_DIRECTORY/helperd.key is the key file when present; HELPERD_KEY_FILE wins."""
    (home / "helperd.key").write_bytes(b"k" * 32)
    env = {"HELPERD_HOME": str(home), "CREDENTIALS_DIRECTORY": str(home)}
    assert home / "helperd.key" == Settings.resolve(env=env).key_file
    other = home / "other.key"
    assert other == Settings.resolve(env={**env, "HELPERD_KEY_FILE": str(other)}).key_file


def test_socket_flag_wins(home: Path) -> None:
    """--socket beats the environment rule."""
    flag = home / "x.sock"
    assert flag == Settings.resolve(env={"HELPERD_HOME": str(home)}, socket=flag).socket_path


def test_group_writable_config_is_refused(home: Path) -> None:
    """A config.toml that group or others can write is refused, naming the chmod that fixes it."""
    config = home / "config.toml"
    config.write_text("idle_lock_seconds = 0\n")
    config.chmod(0o664)
    with pytest.raises(BadRequestError) as refused:
        Settings.resolve(env={"HELPERD_HOME": str(home)})
    assert (
        f"{config} can be written by group or others (mode 0664): refusing to read it;"
        f" run `chmod go-w {config}`"
    ) == refused.value.message


def test_config_owned_by_another_user_is_refused(home: Path) -> None:
    """A config.toml another user owns (here nobody) is refused, naming the owner found."""
    require_root("gives a file to nobody")
    config = home / "config.toml"
    config.write_text("idle_lock_seconds = 0\n")
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(config, nobody, -1)
    with pytest.raises(BadRequestError) as refused:
        Settings.resolve(env={"HELPERD_HOME": str(home)})
    assert f"{config} belongs to another user (uid {nobody})" in refused.value.message
    assert f"run `chown {os.getuid()} {config}`" in refused.value.message


def test_cert_folder_is_one_per_home_and_stable() -> None:
    """The default home keeps ``certs``; a HELPERD_HOME gets ``certs-<hash>`` of its absolute
    path, the same at every start (tools keep the path), another for another home."""
    run = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    default = cert_folder(run)
    one = cert_folder({**run, "HELPERD_HOME": "/tmp/job-1"})
    assert Path("/run/user/1000/helperd/certs") == default
    assert one == cert_folder({**run, "HELPERD_HOME": "/tmp/job-1/"})
    assert one.parent == default.parent
    assert one.name.startswith("certs-")
    assert len({default, one, cert_folder({**run, "HELPERD_HOME": "/tmp/job-2"})}) == 3


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_a_bad_idle_exit_is_refused_naming_the_variable(value: str) -> None:
    """HELPERD_IDLE_EXIT that is not a number of seconds: the daemon refuses it naming the
    variable (not --idle-exit, which the user never typed), and doctor's config check too."""
    result = CliRunner().invoke(daemon_main, [], env={"HELPERD_IDLE_EXIT": value})
    assert 2 == result.exit_code
    assert f"HELPERD_IDLE_EXIT={value!r} is not a number of seconds" in result.output
    with pytest.raises(BadRequestError, match="HELPERD_IDLE_EXIT"):
        Settings.resolve(env={"HELPERD_HOME": "/nonexistent", "HELPERD_IDLE_EXIT": value})
    assert 30.0 == idle_exit_seconds("30")
