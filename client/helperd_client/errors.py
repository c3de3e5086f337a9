"""The one error tree shared by the daemon, the client library, helperctl and the keyring plugin.

Each class carries its wire ``code`` (what the daemon sends) and the ``exit_code`` that
``helperctl`` exits with. Messages never contain a secret: callers build them from names,
paths and counts only.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the keyring shim must not import typing
if TYPE_CHECKING:
    from typing import ClassVar

__all__ = [
    "WIRE_CODES",
    "BadPassphraseError",
    "BadRequestError",
    "BusyError",
    "DaemonNotRunningError",
    "DaemonUnreachableError",
    "ForbiddenError",
    "HelperdError",
    "InternalError",
    "LockedError",
    "NotFoundError",
    "ProtocolMismatchError",
    "StoreUnavailableError",
    "TooLargeError",
    "UnknownOpError",
    "UnsupportedVersionError",
    "UntrustedSocketError",
    "error_for_code",
]


class HelperdError(Exception):
    """Base of every helperd error.

    Attributes:
        code: the wire error code (SPEC.md, "Wire protocol").
        exit_code: what ``helperctl`` exits with when this error ends a command.
    """

    code: ClassVar[str] = "internal"
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadRequestError(HelperdError):
    """The request was not valid JSON, or not a valid request."""

    code = "bad_request"
    exit_code = 2


class TooLargeError(HelperdError):
    """A request line was longer than the protocol allows."""

    code = "too_large"
    exit_code = 2


class UnsupportedVersionError(HelperdError):
    """The request named a protocol version the daemon does not speak."""

    code = "unsupported_version"
    exit_code = 1


class UnknownOpError(HelperdError):
    """The request named an operation the daemon does not know."""

    code = "unknown_op"
    exit_code = 2


class NotFoundError(HelperdError):
    """No record matches (an expired record counts as not found)."""

    code = "not_found"
    exit_code = 4


class LockedError(HelperdError):
    """The store is locked: ``helperctl unlock`` opens it."""

    code = "locked"
    exit_code = 5


class BadPassphraseError(LockedError):
    """The passphrase did not open the store, or none is checked for now; it stays locked.

    After too many wrong passphrases in a row, the daemon refuses every passphrase for a while
    without checking it: the message says how long.
    """

    code = "bad_passphrase"
    exit_code = 5


class ForbiddenError(HelperdError):
    """The peer is not allowed to talk to this daemon."""

    code = "forbidden"
    exit_code = 1


class StoreUnavailableError(HelperdError):
    """The store cannot be read or written (missing, damaged, full disk, keyring not answering)."""

    code = "store_unavailable"
    exit_code = 1


class BusyError(HelperdError):
    """The daemon is at its connection cap with every connection in use: try again shortly."""

    code = "busy"
    exit_code = 1


class InternalError(HelperdError):
    """A bug in helperd: the daemon logged the details."""

    code = "internal"
    exit_code = 1


class DaemonUnreachableError(HelperdError):
    """The client could not reach a daemon (no socket, refused, or no answer in time).

    Never sent on the wire: the client raises it.
    """

    code = "unreachable"
    exit_code = 3


class DaemonNotRunningError(DaemonUnreachableError):
    """Nothing listens on the socket (no folder, no socket, or a stale one refusing connections).

    Unlike a daemon that hangs, this is the case where a client may start a daemon on demand.
    """


class UntrustedSocketError(ForbiddenError):
    """The socket's folder, or the process listening on it, is not the caller's own.

    Raised by the client before it sends a byte (SPEC.md, "Security invariants"); never sent
    on the wire. The message names the path and the owner found.
    """


class ProtocolMismatchError(UnsupportedVersionError):
    """Client and daemon speak different protocol versions."""


_BY_CODE: dict[str, type[HelperdError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        TooLargeError,
        UnsupportedVersionError,
        UnknownOpError,
        NotFoundError,
        LockedError,
        BadPassphraseError,
        ForbiddenError,
        StoreUnavailableError,
        BusyError,
        InternalError,
    )
}

WIRE_CODES: tuple[str, ...] = tuple(_BY_CODE)
"""Every error code the daemon may put on the wire."""


def error_for_code(code: str, message: str) -> HelperdError:
    """Rebuild the error a daemon sent; an unknown code becomes a plain `HelperdError`."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return HelperdError(f"{message} (error code {code!r})")
    return cls(message)
