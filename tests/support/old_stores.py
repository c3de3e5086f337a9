"""Store files as helperd wrote them before format version 4: the upgrade's test input."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from helperd.core.record import Record, RecordKey
from helperd.stores import durable
from helperd.stores.file_format import NONCE_BYTES, _built, _Header, _sealed
from helperd.stores.file_store import FileStore
from helperd.testing import fill_file_store

__all__ = ["write_old_store"]


def write_old_store(
    path: Path, key_file: Path, entries: Mapping[RecordKey, tuple[Record, str]], version: int
) -> None:
    """Write a key-file store at ``path`` in format ``version`` 1, 2 or 3
    (docs/file-format.md), generation 7, without a journal.

    The key spec comes from a store written by today's code, then the file is written again
    as that version wrote it: version 1 as ``{"records": [...]}`` with each password inside
    its record, version 2 as one ``[record, password]`` line per record, both in one
    ciphertext, and version 3 in segments, as version 4 but with no journal after it.
    """
    fill_file_store(path, {}, key_file=key_file)
    store = FileStore(path, key_file=key_file)
    try:
        store.unlock(None)
        opened = store._open
        assert opened is not None
        ordered = [entries[key] for key in sorted(entries)]
        if version == 3:
            segments, _, _ = _built(ordered)
            header = _Header(opened.header.spec, os.urandom(NONCE_BYTES), 7, 3, len(segments))
            line = header.encode()
            _, body = _sealed(opened.key, header, line, segments, os.urandom)
            durable.write_atomic(path, [line + b"\n", *body])
            return
        if version == 1:
            items = [{**r.model_dump(mode="json"), "password": p} for r, p in ordered]
            text = json.dumps({"records": items}, separators=(",", ":"), sort_keys=True)
        else:
            text = "\n".join(
                json.dumps([r.model_dump(mode="json"), p], separators=(",", ":"), sort_keys=True)
                for r, p in ordered
            )
        header = _Header(opened.header.spec, os.urandom(NONCE_BYTES), 7, version=version)
        line = header.encode()
        ciphertext = opened.key.encrypt(header.nonce, text.encode("ascii"), line)
        durable.write_atomic(path, line + b"\n" + ciphertext)
    finally:
        store.close()
        store.journal.unlink()  # no version before 4 had one
