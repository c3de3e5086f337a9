"""Store files as helperd wrote them before format version 2: the migration's test input."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from helperd.core.record import Record, RecordKey
from helperd.stores import durable
from helperd.stores.file_format import NONCE_BYTES, _Header
from helperd.stores.file_store import FileStore
from helperd.testing import fill_file_store

__all__ = ["write_v1_store"]


def write_v1_store(
    path: Path, key_file: Path, entries: Mapping[RecordKey, tuple[Record, str]]
) -> None:
    """Write a key-file store at ``path`` in format version 1 (docs/file-format.md).

    The key spec comes from a store written by today's code, then the file is written again
    as version 1 wrote it: ``{"records": [...]}`` with each password inside its record.
    """
    fill_file_store(path, {}, key_file=key_file)
    store = FileStore(path, key_file=key_file)
    try:
        store.unlock(None)
        opened = store._open
        assert opened is not None
        items = [
            {**record.model_dump(mode="json"), "password": password}
            for record, password in (entries[key] for key in sorted(entries))
        ]
        plaintext = json.dumps({"records": items}, separators=(",", ":"), sort_keys=True)
        header = _Header(opened.header.spec, os.urandom(NONCE_BYTES), 7, version=1)
        line = header.encode()
        ciphertext = opened.key.encrypt(header.nonce, plaintext.encode("ascii"), line)
        durable.write_atomic(path, line + b"\n" + ciphertext)
    finally:
        store.close()
