"""docs/protocol.md stays in step with the models: schema, and every example."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path

import pytest
from helperd_client.wire import OPS

from helperd.core.protocol import (
    Ack,
    CertPathResult,
    DeleteResult,
    GetResult,
    HelloResult,
    ListResult,
    MigrateResult,
    SetResult,
    StatusResult,
    UpstreamResult,
    parse_request,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SYNC = runpy.run_path(str(DOC.parents[1] / "scripts" / "sync_protocol_doc.py"))
TEXT = DOC.read_text(encoding="utf-8")
RESULTS = {
    "hello": HelloResult,
    "status": StatusResult,
    "get": GetResult,
    "set": SetResult,
    "delete": DeleteResult,
    "list": ListResult,
    "init": Ack,
    "lock": Ack,
    "unlock": Ack,
    "passwd": Ack,
    "cert_path": CertPathResult,
    "migrate": MigrateResult,
    "upstream": UpstreamResult,
}


def examples(kind: str) -> list[dict[str, object]]:
    return [json.loads(b) for b in re.findall(rf"```json {kind}\n(.*?)\n```", TEXT, re.S)]


def test_schema_block_matches_the_models() -> None:
    """The JSON Schema in the doc is the one the models generate today."""
    block = SYNC["BLOCK"].search(TEXT)
    assert block is not None
    assert SYNC["rendered_schema"]() == block[2], "run: python scripts/sync_protocol_doc.py"


def test_every_op_has_a_section() -> None:
    """Each op of protocol v1 has its own section in the doc."""
    assert set(OPS) == set(re.findall(r"^### `(\w+)`$", TEXT, re.M))


@pytest.mark.parametrize("example", examples("request"), ids=lambda e: f"{e['op']}-{e['id']}")
def test_request_examples_parse(example: dict[str, object]) -> None:
    """Every request example is a valid request."""
    request_id, request = parse_request(json.dumps(example).encode())
    assert (example["id"], example["op"]) == (request_id, request.op)


def test_response_examples_have_their_model_shape() -> None:
    """Every successful response example validates against its op's result model."""
    ops = {e["id"]: e["op"] for e in examples("request")}
    responses = examples("response")
    assert responses
    for response in responses:
        if response["ok"]:
            RESULTS[str(ops[response["id"]])].model_validate(response["result"], strict=False)
