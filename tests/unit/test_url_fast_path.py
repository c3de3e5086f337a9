"""The catalog's URL fast path reads every URL exactly as urlsplit does, or leaves it to it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helperd.core.catalog import _parse_url, _split_url

URLS = [
    "https://a.test/simple/",
    "http://pkgs.example.test:8080/x//",
    "https://a.test",
    "https://a.test:0/",
    "https://a.test:99999/",
    "https://a.test:065535/p",
    "HTTPS://A.test/",
    "https://1.2.3.4/",
    "https://u:p@a.test/",
    "https://a.test/?q#f",
    "https://a-b.c-d.test/p_q~r.s/",
    "https://a..b/",
    "https://a.test:/x",
    "https://a.test/%41/",
]


@pytest.mark.parametrize("url", URLS)
def test_fast_path_reads_as_urlsplit(url: str) -> None:
    """Each URL parses to the same scheme, host, port and path with and without the fast path."""
    assert _split_url(url) == _parse_url(url)


@given(st.from_regex(r"https?://[a-z0-9.-]{1,12}(:[0-9]{1,6})?(/[a-zA-Z0-9._~/%?#@-]{0,12})?"))
def test_fast_path_agrees_on_generated_urls(url: str) -> None:
    """Generated URLs near the fast path's edge parse the same either way."""
    assert _split_url(url) == _parse_url(url)
