"""Format version 1, 2 and 3 files open, lose nothing, and are rewritten as version 4 on open."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from helperd.core.record import Kind, Record
from helperd.stores.file_store import FileStore
from tests.support.old_stores import write_old_store

T = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def version_of(path: Path) -> tuple[int, int]:
    header = json.loads(path.read_bytes().partition(b"\n")[0])
    return header["version"], header["generation"]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_store_opens_whole_and_is_rewritten_as_version_4(
    tmp_path: Path, version: int
) -> None:
    """Every record and password of a version 1, 2 or 3 file (odd passwords, expiry, a generic
    entry) is there after the open, which rewrites the file as version 4 in one durable write
    and starts its journal."""
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    key_file = tmp_path / "key"
    key_file.write_bytes(secrets.token_bytes(32))
    key_file.chmod(0o600)
    records = [
        Record(
            name="a",
            username="u",
            kind=Kind.BASIC,
            urls=("https://a.test/simple/",),
            created_at=T,
            updated_at=T,
        ),
        Record(
            name="b",
            username="__token__",
            kind=Kind.TOKEN,
            urls=(),
            expires_at=T + timedelta(days=1),
            created_at=T,
            updated_at=T,
        ),
        Record(name="my-app", username="me", kind=Kind.GENERIC, created_at=T, updated_at=T),
    ]
    passwords = ["plain", "lone \udc80 surrogate\nand a newline", "é ✓ 🔑"]
    entries = {r.key: (r, p) for r, p in zip(records, passwords, strict=True)}
    path = folder / "store.enc"
    write_old_store(path, key_file, entries, version)
    assert (version, 7) == version_of(path)
    journal = path.with_name("store.enc.journal")
    assert not journal.exists()

    store = FileStore(path, key_file=key_file)
    try:
        assert records == list(store.records())
        assert passwords == [store.password(r).get_secret_value() for r in records]
        assert (4, 8) == version_of(path)
        assert journal.exists()  # started by the upgrade
        store.put(records[0], SecretStr("changed"))
    finally:
        store.close()
    again = FileStore(path, key_file=key_file)
    try:
        assert records == list(again.records())
        assert ["changed", *passwords[1:]] == [
            again.password(r).get_secret_value() for r in records
        ]
        assert (4, 9) == version_of(path)  # the journal folded in by close
    finally:
        again.close()
