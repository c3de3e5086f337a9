"""Every rule in one place: the names tools use appear as code in exactly one module.

A string literal counts wherever it holds one of the names below (an f-string's fixed parts
included); docstrings and comments do not, since they only describe the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = (ROOT / "helperd", ROOT / "client" / "helperd_client")
HOME = "client/helperd_client/names.py"

LITERALS = (
    "__token__",
    "__poetry_source_empty_username__",
    "python-poetry-check",
    "poetry-repository-",
    "pdm-pypi-",
)


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of ``tree`` (module, classes, functions, attributes)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for index, stmt in enumerate(body):
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
                continue
            # The first statement of a body, or the string after an assignment (attribute doc).
            if index == 0 or isinstance(body[index - 1], ast.Assign | ast.AnnAssign):
                found.add(id(stmt.value))
    return found


def _strings(path: Path) -> Iterator[str]:
    """Every string literal of the module at ``path`` that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.value


def holders(literal: str) -> list[str]:
    """The modules (paths from the repository root) whose code holds ``literal``."""
    return sorted(
        str(path.relative_to(ROOT))
        for tree in TREES
        for path in tree.rglob("*.py")
        if any(literal in text for text in _strings(path))
    )


@pytest.mark.parametrize("literal", LITERALS)
def test_each_tool_name_is_spelled_in_one_module(literal: str) -> None:
    """Each of the names tools use is spelled out in `helperd_client.names` alone."""
    assert [HOME] == holders(literal)


def test_the_scan_sees_code_and_skips_docstrings(tmp_path: Path) -> None:
    """The scan counts a literal in code and in an f-string, and skips docstrings and comments."""
    module = tmp_path / "m.py"
    module.write_text(
        '"""Module doc: __token__."""\n'
        "X = 1\n"
        '"""Attribute doc: __token__."""\n'
        "# a comment: __token__\n"
        "def f(name: str) -> str:\n"
        '    """Function doc: __token__."""\n'
        '    return f"pdm-pypi-{name}"\n'
        'Y = "__token__"\n'
    )
    assert ["__token__", "pdm-pypi-"] == sorted(
        literal for literal in LITERALS if any(literal in s for s in _strings(module))
    )
