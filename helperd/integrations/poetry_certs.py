"""Poetry's client certificates: ``[certificates.NAME] client-cert = PATH`` in auth.toml or
config.toml, and the PEM files they name.

``poetry config certificates.NAME.client-cert PATH`` points requests at one PEM file that holds
the certificate and its unencrypted private key. `import-poetry --move-client-certs` moves the
key into helperd: it stores certificate and key as a ``cert`` record, points the setting at
helperd's file (`replace_paths`), and rewrites the PEM file with its certificates only
(`strip_keys`), so the certificate stays where it was and the key is no longer on disk.
Nothing here prints or returns key material in a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from helperd.integrations.auth_file import (
    AuthFile,
    PoetryFileError,
    hard_links,
    read_auth,
    write_back,
)

__all__ = ["ClientCert", "client_certs", "linked_elsewhere", "replace_paths", "strip_key"]

CERTIFICATES = "certificates"
CLIENT_CERT = "client-cert"
_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\r?\n?", re.S)


@dataclass(frozen=True)
class ClientCert:
    """One ``certificates.NAME.client-cert`` setting.

    Attributes:
        name: the repository name.
        path: the PEM file it names (relative paths are taken from the config folder).
    """

    name: str
    path: Path


def client_certs(text: str, folder: Path) -> list[ClientCert]:
    """Every ``client-cert`` setting in the TOML ``text`` of a file in ``folder``.

    Raises:
        PoetryFileError: the text is not TOML.
    """
    try:
        data: Any = tomlkit.parse(text).unwrap()
    except TOMLKitError:
        raise PoetryFileError("cannot parse the Poetry file; nothing was changed") from None
    found = []
    tables = data.get(CERTIFICATES, {})
    for name, table in tables.items() if isinstance(tables, dict) else ():
        value = table.get(CLIENT_CERT) if isinstance(table, dict) else None
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            found.append(ClientCert(name, path if path.is_absolute() else folder / path))
    return found


def replace_paths(auth: AuthFile, paths: Mapping[str, str]) -> None:
    """Point each ``certificates.NAME.client-cert`` of ``paths`` at its new path, in place.

    The file is rewritten atomically, keeping comments, order and mode (`write_back`).
    """
    try:
        doc: Any = tomlkit.parse(auth.text)
        for name, path in paths.items():
            doc[CERTIFICATES][name][CLIENT_CERT] = path
        text = tomlkit.dumps(doc)
    except (TOMLKitError, KeyError, TypeError) as exc:
        raise PoetryFileError(
            f"cannot rewrite {auth.path} ({type(exc).__name__}); it was not changed"
        ) from None
    write_back(auth, text)


def linked_elsewhere(path: Path) -> PoetryFileError | None:
    """The refusal to give when the PEM file at ``path`` has other hard links, else None.

    Rewriting the file by rename would leave the key in every other link, as for auth.toml
    (`helperd.integrations.auth_file.hard_links`), so its key must not be moved.

    Raises:
        PoetryFileError: it cannot be read.
    """
    pem = read_auth(path)
    return None if pem is None else hard_links(pem)


def strip_key(path: Path) -> bool:
    """Rewrite the PEM file at ``path`` with its certificates only; False when it held no key.

    The file keeps its mode; a symbolic link stays a link (the file behind it is rewritten).

    Raises:
        PoetryFileError: it cannot be read or rewritten, or has other hard links (`write_back`
            refuses them: they would keep the key).
    """
    pem = read_auth(path)
    if pem is None:
        raise PoetryFileError(f"{path} does not exist")
    if b"PRIVATE KEY-----" not in pem.raw:
        return False
    certs = b"".join(m[0].rstrip(b"\r\n") + b"\n" for m in _CERT_BLOCK.finditer(pem.raw))
    if not certs:
        raise PoetryFileError(f"{path} holds no certificate: it was left as it is")
    write_back(pem, certs.decode("ascii"))
    return True
