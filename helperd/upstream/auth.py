"""Logging in to the upstream secret engine: a token file, or AppRole with renewal.

Both read their files at each login (a rotated secret_id or a token an agent rewrote is picked
up) with the key file's rule (`helperd.stores.keys.read_private_file`): the user's own 0600 or
0400 file, or a systemd credential. Tokens live only in the hvac client's memory.

AppRole: the token is renewed once half its TTL has passed (so well before it ends), and a new
one is obtained by logging in again when renewal is refused, when the renewed TTL is cut short
by the role's ``token_max_ttl``, or when the token has already expired. A token file's token is
renewed the same way; when its engine refuses, that is `TokenNotRenewableError`, since helperd
cannot make a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import hvac
import hvac.exceptions
from helperd_client.errors import StoreUnavailableError

from helperd.stores.keys import read_private_file
from helperd.upstream.errors import (
    AppRoleLoginError,
    SecretFileError,
    TokenNotRenewableError,
    TokenRejectedError,
)

__all__ = ["AppRoleAuth", "Auth", "TokenFileAuth", "read_secret_file"]

MAX_SECRET_FILE_BYTES = 16 * 1024
"""Tokens, role_ids and secret_ids are short; anything larger is the wrong file."""

_REFUSED = (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest)


class Auth(Protocol):
    """How the engine client gets a usable token."""

    def authenticate(self, client: hvac.Client) -> list[str]:
        """Give ``client`` a usable token; return warnings a person should act on.

        Raises:
            UpstreamError: the login or renewal failed in a way a person must fix; the
                transport's errors (engine down, TLS) pass through for the caller to map.
        """
        ...


def read_secret_file(path: Path, setting: str) -> str:
    """The text of a token, role_id or secret_id file, without surrounding whitespace.

    Args:
        path: the file (relative: under ``$CREDENTIALS_DIRECTORY``, which was not set).
        setting: its config.toml name, for messages (``secret_id_file``).

    Raises:
        SecretFileError: the file is relative, missing, unsafe, too large or empty.
    """
    if not path.is_absolute():
        raise SecretFileError(
            f"upstream {setting} {path} is relative, so it is read from $CREDENTIALS_DIRECTORY,"
            " which is not set: give an absolute path, or hand the file over with systemd's"
            " LoadCredential="
        )
    try:
        data = read_private_file(
            path,
            what=f"upstream {setting}",
            setting=f"[upstream] {setting}",
            missing_hint=f"create it (mode 0600), or point [upstream] {setting} at it",
            max_bytes=MAX_SECRET_FILE_BYTES,
        )
    except StoreUnavailableError as exc:
        raise SecretFileError(exc.message) from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"upstream {setting} {path} is not UTF-8 text") from None
    if not text:
        raise SecretFileError(f"upstream {setting} {path} is empty")
    return text


class _Lease:
    """A token's lifetime, on a monotonic clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.first = 0.0  # the TTL the token came with
        self.ttl = 0.0  # the TTL of the last login or renewal; 0: never expires
        self.since = 0.0
        self.renewable = False

    def set(self, auth: dict[str, Any], *, first: bool) -> None:
        self.ttl = float(auth.get("lease_duration") or 0)
        self.renewable = bool(auth.get("renewable"))
        self.since = self._clock()
        if first:
            self.first = self.ttl

    def elapsed(self) -> float:
        return self._clock() - self.since

    def half_gone(self) -> bool:
        return self.ttl > 0 and self.elapsed() >= self.ttl / 2

    def ended(self) -> bool:
        return self.ttl > 0 and self.elapsed() >= self.ttl


class AppRoleAuth:
    """AppRole login (role_id + secret_id), with the token renewed and re-obtained.

    Attributes:
        logins: how many logins succeeded (for status and tests).
        renewals: how many renewals succeeded.
    """

    def __init__(
        self,
        role_id_file: Path,
        secret_id_file: Path,
        address: str,
        *,
        mount: str = "approle",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._role_id_file = role_id_file
        self._secret_id_file = secret_id_file
        self._address = address
        self._mount = mount
        self._lease = _Lease(clock)
        self._have_token = False
        self.logins = 0
        self.renewals = 0

    def authenticate(self, client: hvac.Client) -> list[str]:
        """Log in, or renew the token once half its TTL is gone; log in again when renewal
        is refused or cut short. Returns no warnings.

        Raises:
            SecretFileError: a file is missing or unsafe.
            AppRoleLoginError: the engine refused the role_id/secret_id.
        """
        if self._have_token and not self._lease.half_gone():
            return []
        if self._have_token and self._lease.renewable and not self._lease.ended():
            try:
                renewed = client.auth.token.renew_self()
            except _REFUSED:
                pass  # refused (expired, past token_max_ttl): log in again below
            else:
                self._lease.set(renewed["auth"], first=False)
                self.renewals += 1
                # token_max_ttl caps a renewal: a TTL under half the first one means the end
                # is near, so a fresh login now beats a failed read later.
                if self._lease.ttl >= self._lease.first / 2:
                    return []
        self._login(client)
        return []

    def _login(self, client: hvac.Client) -> None:
        self._have_token = False
        role_id = read_secret_file(self._role_id_file, "role_id_file")
        secret_id = read_secret_file(self._secret_id_file, "secret_id_file")
        try:
            answer = client.auth.approle.login(
                role_id=role_id, secret_id=secret_id, mount_point=self._mount
            )
        except _REFUSED:
            raise AppRoleLoginError(
                f"upstream secret engine {self._address} refused the AppRole login: the"
                f" secret_id in {self._secret_id_file} has expired, was used up or is wrong,"
                f" or the role_id in {self._role_id_file} is wrong; issue a new secret_id"
                " (`bao write -f auth/approle/role/ROLE/secret-id`) and write it to that file"
            ) from None
        self._lease.set(answer["auth"], first=True)
        self._have_token = True
        self.logins += 1


class TokenFileAuth:
    """A token read from ``token_file`` at each refresh, renewed once half its TTL is gone.

    Attributes:
        renewals: how many renewals succeeded.
    """

    def __init__(self, token_file: Path, address: str) -> None:
        self._file = token_file
        self._address = address
        self.renewals = 0

    def authenticate(self, client: hvac.Client) -> list[str]:
        """Use the file's token; renew it when half its TTL is gone.

        Returns:
            A warning when the token cannot be renewed and half its TTL is gone.

        Raises:
            SecretFileError: the file is missing or unsafe.
            TokenRejectedError: the engine refuses the token.
            TokenNotRenewableError: the token is renewable but the engine refused to renew it.
        """
        client.token = read_secret_file(self._file, "token_file")
        try:
            info = client.auth.token.lookup_self()["data"]  # holds the token: never logged
        except _REFUSED:
            raise TokenRejectedError(
                f"upstream secret engine {self._address} refused the token in {self._file}:"
                " it has expired, was revoked or is wrong; write a valid token to that file"
            ) from None
        ttl, first = int(info.get("ttl") or 0), int(info.get("creation_ttl") or 0)
        if ttl <= 0 or ttl > first / 2:
            return []
        if not info.get("renewable"):
            warning = (
                f"the token in {self._file} is not renewable and expires in {ttl} s: write"
                " a new token to that file before then, or use AppRole"
            )
            return [warning]
        try:
            client.auth.token.renew_self()
        except _REFUSED:
            raise TokenNotRenewableError(
                f"upstream secret engine {self._address} refused to renew the token in"
                f" {self._file} (it expires in {ttl} s): give its policy `update` on"
                " auth/token/renew-self, or write a new token to that file"
            ) from None
        self.renewals += 1
        return []
