"""A real authenticated package index: pypiserver with an htpasswd file, on 127.0.0.1.

It serves one private package, `PACKAGE`, whose name exists nowhere else, so an install that
succeeds proves the credentials reached the index. pypiserver answers 401 to a request
without credentials and 403 to wrong ones (pip and uv ask keyring only after a 401).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MODULE", "PACKAGE", "VERSION", "Index", "build_wheel", "running_index"]

PACKAGE = "helperd-e2e-privpkg"
MODULE = "helperd_e2e_privpkg"
VERSION = "1.0.0"
START_TIMEOUT = 30.0

_HTPASSWD = """
import json, sys
from passlib.hash import apr_md5_crypt
for user, password in json.load(sys.stdin).items():
    print(f"{user}:{apr_md5_crypt.hash(password)}")
"""


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def build_wheel(
    folder: Path, name: str = PACKAGE, version: str = VERSION, requires: Sequence[str] = ()
) -> Path:
    """Write a pure-Python wheel (with a correct RECORD) into ``folder``: the private package,
    or another one named ``name`` that depends on ``requires`` (the bench's several packages)."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    depends = "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    files = {
        f"{module}/__init__.py": (
            f'"""Served only by the helperd e2e index."""\n\nVERSION = "{version}"\n'
        ),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: A private package for helperd's end-to-end tests\n"
            f"Requires-Python: >=3.8\n{depends}"
        ),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: helperd-e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{member},{_record_hash(text.encode())},{len(text.encode())}"
        for member, text in files.items()
    ]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, text in files.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), text)
    return path


@dataclass
class Index:
    """A running pypiserver and the credentials it accepts."""

    port: int
    packages: Path
    process: subprocess.Popen[bytes]
    log: Path
    username: str = "alice"
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    @property
    def netloc(self) -> str:
        """``127.0.0.1:PORT``, the form tools use as a keyring service."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The simple index URL, with its trailing slash."""
        return f"http://{self.netloc}/simple/"

    @property
    def upload_url(self) -> str:
        """Where ``poetry publish`` and twine upload."""
        return f"http://{self.netloc}/"

    def url_with_user(self, username: str | None = None) -> str:
        """The simple URL with a username (never a password) in its userinfo."""
        return f"http://{username or self.username}@{self.netloc}/simple/"

    def status(self, auth: tuple[str, str] | None = None) -> int:
        """The HTTP status of the simple page for the private package."""
        request = urllib.request.Request(f"{self.url}{PACKAGE}/")  # noqa: S310 - http only
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code

    def log_tail(self) -> str:
        """The end of pypiserver's log (for failure messages)."""
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop pypiserver's process group by PID: SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextlib.contextmanager
def running_index(pypiserver_env: Path, workdir: Path, *wheels: Path) -> Iterator[Index]:
    """Serve ``wheels`` with basic auth for every action; stop the server afterwards.

    Users: ``alice`` with a random password and ``__token__`` with a random token (the way
    ``poetry publish`` sends an API token).
    """
    python = str(pypiserver_env / "bin" / "python")
    # Never starting with "-", which `poetry config http-basic NAME USER PASSWORD` would take
    # for an option (token_urlsafe's first character is "-" one time in 64).
    password = "pw-" + secrets.token_urlsafe(18)
    token = f"pypi-{secrets.token_urlsafe(24)}"
    htpasswd = workdir / "htpasswd"
    users = json.dumps({"alice": password, "__token__": token})
    lines = subprocess.run(
        [python, "-c", _HTPASSWD],
        input=users,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    htpasswd.write_text(lines)
    packages = workdir / "packages"
    packages.mkdir()
    for wheel in wheels:
        (packages / wheel.name).write_bytes(wheel.read_bytes())
    log = workdir / "pypiserver.log"
    for _attempt in range(3):  # the free port may be taken between the probe and the bind
        port = _free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [
                    str(pypiserver_env / "bin" / "pypi-server"),
                    *("run", "--host", "127.0.0.1", "--port", str(port)),
                    *("--passwords", str(htpasswd), "--authenticate", "update,download,list"),
                    *("--disable-fallback", "--server", "auto", str(packages)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        index = Index(port, packages, process, log, password=password, token=token)
        try:
            if _wait_ready(index):
                yield index
                return
        finally:
            _stop(process)
    raise RuntimeError(f"pypiserver did not start: {index.log_tail()}")


def _wait_ready(index: Index) -> bool:
    """Wait until the index answers 401 without credentials; False when the server died."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if index.process.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            if index.status() == 401:
                return True
        time.sleep(0.1)
    raise RuntimeError(f"pypiserver did not answer within {START_TIMEOUT} s: {index.log_tail()}")
