"""Key memory: a page of its own, zeroed by wipe; a wiped store key encrypts nothing."""

from __future__ import annotations

import os
import pwd
import resource

import pytest
from helperd_client.errors import LockedError

from helperd.stores.keys import key_file_key
from helperd.stores.secret_memory import SecretBuffer, memory_locked
from tests.support.tools import require_root


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


def test_memory_locked_is_false_where_mlock_is_not_allowed() -> None:
    """A process without CAP_IPC_LOCK and with RLIMIT_MEMLOCK 0 (here: nobody) cannot lock key
    memory: the buffer still works, and memory_locked says False."""
    require_root("changes to UID nobody")
    nobody = pwd.getpwnam("nobody").pw_uid

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
            os.setgid(nobody)
            os.setuid(nobody)
            buffer = SecretBuffer(32)
            buffer.view[:] = b"k" * 32
            buffer.wipe()
            seen = f"{buffer.locked} {memory_locked()} {bytes(buffer.view) == bytes(32)}"
            os.write(write, seen.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        seen = pipe.read().decode()
    os.waitpid(pid, 0)
    assert "False False True" == seen
