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
