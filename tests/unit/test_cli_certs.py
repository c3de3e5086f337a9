"""``helperctl set-cert`` and ``cert-path`` against a fake daemon: what is sent, what is said."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helperd_client.errors import LockedError

from tests.support.certs import TestCA, make_ca
from tests.unit.test_cli import FakeClient, run


class CertClient(FakeClient):
    """The fake daemon, answering ``cert_path`` with ``answer`` (or raising it)."""

    def __init__(self, answer: dict[str, Any] | BaseException) -> None:
        super().__init__()
        self.answer = answer

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        if op != "cert_path":
            return super().request(op, **args)
        self._call(op, **args)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


def _body(path: Path) -> str:
    return [line for line in path.read_text().splitlines() if not line.startswith("-----")][1]


def test_set_cert_sends_one_checked_pem(ca: TestCA) -> None:
    """The encrypted key is decrypted with the passphrase from stdin; the daemon gets the
    certificate and the unencrypted key as one cert record, and nothing is printed of them."""
    client = CertClient({})

    result = run(
        client,
        *("set-cert", "corp", "--client-cert", str(ca.client_cert), "--key", str(ca.client_key)),
        "--key-passphrase-stdin",
        stdin=ca.passphrase + "\n",
    )

    assert 0 == result.exit_code, result.output
    sent = client.args("set")
    expected = ca.client_cert.read_text() + ca.client_key_plain.read_text()
    assert ("corp", "cert", expected) == (sent["name"], sent["kind"], sent["password"])
    assert "stored the client certificate of 'corp'\n" == result.stderr
    assert "" == result.stdout


@pytest.mark.parametrize("case", ["no passphrase", "wrong key", "stdin twice"])
def test_set_cert_refusals_send_nothing_and_quote_nothing(ca: TestCA, case: str) -> None:
    """A missing passphrase, a key of another certificate, or stdin asked for twice: exit 2,
    no set sent, and neither stream holds key material."""
    client = CertClient({})
    args = ["set-cert", "corp", "--client-cert", str(ca.client_cert), "--key", str(ca.client_key)]
    if case == "wrong key":
        args[-1] = str(ca.server_key)
    if case == "stdin twice":
        args[3] = "-"
        args.append("--key-passphrase-stdin")

    result = run(client, *args, stdin="")

    assert 2 == result.exit_code, result.output
    assert "set" not in client.ops
    said = {
        "no passphrase": "the private key is encrypted",
        "wrong key": "the private key does not belong to the client certificate",
        "stdin twice": "stdin cannot hold both the certificate and the key passphrase",
    }
    assert said[case] in result.output
    if case != "stdin twice":  # a refusal of what the files hold names them
        assert f"(certificate {ca.client_cert}, key {args[5]})" in result.output
    for path in (ca.client_key, ca.client_key_plain, ca.server_key):
        assert _body(path) not in result.output


@pytest.mark.parametrize(
    ("answer", "code", "stdout"),
    [
        ({"name": "corp", "path": "/run/c/corp.pem", "present": True}, 0, "/run/c/corp.pem\n"),
        ({"name": "corp", "path": "/x/corp.pem", "present": False, "reason": "no tmpfs"}, 1, ""),
        (LockedError("the store is locked"), 5, ""),
    ],
)
def test_cert_path_prints_the_path_only_when_the_file_is_there(
    answer: dict[str, Any] | BaseException, code: int, stdout: str
) -> None:
    """stdout holds the path alone on success and nothing otherwise; the exit code says why."""
    result = run(CertClient(answer), "cert-path", "corp")

    assert (code, stdout) == (result.exit_code, result.stdout)
