"""``helperctl list`` lists a store bigger than one ``list`` answer, page by page."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helperd_client import StoreUnavailableError, TooLargeError

from helperd.core.paging import MAX_UNPAGED
from helperd.testing import start_daemon, write_store

HELPERCTL = str(Path(sys.executable).parent / "helperctl")
RECORDS = MAX_UNPAGED + 5_000  # more than the form without limit answers


def test_helperctl_list_pages_through_a_store_too_big_for_one_answer(
    home: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more records than a list without limit answers (that one says too_large),
    helperctl list --json prints every record once, in key order."""
    monkeypatch.setenv("HELPERD_KEY_FILE", str(key_file))  # write_store's default key
    names = [f"repo{index:06d}" for index in range(RECORDS)]
    write_store(
        home,
        (
            {"name": name, "username": "alice", "password": f"pw-{name}", "urls": []}
            for name in names
        ),
    )
    daemon = start_daemon(home, "--store", "file", env={"HELPERD_KEY_FILE": str(key_file)})
    try:
        with daemon.client(timeout=30.0) as client:
            deadline = time.monotonic() + 60
            while True:  # the first read opens the store; it may outlast the answer timeout
                try:
                    client.list_page(1)
                    break
                except StoreUnavailableError:
                    assert time.monotonic() < deadline
            with pytest.raises(TooLargeError):
                client.request("list")
        listed = subprocess.run(
            [HELPERCTL, "list", "--json"],
            env=daemon.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        daemon.stop()
    assert (0, "") == (listed.returncode, listed.stderr)
    assert names == [record["name"] for record in json.loads(listed.stdout)]
