"""``helperctl import-poetry --move-client-certs``: Poetry's client-certificate keys into helperd.

For each ``[certificates.NAME] client-cert = PATH`` in Poetry's auth.toml (where ``poetry
config`` writes it) or config.toml, in this order, each step only after the one before
succeeded:

1. the PEM file is checked (a certificate and the key that belongs to it) and stored as the
   ``cert`` record NAME;
2. the daemon must have written its file: `helperctl cert-path NAME` names it;
3. the setting is pointed at that path (the Poetry file rewritten atomically, comments kept);
4. the PEM file is rewritten with its certificate only: the certificate stays, the key goes.

A setting that already names helperd's file is left alone; an encrypted key is reported and
left (requests cannot read one either: use ``helperctl set-cert --key-passphrase-stdin``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click
from helperd_client.errors import BadRequestError, HelperdError

from helperd.ctl.session import Session, require_open

__all__ = ["move_client_certs"]

MAX_PEM = 60_000


def move_client_certs(session: Session, auth_toml: Path, *, dry_run: bool) -> int:
    """Move the client-certificate keys that Poetry's files beside ``auth_toml`` name.

    Returns:
        How many keys moved (or would move, with ``dry_run``).

    Raises:
        HelperdError: the store is not open, or a step failed (the message says which, and
            what was left as it was).
    """
    from helperd.core.certs import KeyPassphraseNeeded, bundle  # noqa: PLC0415 - cryptography
    from helperd.integrations.auth_file import read_auth  # noqa: PLC0415 - tomlkit, on demand
    from helperd.integrations.poetry_certs import (  # noqa: PLC0415
        client_certs,
        linked_elsewhere,
        replace_paths,
        strip_key,
    )

    moved = 0
    for source in (auth_toml, auth_toml.parent / "config.toml"):
        auth = read_auth(source)
        if auth is None:
            continue
        for cert in client_certs(auth.text, source.parent):
            where = f"{source.name}: certificates.{cert.name}.client-cert"
            try:
                data = _read(cert.path)
                if b"PRIVATE KEY-----" not in data:
                    click.echo(f"left {where}: {cert.path} holds no private key", err=True)
                    continue
                if (linked := linked_elsewhere(cert.path)) is not None:
                    click.echo(f"helperctl: left {where}: {linked.message}", err=True)
                    continue
                pem = bundle(data)
            except KeyPassphraseNeeded:
                click.echo(
                    f"helperctl: left {where}: its private key is encrypted; store it with"
                    f" `helperctl set-cert {cert.name} --client-cert {shlex.quote(str(cert.path))}"
                    " --key-passphrase-stdin`",
                    err=True,
                )
                continue
            except BadRequestError as exc:
                click.echo(f"helperctl: left {where}: {exc.message}", err=True)
                continue
            if dry_run:
                click.echo(f"would move the key of {where} ({cert.path}) into helperd", err=True)
                moved += 1
                continue
            client = session.client()
            require_open(client)
            client.set(cert.name, pem, kind="cert")
            shown = client.request("cert_path", name=cert.name)
            if not shown.get("present"):
                raise HelperdError(
                    f"the key of {cert.name!r} is in helperd, but it writes no file"
                    f" ({shown.get('reason')}): {source} and {cert.path} were left as they are"
                )
            replace_paths(auth, {cert.name: str(shown["path"])})
            auth = read_auth(source) or auth  # the next name edits the rewritten file
            strip_key(cert.path)
            click.echo(
                f"moved the key of {where} into helperd: the setting now names"
                f" {shown['path']}; {cert.path} keeps the certificate only",
                err=True,
            )
            moved += 1
    return moved


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM + 1)
    except OSError as exc:
        raise BadRequestError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_PEM:
        raise BadRequestError(f"{path} is longer than {MAX_PEM} bytes")
    return data
