"""keyring's internals that helperd reads for the Secret Service still exist and answer as used.

keyring has no public way to ask which attributes its Secret Service backend files an item
under; `helperd.stores.secret_service_query` reads them from keyring's private ``_query`` and
its ``schemes``, ``scheme`` and ``appid``. These tests fail loudly when a keyring release
changes any of them, instead of letting helperd file secrets where plain keyring cannot find
them. They need no Secret Service: the backend is only asked for attributes, never to connect.
"""

from __future__ import annotations

from keyring.backends import SecretService

from helperd.stores.secret_service_query import item_query, username_field


def test_the_internals_exist() -> None:
    """The backend still has ``_query``, ``schemes``, ``scheme`` and ``appid`` as used."""
    backend = SecretService.Keyring()

    assert callable(backend._query)
    assert "default" == backend.scheme
    assert {"username": "username", "service": "service"} == backend.schemes["default"]
    assert "Python keyring library" == backend.appid


def test_a_read_query_names_the_service_and_the_username() -> None:
    """A read searches by keyring's own attributes: service and username."""
    backend = SecretService.Keyring()

    assert {"service": "svc", "username": "alice"} == item_query(backend, "svc", "alice")


def test_a_query_without_a_username_matches_the_whole_service() -> None:
    """Without a username the query has the service alone (any username matches)."""
    backend = SecretService.Keyring()

    assert {"service": "svc"} == item_query(backend, "svc", None)


def test_a_write_adds_keyring_s_application_attribute() -> None:
    """A write files the item as keyring's own ``set_password`` does, application included."""
    backend = SecretService.Keyring()

    expected = {"service": "svc", "username": "alice", "application": "Python keyring library"}
    assert expected == item_query(backend, "svc", "alice", write=True)


def test_the_username_field_follows_the_backend_s_scheme() -> None:
    """The username attribute is the scheme's: "username", or KeePassXC's "UserName"."""
    backend = SecretService.Keyring()
    assert "username" == username_field(backend)

    backend.scheme = "KeePassXC"
    assert "UserName" == username_field(backend)
    assert {"Title": "svc", "UserName": "alice"} == item_query(backend, "svc", "alice")
