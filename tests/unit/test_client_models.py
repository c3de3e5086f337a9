"""The client's result dataclasses say what the daemon's pydantic results say.

`helperd_client` is stdlib only, so it cannot import the daemon's models; these tests keep the
two in step: the same field names, and the same types as they travel as JSON (a `Literal` or a
`StrEnum` is a ``str``, a list a tuple, a `SecretStr` a ``str``), optionality included.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import helperd_client.client as client_module
import pytest
from helperd_client.client import Credential, Hello, RecordInfo, Status
from pydantic import BaseModel, SecretStr

from helperd.core import protocol

PAIRS: list[tuple[type[Any], type[BaseModel]]] = [
    (Credential, protocol.GetResult),
    (RecordInfo, protocol.RecordInfo),
    (Status, protocol.StatusResult),
    (Hello, protocol.HelloResult),
]


def wire_type(annotation: Any) -> Any:
    """``annotation`` as its value travels in JSON: what both sides must agree on."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        found = wire_type(args[0])
    elif origin is Literal:
        (found,) = {type(value) for value in args}
    elif origin in (Union, types.UnionType):
        found = frozenset(wire_type(member) for member in args)
    elif origin in (list, tuple):
        found = ("sequence", wire_type(args[0]))
    elif annotation is SecretStr:
        found = str
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found = dict[str, Any]  # a nested object: the client keeps it as a plain mapping
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        (found,) = {type(member.value) for member in annotation}
    else:
        found = annotation
    return found


def client_fields(cls: type[Any]) -> dict[str, Any]:
    """The wire types of a client dataclass: its fields, and its properties (derived fields)."""
    hints = typing.get_type_hints(cls, vars(client_module))
    found = {f.name: wire_type(hints[f.name]) for f in dataclasses.fields(cls)}
    for name, value in vars(cls).items():
        if isinstance(value, property):
            returns = typing.get_type_hints(value.fget, vars(client_module))["return"]
            found[name] = wire_type(returns)
    return found


def model_fields(model: type[BaseModel]) -> dict[str, Any]:
    """The wire types of a pydantic result model's fields."""
    return {name: wire_type(info.annotation) for name, info in model.model_fields.items()}


@pytest.mark.parametrize(("dataclass", "model"), PAIRS, ids=lambda c: c.__qualname__)
def test_client_dataclass_matches_the_daemon_model(
    dataclass: type[Any], model: type[BaseModel]
) -> None:
    """Each client result has the daemon model's fields, with the same wire types."""
    assert model_fields(model) == client_fields(dataclass)


def test_wire_type_tells_optional_and_sequences_apart() -> None:
    """The comparison sees a lost ``| None`` and a scalar taken for a list."""
    assert wire_type(int | None) != wire_type(int)
    assert wire_type(list[str]) == wire_type(tuple[str, ...])
    assert wire_type(list[str]) != wire_type(str)
    assert wire_type(Literal["file", "keyring"]) == wire_type(str)
