"""helperd_client stays light: Poetry and pip import every keyring plugin at start-up."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("asyncio", "pydantic", "cryptography", "click")


def test_client_import_loads_no_heavy_module() -> None:
    """Importing helperd_client, its client and its keyring plugin loads none of asyncio,
    pydantic, cryptography or click."""
    code = (
        "import sys, json, helperd_client, helperd_client.client, helperd_client.keyring_backend;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert [] == json.loads(out.stdout)


def test_plugin_import_loads_what_a_request_needs_only_at_the_first() -> None:
    """keyring imports the plugin at every tool's start-up, whether or not the tool then asks
    it anything: the import loads neither the client, its transport and framing (and json
    with them) nor the daemon starter; the first request loads them."""
    code = (
        "import sys, keyring;"
        "before = set(sys.modules);"
        "import helperd_client.keyring_backend;"
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = out.stdout.split()
    assert "helperd_client.keyring_backend" in loaded
    later = ("helperd_client.client", "helperd_client.transport", "helperd_client.wire")
    assert [m for m in (*later, "helperd_client.autostart", "json") if m in loaded] == []
