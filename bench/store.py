"""Big stores, built fast: N records written by `FileStore` in one commit, not N ``set`` calls.

A ``set`` rewrites the whole encrypted file (that is what makes it durable and atomic), so
filling a 100,000-record store through the daemon would write 100,000 growing files. The
builder goes one level down instead (`helperd.testing.fill_file_store`): it commits every
record at once through the store's own encoder and cipher, so the file is exactly what the
daemon would have written (the ``set`` timings measure the write path).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from helperd.core.record import Kind, Record
from helperd.testing import fill_file_store

__all__ = ["PASSWORD", "USERNAME", "Layout", "build_store"]

USERNAME = "alice"
PASSWORD = "s3cret-bench-password"  # noqa: S105 - a throwaway secret in a throwaway store


@dataclass(frozen=True)
class Layout:
    """The records of an N-repository store, and the requests that find the middle one."""

    size: int

    @staticmethod
    def name(index: int) -> str:
        """Repository ``index``'s name."""
        return f"repo{index:06d}"

    @staticmethod
    def url(index: int) -> str:
        """Repository ``index``'s index URL (one host per repository)."""
        return f"https://pkgs{index}.example.test/simple/"

    @property
    def target(self) -> int:
        """The repository the benchmarks ask for: the middle one."""
        return self.size // 2

    def records(self, now: datetime) -> dict[tuple[str, str], tuple[Record, SecretStr]]:
        """Every record with its password, keyed as the store keys them."""
        entries = {}
        for index in range(self.size):
            record = Record(
                name=self.name(index),
                username=USERNAME,
                kind=Kind.BASIC,
                urls=(self.url(index),),
                created_at=now,
                updated_at=now,
            )
            entries[record.key] = (record, SecretStr(f"{PASSWORD}-{index}"))
        return entries

    def service_request(self, request_id: int = 1) -> bytes:
        """The ``get`` Poetry's keyring call becomes, for the middle repository."""
        name = self.name(self.target)
        return (
            f'{{"v":1,"id":{request_id},"op":"get","service":"poetry-repository-{name}",'
            f'"username":"{USERNAME}"}}\n'
        ).encode()

    def url_request(self, request_id: int = 1) -> bytes:
        """The ``get`` pip's and uv's keyring call becomes (a URL below the index)."""
        url = self.url(self.target) + "privpkg/"
        return f'{{"v":1,"id":{request_id},"op":"get","url":"{url}"}}\n'.encode()


def build_store(
    path: Path, layout: Layout, *, key_file: Path | None = None, passphrase: str | None = None
) -> None:
    """Write a store of ``layout.size`` records at ``path``, opened by one of the two keys."""
    entries = layout.records(datetime.now(UTC))
    fill_file_store(path, entries, key_file=key_file, passphrase=passphrase)
