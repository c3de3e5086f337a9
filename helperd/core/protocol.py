"""Protocol v1: the pydantic models of every request and result, the single source of truth.

A request line goes through `parse_request`, which answers the envelope questions in the
order a client can act on them (is it JSON, which version, which op) before validating the
arguments against the op's model. `render_ok` and `render_error` build response lines.
docs/protocol.md embeds the JSON Schema that `json_schema` generates from these models.

Validation errors are never put on the wire or in a log as pydantic prints them: they quote
the input, which may hold a password. `parse_request` names only the offending field.

The result models live in `helperd.core.results`; this module re-exports them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from helperd_client.errors import (
    BadRequestError,
    HelperdError,
    UnknownOpError,
    UnsupportedVersionError,
)
from helperd_client.wire import (
    MAX_LINE,
    MAX_RESPONSE,
    OPS,
    PROTOCOL_VERSION,
    decode_line,
    encode_line,
)
from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    SecretStr,
    SerializationInfo,
    Strict,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_validator,
)

from helperd.core.model_base import _REVEAL, _Model, _reveal
from helperd.core.paging import MAX_PAGE
from helperd.core.provider import ProviderSpec
from helperd.core.record import Kind
from helperd.core.results import (
    Ack,
    CertPathResult,
    DeleteResult,
    GetResult,
    HelloResult,
    ListResult,
    MigrateResult,
    RecordInfo,
    RecordKeyInfo,
    Result,
    SetResult,
    StatusResult,
    UpstreamResult,
    UpstreamSettingsInfo,
    UpstreamState,
    UpstreamTest,
)

__all__ = [
    "Ack",
    "CertPathRequest",
    "CertPathResult",
    "DeleteRequest",
    "DeleteResult",
    "GetRequest",
    "GetResult",
    "HelloRequest",
    "HelloResult",
    "InitRequest",
    "ListRequest",
    "ListResult",
    "LockRequest",
    "MigrateRequest",
    "MigrateResult",
    "PasswdRequest",
    "RecordInfo",
    "RecordKeyInfo",
    "Request",
    "RequestError",
    "RequestId",
    "Result",
    "SetRequest",
    "SetResult",
    "StatusRequest",
    "StatusResult",
    "UnlockRequest",
    "UpstreamRequest",
    "UpstreamResult",
    "UpstreamSettingsInfo",
    "UpstreamState",
    "UpstreamTest",
    "json_schema",
    "parse_request",
    "render_error",
    "render_ok",
    "result_json",
]

RequestId = int | str
MAX_ID_CHARS = 256
_Id = Annotated[int, Field(ge=-(2**63), lt=2**63)] | Annotated[str, Field(max_length=MAX_ID_CHARS)]
Timestamp = Annotated[AwareDatetime, Strict(False)]  # ISO-8601 text on the wire
MAX_TEXT = 4096
Text = Annotated[str, Field(max_length=MAX_TEXT)]
KindName = Annotated[Kind, Strict(False)]  # "basic", "token" or "generic" on the wire
Secret = Annotated[SecretStr, Field(max_length=MAX_LINE)]


class _Request(_Model):
    v: Literal[1]
    id: _Id


class HelloRequest(_Request):
    """Ask for the daemon's protocol and version; always allowed, even while locked."""

    op: Literal["hello"]


class StatusRequest(_Request):
    """Ask which store is active, why, and whether it is locked."""

    op: Literal["status"]


class GetRequest(_Request):
    """Look a credential up by exactly one of ``name``, ``url`` or ``service``."""

    op: Literal["get"]
    name: Text | None = None
    url: Text | None = None
    service: Text | None = None
    username: Text | None = None


class SetRequest(_Request):
    """Add or replace the (name, username) record.

    Exactly one of ``name`` (a repository name, or the service of a ``generic`` entry) and
    ``service`` (a raw keyring service the daemon resolves to a record, as keyring writes do).
    ``username`` defaults to ``__token__`` for tokens and to the empty string otherwise;
    ``kind`` defaults to ``basic`` for a name and is inferred for a service;
    ``urls`` (or a single ``url``) left out keeps the URLs of the record being replaced.
    With ``provider`` (and no ``password``) the daemon runs that command once and stores the
    token it prints: a provider record, a ``token`` record whose ``username`` defaults to the
    provider's; nothing is stored when the run fails.
    """

    op: Literal["set"]
    name: Text | None = None
    service: Text | None = None
    username: Text | None = None
    password: Secret | None = None
    provider: ProviderSpec | None = None
    kind: KindName | None = None
    urls: list[Text] | None = Field(default=None, max_length=64)
    url: Text | None = None
    expires_at: Timestamp | None = None
    upstream: bool = False
    """Write the secret to the upstream engine (docs/fleet.md) instead of the local store."""

    @field_serializer("password", when_used="json")
    def _password(self, value: SecretStr | None, info: SerializationInfo) -> str | None:
        return None if value is None else _reveal(value, info)

    @model_validator(mode="after")
    def _password_or_provider(self) -> SetRequest:
        if (self.password is None) == (self.provider is None):
            raise ValueError("give exactly one of password and provider")
        return self


