#!/usr/bin/env python3
"""Rewrite the JSON Schema block of docs/protocol.md from the pydantic models.

Run after changing helperd/core/protocol.py: `python scripts/sync_protocol_doc.py`.
tests/unit/test_protocol_doc.py fails while the doc and the models disagree.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from helperd.core.protocol import json_schema

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
BLOCK = re.compile(r"(<!-- schema:start -->\n```json\n)(.*?)(```\n<!-- schema:end -->)", re.S)


def rendered_schema() -> str:
    """The schema exactly as the doc should hold it."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    if not BLOCK.search(text):
        print(f"{DOC}: no schema block between the markers", file=sys.stderr)
        return 1
    DOC.write_text(BLOCK.sub(lambda m: m[1] + rendered_schema() + m[3], text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
