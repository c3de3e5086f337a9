"""The upstream secret engine (OpenBao, Vault) through hvac: log in, check the mount, list the
secrets under the prefix and read each one.

Blocking I/O: call it from a worker thread, never from the event loop. Every HTTP call is
bounded by ``timeout`` (connect and each read); a refresh makes 1 login or token lookup (plus
a renewal when due), 1 mount check, 1 list and 1 read per secret. The transport's and the
engine's errors are mapped here, at the edge, to the typed errors of
`helperd.upstream.errors`, with messages built from the address, paths and files only.
`refresh` never raises: it folds the outcome into a new `UpstreamCache`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hvac
import hvac.exceptions
import requests

from helperd.core.config import UpstreamSettings
from helperd.core.upstream_cache import UpstreamCache
from helperd.core.upstream_record import SecretFormatError, UpstreamSecret, parse_secret
from helperd.upstream.auth import AppRoleAuth, Auth, TokenFileAuth
from helperd.upstream.errors import (
    EngineDownError,
    EngineTLSError,
    KVVersionError,
    PolicyDeniedError,
    UpstreamError,
)

__all__ = ["DEFAULT_TIMEOUT", "Engine", "Fetched", "refresh"]

DEFAULT_TIMEOUT = 5.0
"""Seconds for one HTTP call to connect, and again for each read of its answer."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fetched:
    """What one successful fetch read.

    Attributes:
        secrets: every valid secret under the prefix.
        skipped: one message per secret that is not a valid repository, or folder.
        warnings: what will need attention (a token that cannot be renewed).
    """

    secrets: tuple[UpstreamSecret, ...]
    skipped: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


