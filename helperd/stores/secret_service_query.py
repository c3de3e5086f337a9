"""The item attributes keyring's Secret Service backend files a password under: the one place
helperd reads keyring internals.

helperd talks to the Secret Service through ``secretstorage`` itself (keyring's backend would
pop unlock prompts), yet its items must stay the ones keyring writes and reads, so that plain
``keyring`` finds helperd's generic entries and helperd finds entries written before it.
keyring offers no public way to ask for those attributes: they come from its private
``SchemeSelectable._query`` (with the public ``schemes``, ``scheme`` and ``appid`` beside it).
Every such access is here, and ``tests/unit/test_secret_service_query.py`` checks that they
exist and answer as used, so that a keyring release that changes them fails that test loudly
instead of filing secrets under other attributes at run time.
"""

from __future__ import annotations

from keyring.backends import SecretService

__all__ = ["item_query", "username_field"]


def item_query(
    backend: SecretService.Keyring, service: str, username: str | None, *, write: bool = False
) -> dict[str, str]:
    """The attributes keyring's ``backend`` searches (or, with ``write``, files) an item by.

    Without ``username`` the query matches every item of ``service``. A write adds the
    application attribute keyring's own ``set_password`` adds.
    """
    if write:
        return backend._query(service, username, application=backend.appid)
    return backend._query(service, username)


def username_field(backend: SecretService.Keyring) -> str:
    """The attribute that holds the username in ``backend``'s scheme ("username" by default)."""
    return str(backend.schemes[backend.scheme]["username"])