class DeleteRequest(_Request):
    """Delete one record (with ``username``) or every record of ``name``.

    A raw keyring ``service`` may stand in for ``name``, resolved as for ``set``.
    """

    op: Literal["delete"]
    name: Text | None = None
    service: Text | None = None
    username: Text | None = None


class ListRequest(_Request):
    """List the records' public facts: all of them, or a page of ``limit`` after ``after``."""

    op: Literal["list"]
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] | None = None
    after: RecordKeyInfo | None = None


class InitRequest(_Request):
    """Create a new passphrase-protected file store (no passphrase for a key-file store)."""

    op: Literal["init"]
    passphrase: Secret | None = None


class LockRequest(_Request):
    """Drop the store's key from memory."""

    op: Literal["lock"]


class UnlockRequest(_Request):
    """Open the store; never creates one."""

    op: Literal["unlock"]
    passphrase: Secret | None = None


class PasswdRequest(_Request):
    """Re-encrypt the file store under a new passphrase."""

    op: Literal["passwd"]
    old: Secret
    new: Secret


class MigrateRequest(_Request):
    """Move every record to the other store; ``passphrase`` opens or creates a file store."""

    op: Literal["migrate"]
    to: Literal["keyring", "file"]
    passphrase: Secret | None = None


class CertPathRequest(_Request):
    """Ask where the daemon keeps the client-certificate file of ``name`` (cert + key, PEM)."""

    op: Literal["cert_path"]
    name: Text


class UpstreamRequest(_Request):
    """Show the upstream secret engine's settings and state, test it, or refresh it now."""

    op: Literal["upstream"]
    action: Literal["show", "test", "refresh"]


Request = Annotated[
    HelloRequest
    | StatusRequest
    | GetRequest
    | SetRequest
    | DeleteRequest
    | ListRequest
    | InitRequest
    | LockRequest
    | UnlockRequest
    | PasswdRequest
    | MigrateRequest
    | CertPathRequest
    | UpstreamRequest,
    Field(discriminator="op"),
]
_REQUEST: TypeAdapter[Request] = TypeAdapter(Request)


def parse_request(line: bytes) -> tuple[RequestId | None, Request]:
    """Parse one request line.

    Returns:
        The request id and the validated request.

    Raises:
        RequestError: carrying the id (when one could be read) and the error to answer with.
    """
    try:
        message = decode_line(line)
    except BadRequestError as exc:
        raise RequestError(None, exc) from None
    raw_id = message.get("id")
    request_id = raw_id if _echoable(raw_id) else None
    version = message.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise RequestError(
            request_id,
            UnsupportedVersionError(
                f"this daemon speaks protocol v{PROTOCOL_VERSION}; the request asked for"
                f" {'no version' if version is None else 'v' + str(version)[:16]}"
                ": upgrade the older of helperd and its client"
            ),
        )
    op = message.get("op")
    if op not in OPS:
        shown = repr(op)[:40] if isinstance(op, str) else "no op"
        raise RequestError(request_id, UnknownOpError(f"unknown op {shown}"))
    try:
        return request_id, _REQUEST.validate_python(message)
    except ValidationError as exc:
        problem = _describe(exc)
    # Out of the except clause, so it keeps no context: pydantic's error quotes the request.
    raise RequestError(request_id, BadRequestError(problem))


def _echoable(raw_id: object) -> bool:
    """Whether an id can be copied into the answer (an unbounded one could outgrow the line)."""
    if type(raw_id) is int:
        return -(2**63) <= raw_id < 2**63
    return type(raw_id) is str and len(raw_id) <= MAX_ID_CHARS


def _describe(exc: ValidationError) -> str:
    """Say which fields are wrong without quoting their values (they may be secrets)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"][1:]) or "request"
        problems.append(f"{where}: {error['type']}")
    return "invalid request: " + "; ".join(problems[:5])


class RequestError(Exception):
    """A request that cannot be served, with the id to answer it under."""

    def __init__(self, request_id: RequestId | None, error: HelperdError) -> None:
        super().__init__(error.message)
        self.request_id = request_id
        self.error = error


def render_ok(request_id: RequestId | None, result: BaseModel) -> bytes:
    """The response line for a result; the only place secrets are revealed for the wire."""
    body = result_json(result)
    envelope = {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": body}
    return encode_line(envelope, limit=MAX_RESPONSE)


def result_json(result: BaseModel) -> dict[str, Any]:
    """A result as the wire carries it, secrets revealed (for `render_ok` and the hot path)."""
    return result.model_dump(mode="json", context={_REVEAL: True})


def render_error(request_id: RequestId | None, error: HelperdError) -> bytes:
    """The response line for an error."""
    return encode_line(
        {
            "v": PROTOCOL_VERSION,
            "id": request_id,
            "ok": False,
            "error": {"code": error.code, "message": error.message},
        },
        limit=MAX_RESPONSE,
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every request and result, for docs/protocol.md."""
    results: TypeAdapter[Result] = TypeAdapter(Result)
    return {
        "request": _REQUEST.json_schema(),
        "result": results.json_schema(),
    }
