"""One fresh process reading one secret through keyring: its imports, its first call, warm calls.

    python bench/probe.py BACKEND SERVICE USERNAME WARM [PASSPHRASE]

BACKEND is one of:

``plugin``
    keyring's own discovery, as Poetry and pip do it: with helperd's socket present its
    plugin is chosen (the environment must point ``HELPERD_HOME`` at the daemon).
``secret_service``
    keyring's discovery with no helperd socket and a Secret Service on the session bus.
``client``
    helperd_client's `Client` on one kept connection, without keyring (for the record).
``alt`` / ``cryptfile``
    keyrings.alt's ``EncryptedKeyring`` / keyrings.cryptfile's ``CryptFileKeyring``, with
    PASSPHRASE set on the instance so that nothing prompts (both read ``keyring_key``).

Prints one JSON object: seconds for the imports, keyring's backend discovery (for the two
backends keyring chooses itself), the first call and each warm call. It runs
in whichever environment holds the backend (the e2e keyring venv, or the bench venv), so it
imports nothing from the repository. Exits 3 when a call does not return the expected
secret's prefix (given in ``$PROBE_EXPECT``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable


def _reader(backend: str, passphrase: str | None) -> Callable[[str, str], str | None]:
    if backend == "client":
        from helperd_client import Client

        client = Client()

        def read(service: str, username: str) -> str | None:
            return client.get(service=service, username=username).password

        return read
    import keyring

    if backend == "alt":
        from keyrings.alt.file import EncryptedKeyring

        ring = EncryptedKeyring()
        ring.keyring_key = passphrase
        keyring.set_keyring(ring)
    elif backend == "cryptfile":
        from keyrings.cryptfile.cryptfile import CryptFileKeyring

        ring = CryptFileKeyring()
        ring.keyring_key = passphrase
        keyring.set_keyring(ring)
    elif backend not in ("plugin", "secret_service"):
        raise SystemExit(f"unknown backend {backend!r}")
    return keyring.get_password


def main(argv: list[str]) -> int:
    """Measure and print."""
    backend, service, username, warm = argv[0], argv[1], argv[2], int(argv[3])
    passphrase = argv[4] if len(argv) > 4 else None
    expect = os.environ.get("PROBE_EXPECT", "")
    started = time.perf_counter()
    read = _reader(backend, passphrase)
    imported = time.perf_counter()
    if backend in ("plugin", "secret_service"):
        import keyring

        keyring.get_keyring()  # keyring's backend discovery: every plugin, every priority
    discovered = time.perf_counter()
    secret = read(service, username)
    first = time.perf_counter() - discovered
    if secret is None or not secret.startswith(expect):
        print(f"{backend}: got no or the wrong secret", file=sys.stderr)
        return 3
    warm_calls = []
    for _ in range(warm):
        before = time.perf_counter()
        read(service, username)
        warm_calls.append(time.perf_counter() - before)
    chosen = ""
    if backend in ("plugin", "secret_service"):
        import keyring

        chosen = type(keyring.get_keyring()).__module__
    result = {
        "backend": backend,
        "chosen": chosen,
        "import_s": imported - started,
        "discovery_s": discovered - imported,
        "first_s": first,
        "warm_s": warm_calls,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
