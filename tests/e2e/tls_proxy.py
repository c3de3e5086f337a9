"""A TLS front for the test index on 127.0.0.1 that requires a client certificate.

Python's ``ssl`` with ``CERT_REQUIRED`` and the test CA: a client without a certificate the CA
signed fails the handshake and never reaches pypiserver. Behind the handshake the bytes are
copied both ways unchanged, one thread per direction, so HTTP keep-alive works as usual.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TlsProxy", "running_proxy"]

HANDSHAKE_TIMEOUT = 10.0


@dataclass
class TlsProxy:
    """The proxy's port and what it saw.

    Attributes:
        port: where it listens on 127.0.0.1.
        refused: handshakes that failed (no or an unknown client certificate).
        served: connections that got through to the index.
    """

    port: int
    refused: list[str] = field(default_factory=list)
    served: int = 0

    def url(self, userinfo: str = "") -> str:
        """The simple index URL through the proxy, with ``user:password@`` when given."""
        at = f"{userinfo}@" if userinfo else ""
        return f"https://{at}127.0.0.1:{self.port}/simple/"


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _serve_one(conn: socket.socket, context: ssl.SSLContext, backend: int, proxy: TlsProxy) -> None:
    conn.settimeout(HANDSHAKE_TIMEOUT)
    try:
        tls = context.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as exc:
        proxy.refused.append(type(exc).__name__ + ": " + str(exc)[:200])
        conn.close()
        return
    tls.settimeout(None)
    proxy.served += 1
    upstream = socket.create_connection(("127.0.0.1", backend), timeout=HANDSHAKE_TIMEOUT)
    upstream.settimeout(None)
    back = threading.Thread(target=_pipe, args=(upstream, tls), daemon=True)
    back.start()
    _pipe(tls, upstream)
    back.join(timeout=60)
    for end in (tls, upstream):
        end.close()


@contextlib.contextmanager
def running_proxy(
    backend: int, server_cert: Path, server_key: Path, client_ca: Path
) -> Iterator[TlsProxy]:
    """Listen on 127.0.0.1 (a free port) in front of ``127.0.0.1:backend`` until the block ends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    context.load_verify_locations(client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)  # accept() wakes up to see that the block ended
    proxy = TlsProxy(port=int(listener.getsockname()[1]))
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue  # look at `stopping` again
            except OSError:
                return
            args = (conn, context, backend, proxy)
            threading.Thread(target=_serve_one, args=args, daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield proxy
    finally:
        stopping.set()
        listener.close()
        acceptor.join(timeout=5)
