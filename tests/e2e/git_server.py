"""A private git server on 127.0.0.1: git's own ``git http-backend`` behind HTTP Basic auth.

`running_git_server` serves the bare repositories under a folder at
``http://127.0.0.1:PORT/NAME.git``. A request without the right ``Authorization`` header is
answered ``401`` with a ``WWW-Authenticate: Basic`` challenge (so git asks its credential
helpers); an authenticated one runs ``git http-backend`` as a CGI program, exactly as Apache
or nginx would. `make_package_repo` writes a bare repository holding a tiny package that pip
and uv build offline with setuptools.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["PACKAGE", "GitServer", "make_package_repo", "running_git_server"]

PACKAGE = "helperd-git-e2e"
"""The package in the served repository: a name that exists on no index."""

MODULE = "helperd_git_e2e"
CGI_TIMEOUT = 60.0
_CLEAN_GIT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def _git(*args: str, cwd: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), **_CLEAN_GIT, "GIT_TERMINAL_PROMPT": "0"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=60)


def make_package_repo(root: Path, name: str = "pkg") -> Path:
    """A bare repository ``root/NAME.git`` whose ``main`` holds the package `PACKAGE`."""
    work = root / f"{name}-work"
    (work / MODULE).mkdir(parents=True)
    (work / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        f'\n[project]\nname = "{PACKAGE}"\nversion = "0.1.0"\n'
        f'\n[tool.setuptools]\npackages = ["{MODULE}"]\n'
    )
    (work / MODULE / "__init__.py").write_text('"""Served only by helperd\'s git e2e server."""\n')
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.name=e2e", "-c", "user.email=e2e@invalid", "commit", "-qm", "init", cwd=work)
    bare = root / f"{name}.git"
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    return bare


@dataclass
class GitServer:
    """A running server, the folder of its repositories and the one account it accepts."""

    port: int
    root: Path
    username: str
    password: str

    def url(self, repo: str = "pkg") -> str:
        """``http://127.0.0.1:PORT/REPO.git``."""
        return f"http://127.0.0.1:{self.port}/{repo}.git"


def _handler(server: GitServer, backend: Path) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{server.username}:{server.password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests assert outcomes, not access logs

        def _serve(self) -> None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="helperd e2e git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            env = {
                "PATH": "/usr/bin:/bin",
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": server.username,
                "REMOTE_ADDR": self.client_address[0],
                "GATEWAY_INTERFACE": "CGI/1.1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                **_CLEAN_GIT,
            }
            done = subprocess.run(
                [str(backend)],
                input=body,
                env=env,
                capture_output=True,
                timeout=CGI_TIMEOUT,
                check=False,
            )
            head, cut, payload = done.stdout.partition(b"\r\n\r\n")
            if not cut:  # CGI allows bare newlines between the headers and the body
                head, _, payload = done.stdout.partition(b"\n\n")
            status, headers = 200, []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextlib.contextmanager
def running_git_server(root: Path, username: str, password: str) -> Iterator[GitServer]:
    """Serve the bare repositories under ``root`` to ``username``/``password`` only."""
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    if not backend.is_file():
        raise RuntimeError(f"git has no http-backend at {backend}")
    served = GitServer(0, root, username, password)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served, backend))
    served.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, name="git-server", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=30)
