"""A short-lived-token index for the provider tests: an auth gate in front of pypiserver, and
the provider that mints its tokens.

`TokenGate` listens on 127.0.0.1 and passes a request on to pypiserver (with alice's
credentials) only when it carries, as basic auth, ``USERNAME`` and a token the provider minted
less than ``lifetime`` seconds ago; anything else gets 401 (no or unknown credentials) or 403
(a token past its lifetime), the way a cloud index answers an expired token. pypiserver does
re-read its htpasswd when it changes, but that file holds one password per user: rotating it
at each run would refuse the previous token at once, while a cloud index accepts every token
until it expires (and a tool may still be using the previous one).

`PROVIDER_SCRIPT` is the provider command: each run appends a fresh random token and the time
to the gate's token file, counts itself in a runs file, and prints the token alone (text).
"""

from __future__ import annotations

import base64
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.e2e.index import Index

__all__ = ["PROVIDER_SCRIPT", "USERNAME", "Minted", "TokenGate", "token_gate"]

USERNAME = "aws"
"""The username the tokens go with (as CodeArtifact's)."""

PROVIDER_SCRIPT = """#!{python}
import pathlib, secrets, sys, time
state = pathlib.Path(sys.argv[1])
with (state / "runs").open("a") as runs:
    runs.write(f"{{time.time()}}\\n")
if (state / "fail").exists():
    print("AccessDenied: the session expired", file=sys.stderr)
    sys.exit(255)
token = "short-" + secrets.token_urlsafe(24)
with (state / "tokens").open("a") as tokens:
    tokens.write(f"{{time.time()}} {{token}}\\n")
print(token)
"""


@dataclass(frozen=True)
class Minted:
    """One token the provider printed."""

    at: float
    token: str = field(repr=False)


@dataclass
class TokenGate:
    """The gate's address, its provider's state folder, and what it has seen."""

    port: int
    state: Path
    lifetime: float
    used: set[str] = field(default_factory=set, repr=False)
    refused: list[int] = field(default_factory=list)

    @property
    def netloc(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The simple index URL behind the gate."""
        return f"http://{self.netloc}/simple/"

    def url_with_user(self) -> str:
        """The simple URL with the username (never a token) in its userinfo."""
        return f"http://{USERNAME}@{self.netloc}/simple/"

    @property
    def runs(self) -> list[float]:
        """When the provider ran, in order."""
        path = self.state / "runs"
        return [float(t) for t in path.read_text().split()] if path.exists() else []

    @property
    def minted(self) -> list[Minted]:
        """Every token the provider minted, in order."""
        path = self.state / "tokens"
        if not path.exists():
            return []
        lines = (line.split() for line in path.read_text().splitlines())
        return [Minted(float(at), token) for at, token in lines]

    def fail(self, failing: bool) -> None:
        """Make the provider fail (exit 255, like a logged-out cloud CLI) or work again."""
        flag = self.state / "fail"
        if failing:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def allows(self, token: str, now: float) -> int:
        """The status a request with ``token`` gets at ``now``: 0 to pass it on, else 401/403."""
        for minted in self.minted:
            if minted.token == token:
                return 0 if now - minted.at < self.lifetime else 403
        return 401


def _handler(gate: TokenGate, index: Index) -> type[BaseHTTPRequestHandler]:
    upstream = "Basic " + base64.b64encode(f"{index.username}:{index.password}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 401
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, token = base64.b64decode(header[6:]).decode().partition(":")
                if user == USERNAME:
                    status = gate.allows(token, time.time())
                    if status == 0:
                        gate.used.add(token)
            if status:
                gate.refused.append(status)
                self.send_response(status)
                self.send_header("WWW-Authenticate", 'Basic realm="gate"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._forward(index, upstream)

        def _forward(self, index: Index, upstream: str) -> None:
            request = urllib.request.Request(f"http://{index.netloc}{self.path}")
            request.add_header("Authorization", upstream)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
                    status, body = answer.status, answer.read()
                    kind = answer.headers.get("Content-Type", "application/octet-stream")
            except urllib.error.HTTPError as exc:
                status, body, kind = exc.code, exc.read(), "text/plain"
                exc.close()
            body = body.replace(index.netloc.encode(), gate.netloc.encode())
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Handler


@contextmanager
def token_gate(index: Index, state: Path, lifetime: float) -> Iterator[TokenGate]:
    """Run a gate in front of ``index`` accepting tokens younger than ``lifetime`` seconds."""
    state.mkdir(parents=True, exist_ok=True)
    gate = TokenGate(0, state, lifetime)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gate, index))
    gate.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gate
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
