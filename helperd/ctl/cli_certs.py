"""``helperctl set-cert`` and ``helperctl cert-path``: client certificates kept by helperd.

The certificate and its key are checked here (helperd.core.certs.bundle: both parse, the key
belongs to the certificate, an encrypted key is decrypted once) and sent as one PEM text;
the daemon keeps it in its store and writes ``NAME.pem`` to a private tmpfs folder while
unlocked. No message quotes the PEM text or a passphrase.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from helperd_client.errors import BadRequestError

from helperd.ctl import cli_input
from helperd.ctl.cli_input import fail
from helperd.ctl.session import Session, require_open

__all__ = ["cert_path", "set_cert"]

MAX_PEM = 60_000
"""Longest PEM file read: a request line holds at most 65,536 bytes."""

_pass_session = click.make_pass_decorator(Session, ensure=True)


@click.command("set-cert")
@click.argument("name", callback=cli_input.repository_name)
@click.option(
    "--client-cert",
    "cert_file",
    required=True,
    metavar="FILE|-",
    help="PEM file with the client certificate (and its key, unless --key); - reads stdin.",
)
@click.option("--key", "key_file", metavar="FILE", help="PEM file with the private key.")
@click.option(
    "--key-passphrase-stdin",
    is_flag=True,
    help="Read the passphrase of an encrypted key from stdin (the key is stored decrypted).",
)
@_pass_session
def set_cert(
    session: Session, *, name: str, cert_file: str, key_file: str | None, key_passphrase_stdin: bool
) -> None:
    """Keep the client certificate of repository NAME, and its private key, in helperd.

    The certificate and key are checked (they parse, and the key belongs to the
    certificate); an encrypted key is decrypted once, with the passphrase from stdin
    (--key-passphrase-stdin) or a hidden prompt. Afterwards the key files can be deleted:
    `helperctl cert-path NAME` names the file helperd writes while the store is unlocked.

    \b
    Examples:
      helperctl set-cert corp --client-cert client.pem
      helperctl set-cert corp --client-cert client.crt --key client.key
      printf '%s' "$PASS" | helperctl set-cert corp --client-cert c.crt --key c.key \\
          --key-passphrase-stdin
      poetry config certificates.corp.client-cert "$(helperctl cert-path corp)"
    """
    if cert_file == "-" and key_passphrase_stdin:
        raise click.UsageError("stdin cannot hold both the certificate and the key passphrase")
    client = session.client()
    require_open(client)  # before reading a passphrase, as `set` does
    # Lazily: helperd.core.certs brings pydantic and cryptography, and helperctl starts fast.
    from helperd.core.certs import KeyPassphraseNeeded, bundle  # noqa: PLC0415

    cert = _read_pem(cert_file, "certificate")
    key = None if key_file is None else _read_pem(key_file, "key")
    passphrase = None
    if key_passphrase_stdin:
        passphrase = cli_input.read_secret(
            "key passphrase", from_stdin=True, flag="--key-passphrase-stdin", confirm=False
        ).encode("utf-8")
    files = f"certificate {_shown(cert_file)}" + (f", key {_shown(key_file)}" if key_file else "")
    try:
        try:
            pem = bundle(cert, key, passphrase)
        except KeyPassphraseNeeded:
            if not cli_input.stdin_is_tty() or cert_file == "-":
                raise
            asked = cli_input.prompt_secret("Key passphrase", confirm=False)
            pem = bundle(cert, key, asked.encode("utf-8"))
    except BadRequestError as exc:  # name the files, as a file that cannot be read is named
        raise BadRequestError(f"{exc.message} ({files})") from None
    info = client.set(name, pem, kind="cert")
    click.echo(f"stored the client certificate of {info.name!r}", err=True)


@click.command("cert-path")
@click.argument("name", callback=cli_input.repository_name)
@_pass_session
def cert_path(session: Session, name: str) -> None:
    """Print the path of NAME's client-certificate file (certificate + key, PEM).

    The path stays the same across restarts, for `poetry config
    certificates.NAME.client-cert`, `pip --client-cert` or `SSL_CLIENT_CERT`.
    The file exists only while the store is unlocked.
    Exits 0 when the file is there, 5 while the store is locked, 4 when NAME has no
    certificate, 1 when helperd writes no file (no tmpfs: see docs/certificates.md).

    \b
    Examples:
      helperctl cert-path corp
      pip install --client-cert "$(helperctl cert-path corp)" --index-url https://... pkg
    """
    result = session.client().request("cert_path", name=name)
    if not result.get("present"):
        fail(f"no certificate file for {name!r}: {result.get('reason')}")
    click.echo(str(result["path"]))


def _shown(source: str) -> str:
    return "from stdin" if source == "-" else source


def _read_pem(source: str, what: str) -> bytes:
    """A PEM file's bytes (``-``: stdin), bounded; errors name the file, never its content."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_PEM + 1)
        else:
            with Path(source).open("rb") as handle:
                data = handle.read(MAX_PEM + 1)
    except OSError as exc:
        raise click.UsageError(f"cannot read the {what} file {source}: {exc.strerror}") from None
    if len(data) > MAX_PEM:
        raise click.UsageError(f"the {what} file {source} is longer than {MAX_PEM} bytes")
    return data
