"""The store's key in the daemon's memory: present while unlocked, gone after lock.

The expected keys are derived here from the known passphrase and the store file's header (its
salt and Argon2id cost, read by helperd's own `KeySpec`), by the derivation docs/file-format.md
documents: master = Argon2id(passphrase, salt), AEAD key = HKDF(master, "...v1 aead"). The
header's check value proves the derivation is the daemon's. Then every readable mapping of
``/proc/PID/mem`` is searched (root: the daemon is not dumpable, so its ``mem`` is root's).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from helperd_client import BadPassphraseError, Client
from pydantic import SecretStr

from helperd.stores.keys import INFO_AEAD, INFO_CHECK, KEY_BYTES, KeySpec, passphrase_key
from helperd.testing import wait_for_gate
from tests.hardening import Spawn
from tests.support.tools import require_root

PASSPHRASE = "a passphrase only this test knows"


def store_keys(store: Path) -> dict[str, bytes]:
    """The master key and the AEAD key of ``store``, derived from `PASSPHRASE`."""
    header = json.loads(store.read_bytes().split(b"\n", 1)[0])
    spec = KeySpec.from_json(header["key"], header["check"])
    assert spec.kdf is not None
    master = Argon2id(
        salt=spec.salt,
        length=KEY_BYTES,
        iterations=spec.kdf.iterations,
        lanes=spec.kdf.lanes,
        memory_cost=spec.kdf.memory_kib,
    ).derive(PASSPHRASE.encode())
    check = HKDF(hashes.SHA256(), 16, None, INFO_CHECK).derive(master)
    assert spec.check == check, "the test derives the keys as the daemon does"
    assert passphrase_key(SecretStr(PASSPHRASE), spec.salt, spec.kdf).matches(check)
    return {"master": master, "aead": HKDF(hashes.SHA256(), 32, None, INFO_AEAD).derive(master)}


def copies_in_memory(pid: int, needles: dict[str, bytes]) -> dict[str, int]:
    """How often each needle occurs in the readable mappings of process ``pid``."""
    found = dict.fromkeys(needles, 0)
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            addresses, perms = line.split()[:2]
            if not perms.startswith("r") or line.endswith("[vvar]"):
                continue
            start, end = (int(a, 16) for a in addresses.split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except OSError:
                continue  # a mapping that went away, or a device mapping
            for name, needle in needles.items():
                found[name] += data.count(needle)
    return found


def test_no_copy_of_the_key_after_lock(spawn: Spawn) -> None:
    """While unlocked the AEAD key is in memory (the scan finds it); after lock, after gets,
    sets and a wrong passphrase, no copy of the master key or the AEAD key is left."""
    require_root("reads the daemon's /proc/PID/mem")
    daemon = spawn(key=False)
    pid = daemon.process.pid
    with Client(daemon.socket, timeout=10.0, passphrase_timeout=90.0) as client:
        client.init(PASSPHRASE)
        client.set("acme", "pw-1", username="alice")
        client.lock()
        with pytest.raises(BadPassphraseError):
            client.unlock("not it")
        wait_for_gate(client)
        client.unlock(PASSPHRASE)
        client.set("acme", "pw-2", username="alice")
        assert "pw-2" == client.get(name="acme").password
        keys = store_keys(daemon.home / "store.enc")
        unlocked = copies_in_memory(pid, keys)
        assert client.status().memory_locked
        client.lock()
        client.status()
        locked = copies_in_memory(pid, keys)
    assert unlocked["aead"] >= 1, "the scan finds the key while the store is open"
    assert {"master": 0, "aead": 0} == locked
