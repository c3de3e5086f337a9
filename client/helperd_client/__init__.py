"""helperd_client: talk to the helperd credential daemon.

Light on purpose: the stdlib only at import (keyring tools import every plugin at start-up).

    from helperd_client import Client
    with Client() as client:
        cred = client.get(url="https://pkgs.example.test/simple/")
"""

from __future__ import annotations

from helperd_client.errors import (
    BadPassphraseError,
    BadRequestError,
    BusyError,
    DaemonNotRunningError,
    DaemonUnreachableError,
    ForbiddenError,
    HelperdError,
    InternalError,
    LockedError,
    NotFoundError,
    ProtocolMismatchError,
    StoreUnavailableError,
    TooLargeError,
    UnknownOpError,
    UnsupportedVersionError,
    UntrustedSocketError,
)
from helperd_client.paths import socket_path

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from typing import Any

    from helperd_client.client import (
        DEFAULT_TIMEOUT,
        Client,
        Credential,
        Hello,
        RecordInfo,
        Status,
    )

__version__ = "0.1.0"

_LAZY = frozenset({"DEFAULT_TIMEOUT", "Client", "Credential", "Hello", "RecordInfo", "Status"})


def __getattr__(name: str) -> Any:
    # The client module (sockets, json, dataclasses) loads on first use, not when keyring
    # imports the plugin at every tool's start-up.
    if name in _LAZY:
        from helperd_client import client  # noqa: PLC0415

        return getattr(client, name)
    raise AttributeError(f"module 'helperd_client' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TIMEOUT",
    "BadPassphraseError",
    "BadRequestError",
    "BusyError",
    "Client",
    "Credential",
    "DaemonNotRunningError",
    "DaemonUnreachableError",
    "ForbiddenError",
    "Hello",
    "HelperdError",
    "InternalError",
    "LockedError",
    "NotFoundError",
    "ProtocolMismatchError",
    "RecordInfo",
    "Status",
    "StoreUnavailableError",
    "TooLargeError",
    "UnknownOpError",
    "UnsupportedVersionError",
    "UntrustedSocketError",
    "__version__",
    "socket_path",
]
