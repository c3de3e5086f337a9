"""Which store the daemon opens, and why: the answer ``status`` reports as ``store_reason``."""

from __future__ import annotations

from helperd_client.errors import StoreUnavailableError

from helperd.config import Settings
from helperd.durable import check_private_dir
from helperd.stores.base import Store
from helperd.stores.file_store import FileStore

__all__ = ["build_store"]


def build_store(settings: Settings) -> tuple[Store, str]:
    """Open the store that ``settings`` ask for, and say why it was chosen.

    Raises:
        HelperdError: the store cannot be opened (its message says what to do).
    """
    check_private_dir(settings.data_dir)
    if settings.store == "keyring":
        raise StoreUnavailableError(
            "the keyring store is not available in this version; use --store file"
        )
    store = FileStore(settings.store_file, key_file=settings.key_file)
    if settings.key_file is not None:
        reason = f"encrypted file opened with the key file {settings.key_file}"
    elif settings.store == "file":
        reason = "encrypted file (asked for with --store file); protected by a passphrase"
    else:
        reason = "encrypted file protected by a passphrase (no OS keyring is used yet)"
    return store, reason
