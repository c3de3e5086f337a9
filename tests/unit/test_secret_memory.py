"""Key memory: a page of its own, zeroed by wipe; a wiped store key encrypts nothing."""

from __future__ import annotations

import pytest
from helperd_client.errors import LockedError

from helperd.secret_memory import SecretBuffer, memory_locked
from helperd.stores.keys import key_file_key


def test_wipe_zeroes_the_buffer() -> None:
    """What was written into the buffer reads back as zeros after wipe."""
    buffer = SecretBuffer(32)
    buffer.view[:] = b"k" * 32
    buffer.wipe()
    assert bytes(32) == bytes(buffer.view)
    assert "SecretBuffer(32, <hidden>)" == repr(buffer)


def test_a_wiped_store_key_refuses_to_encrypt() -> None:
    """After wipe the key's cipher is gone: encrypting says the store is locked."""
    key = key_file_key(b"K" * 32, bytes(16))
    sealed = key.encrypt(bytes(12), b"hello", b"ad")
    assert b"hello" == key.decrypt(bytes(12), sealed, b"ad")
    key.wipe()
    with pytest.raises(LockedError):
        key.encrypt(bytes(12), b"hello", b"ad")


def test_memory_locked_is_a_bool() -> None:
    """Status reports whether mlock held, as a plain bool, before any key exists too."""
    assert isinstance(memory_locked(), bool)