class Engine:
    """A client of one upstream secret engine, as ``[upstream]`` configures it.

    One fetch at a time: it holds the token and its lease, so give each worker its own
    engine, or call it from one worker thread (the refresh's).

    Args:
        settings: the resolved ``[upstream]`` table.
        timeout: the bound on each HTTP call (connect, and each read).
        auth: how to log in; by default what ``settings`` name (token file or AppRole).
    """

    def __init__(
        self,
        settings: UpstreamSettings,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        auth: Auth | None = None,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self.auth = auth or _auth_of(settings)
        # token="" keeps hvac from reading VAULT_TOKEN or ~/.vault-token: only our auth counts.
        self._client = hvac.Client(
            url=settings.address,
            token="",
            verify=str(settings.ca_file) if settings.ca_file else True,
            timeout=timeout,
            namespace=settings.namespace,
        )
        self._where = settings.address + (
            f" (namespace {settings.namespace})" if settings.namespace else ""
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.adapter.close()

    def fetch(self) -> Fetched:
        """Log in (or renew), check the mount is KV version 2, list the prefix, read each secret.

        A secret deleted upstream (listed but its current version deleted or destroyed) is
        left out; a folder under the prefix and a secret that is no valid repository are
        reported in ``skipped``.

        Raises:
            UpstreamError: any failure; the subclass says which (engine down, TLS, policy,
                AppRole, token, KV version, secret file).
        """
        s = self.settings
        if s.ca_file is not None and not s.ca_file.is_file():
            raise EngineTLSError(
                f"upstream ca_file {s.ca_file} does not exist or is not a file: point"
                " [upstream] ca_file at the PEM bundle of the CA that signed the engine's"
                " certificate"
            )
        with self._mapped(f"auth ({s.auth})", "login"):
            warnings = self.auth.authenticate(self._client)
        self._check_mount()
        listed = f"{s.mount}/metadata/{s.prefix}/"
        with self._mapped(listed, "list"):
            try:
                answer = self._client.secrets.kv.v2.list_secrets(path=s.prefix, mount_point=s.mount)
            except hvac.exceptions.InvalidPath:
                answer = {"data": {"keys": []}}  # nothing under the prefix yet
        secrets, skipped = [], []
        for key in answer["data"]["keys"]:
            if key.endswith("/"):
                skipped.append(
                    f"upstream folder {s.prefix}/{key} is not read: put each repository's"
                    f" secret directly under {s.prefix}/"
                )
                continue
            read = self._read(key)
            if read is None:
                continue  # deleted upstream since the list
            try:
                secrets.append(parse_secret(key, *read))
            except SecretFormatError as exc:
                skipped.append(exc.message)
        return Fetched(tuple(secrets), tuple(skipped), tuple(warnings))

    def write(self, name: str, fields: dict[str, str]) -> None:
        """Write the secret ``name`` under the prefix (a new KV version 2 version).

        Raises:
            UpstreamError: the login failed, the mount is not KV version 2, or the policy
                denies ``create``/``update`` on the secret's path (`PolicyDeniedError`).
        """
        s = self.settings
        with self._mapped(f"auth ({s.auth})", "login"):
            self.auth.authenticate(self._client)
        self._check_mount()
        path = f"{s.mount}/data/{s.prefix}/{name}"
        with self._mapped(path, "update", needs='["create", "update"]'):
            self._client.secrets.kv.v2.create_or_update_secret(
                path=f"{s.prefix}/{name}", secret=fields, mount_point=s.mount
            )

    def _check_mount(self) -> None:
        """Refuse a mount that is not KV version 2: on KV version 1 the v2 paths would only
        ever answer "not found", and every secret would seem deleted."""
        s = self.settings
        with self._mapped(f"{s.mount}/metadata/{s.prefix}/", "list"):
            try:
                mount = self._client.adapter.get(f"/v1/sys/internal/ui/mounts/{s.mount}")
            except hvac.exceptions.InvalidPath:
                mount = {"data": {}}
        data: dict[str, Any] = mount.get("data") or {}
        version = (data.get("options") or {}).get("version")
        if data.get("type") not in ("kv", "generic") or str(version) != "2":
            found = (
                f"a KV version {version or 1} engine"
                if data.get("type") in ("kv", "generic")
                else ("no engine" if not data else f"a {data.get('type')} engine")
            )
            raise KVVersionError(
                f"upstream mount {s.mount}/ at {self._where} is {found}; helperd reads KV"
                f" version 2: upgrade it (`bao kv enable-versioning {s.mount}/`) or point"
                " [upstream] mount at a KV version 2 engine"
            )

    def _read(self, key: str) -> tuple[dict[str, Any], datetime] | None:
        """The fields of secret ``key`` and when its current version was written; None when
        it is deleted or destroyed."""
        s = self.settings
        with self._mapped(f"{s.mount}/data/{s.prefix}/{key}", "read"):
            try:
                answer = self._client.secrets.kv.v2.read_secret_version(
                    path=f"{s.prefix}/{key}", mount_point=s.mount, raise_on_deleted_version=True
                )
            except hvac.exceptions.InvalidPath:
                return None
        data = answer["data"]
        return data.get("data"), _written_at(data.get("metadata") or {})

    @contextmanager
    def _mapped(
        self, path: str, capability: str, needs: str = '["read", "list"]'
    ) -> Iterator[None]:
        """Map hvac's and requests' errors raised inside to typed errors naming the address,
        the path and the capability. The originals are dropped (``from None``): their text
        is the library's, and a login's request carried a secret_id."""
        where = self._where
        try:
            yield
        except UpstreamError:
            raise
        except requests.exceptions.SSLError:
            raise EngineTLSError(
                f"upstream secret engine {where}: TLS failed (the certificate could not be"
                " verified, or the engine does not speak TLS): set [upstream] ca_file to the"
                " CA that signed the engine's certificate, or check the address's scheme"
            ) from None
        except requests.exceptions.Timeout:
            raise EngineDownError(
                f"upstream secret engine {where} did not answer within {self.timeout:g} s"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            why = "refused the connection" if "refused" in str(exc).lower() else "is unreachable"
            raise EngineDownError(f"upstream secret engine {where} {why}: is it running?") from None
        except hvac.exceptions.Forbidden:
            raise PolicyDeniedError(
                f"upstream secret engine {where} denied {capability!r} on {path}: the token's"
                f" policy needs `capabilities = {needs}` on"
                f" {self.settings.mount}/data/{self.settings.prefix}/* and"
                f" {self.settings.mount}/metadata/{self.settings.prefix}/*",
                path=path,
                capability=capability,
            ) from None
        except hvac.exceptions.VaultDown:
            raise EngineDownError(
                f"upstream secret engine {where} is sealed or in standby"
            ) from None
        except hvac.exceptions.VaultError as exc:
            raise UpstreamError(
                f"upstream secret engine {where} answered {type(exc).__name__} to {capability}"
                f" on {path}"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise EngineDownError(
                f"upstream secret engine {where} could not be asked ({type(exc).__name__})"
            ) from None
        except OSError as exc:  # requests raises it for an unreadable CA bundle
            raise EngineTLSError(
                f"upstream secret engine {where}: could not use the CA bundle"
                f" ({exc.strerror or type(exc).__name__})"
            ) from None


def refresh(engine: Engine, cache: UpstreamCache, now: datetime | None = None) -> UpstreamCache:
    """One refresh: the cache after fetching everything under the prefix. Never raises.

    On success the fetched secrets replace the cache's (a secret deleted upstream is gone);
    on failure the cache keeps its secrets and records the error's message and reason.
    Safe to call from a worker thread: nothing with a secret leaves it in an exception.

    Args:
        engine: the engine client.
        cache: the current cache.
        now: when the refresh ends; the current time when None.
    """
    try:
        fetched = engine.fetch()
    except UpstreamError as exc:
        return cache.failed(exc.message, now or datetime.now(UTC), exc.reason)
    except Exception as exc:  # a refresh thread must never die; the type is enough to log
        _log.warning("upstream refresh failed unexpectedly: %s", type(exc).__name__)
        return cache.failed(
            f"upstream refresh from {engine.settings.address} failed unexpectedly"
            f" ({type(exc).__name__}); see the daemon's log",
            now or datetime.now(UTC),
            "internal",
        )
    return cache.succeeded(
        fetched.secrets,
        now or datetime.now(UTC),
        skipped=fetched.skipped,
        warnings=fetched.warnings,
    )


def _auth_of(settings: UpstreamSettings) -> Auth:
    if settings.token_file is not None:
        return TokenFileAuth(settings.token_file, settings.address)
    # The config refuses a table with neither a token file nor both AppRole files.
    assert settings.role_id_file is not None
    assert settings.secret_id_file is not None
    return AppRoleAuth(settings.role_id_file, settings.secret_id_file, settings.address)


def _written_at(metadata: dict[str, Any]) -> datetime:
    """A version's ``created_time`` (RFC 3339 with nanoseconds); now when it is missing."""
    text = metadata.get("created_time")
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else datetime.now(UTC)
    except ValueError:
        return datetime.now(UTC)
