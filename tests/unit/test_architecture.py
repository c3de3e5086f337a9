"""The tree is the architecture: the import arrows between helperd's rooms run one way.

Rooms (docs/architecture.md): ``helperd_client`` (client/), ``helperd.core``, ``helperd.stores``,
``helperd.daemon``, ``helperd.ctl``, ``helperd.integrations``. Every import statement counts,
also those inside functions and under ``if TYPE_CHECKING:``: a lazy import is still an arrow.
The test reads the source (ast), so it needs no dependency and imports none of the code.
It also keeps each module to one job: none is over `MAX_LINES` lines (as ``wc -l`` counts them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"helperd": ROOT / "helperd", "helperd_client": ROOT / "client" / "helperd_client"}

# room -> rooms it must never import (a room is a package prefix; the first match wins).
ROOMS = (
    "helperd_client",
    "helperd.core.service",
    "helperd.core.service_writes",
    "helperd.core.service_passphrase",
    "helperd.core.service_hot",
    "helperd.core",
    "helperd.stores",
    "helperd.daemon",
    "helperd.ctl",
    "helperd.integrations.providers",
    "helperd.integrations",
    "helperd.upstream",
    "helperd.testing",
)
ALLOWED: dict[str, set[str]] = {
    # The stdlib client, the plugin and the shim: nothing of the daemon's package.
    "helperd_client": {"helperd_client"},
    # Pure and shared: the protocol models, records, lookup, settings, the Store interface.
    "helperd.core": {"helperd_client", "helperd", "helperd.core"},
    "helperd.core.service": {
        "helperd_client",
        "helperd",
        "helperd.core",
        "helperd.core.service_writes",
        "helperd.core.service_passphrase",
        "helperd.core.service_hot",
    },
    # The service's op families, split out of service.py: only the service uses them.
    "helperd.core.service_writes": {"helperd_client", "helperd", "helperd.core"},
    "helperd.core.service_passphrase": {"helperd_client", "helperd", "helperd.core"},
    "helperd.core.service_hot": {"helperd_client", "helperd", "helperd.core"},
    # Backends implement core's Store interface; the service above them stays out of reach.
    "helperd.stores": {"helperd_client", "helperd", "helperd.core", "helperd.stores"},
    # The process: it wires core and stores together; it never reaches into helperctl.
    "helperd.daemon": {
        "helperd_client",
        "helperd",
        "helperd.core",
        "helperd.core.service",
        "helperd.stores",
        "helperd.daemon",
        "helperd.integrations.providers",
        "helperd.upstream",
    },
    # helperctl talks to the daemon through the client only; it borrows core's read-only rules
    # (URL checks, record names, settings) and the integrations' file formats.
    "helperd.ctl": {
        "helperd_client",
        "helperd",
        "helperd.core",
        "helperd.ctl",
        "helperd.integrations",
    },
    # Other tools' files: the daemon, helperctl and the service stay out of reach.
    "helperd.integrations": {
        "helperd_client",
        "helperd",
        "helperd.core",
        "helperd.stores",
        "helperd.integrations",
    },
    # The secret engine's client, run by the daemon in worker threads: core's rules (settings,
    # parsing, the cache), and the key file's rule from the stores for its secret files.
    "helperd.upstream": {
        "helperd_client",
        "helperd",
        "helperd.core",
        "helperd.stores",
        "helperd.upstream",
    },
    # Runs provider commands for the daemon: core's rules only. helperctl never runs a
    # provider (it asks the daemon), and the other integrations never reach it.
    "helperd.integrations.providers": {
        "helperd_client",
        "helperd",
        "helperd.core",
        "helperd.integrations.providers",
    },
    # Starts a real daemon as a subprocess and talks to it through the client; writes a big
    # store in one commit through the file store's own encoder, for tests and benchmarks.
    "helperd.testing": {"helperd_client", "helperd", "helperd.core", "helperd.stores"},
    # The package root (its version) and ``python -m helperd``, which starts the daemon.
    "helperd": {"helperd", "helperd.daemon"},
}
# Edges allowed one by one, each with its reason.
EXCEPTIONS = {
    # doctor checks the key file with the daemon's own reader, and drops the bytes at once.
    ("helperd.ctl.doctor_facts", "helperd.stores.keys"),
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: int
    """Its newlines, as ``wc -l`` counts them."""


def modules() -> Iterator[Module]:
    for top, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((top, *parts)).removesuffix(".__init__")
            raw = path.read_bytes()
            tree = ast.parse(raw.decode("utf-8"), str(path))
            yield Module(name, path, tree, raw.count(b"\n"))


def room(module: str) -> str | None:
    """The room ``module`` belongs to: the longest room that is it or a package above it."""
    for candidate in ROOMS:
        if module == candidate or module.startswith(candidate + "."):
            return candidate
    return "helperd" if module in {"helperd", "helperd.__main__"} else None


def imported(module: Module, known: set[str]) -> Iterator[tuple[int, str]]:
    """(line, module) for every helperd or helperd_client module ``module`` imports."""
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in known else base


def violations(mods: list[Module]) -> list[str]:
    """Every import that crosses a rule, as ``path:line: a -> b``."""
    known = {m.name for m in mods}
    found = []
    for module in mods:
        source = room(module.name)
        for line, target in imported(module, known):
            if target.split(".")[0] not in PACKAGES:
                continue  # stdlib and third-party: each room's own business
            allowed = ALLOWED.get(source or "", {"helperd_client", "helperd"})
            if room(target) in allowed or (module.name, target) in EXCEPTIONS:
                continue
            where = module.path.relative_to(ROOT)
            found.append(f"{where}:{line}: {module.name} ({source}) -> {target} ({room(target)})")
    return found


def _import_like(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return True
    if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [
        "TYPE_CHECKING"
    ]:
        return True  # the client's `TYPE_CHECKING = False`: the shim must not import typing
    if isinstance(node, ast.If | ast.Try):  # if TYPE_CHECKING: / try: import ... except ImportError
        return all(_import_like(child) for child in node.body)
    return False


def late_imports(module: Module) -> list[str]:
    """Module-level imports that come after the first statement that is not an import."""
    body = module.tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    found, seen_code = [], False
    for node in body:
        if not _import_like(node):
            seen_code = True
        elif seen_code:
            found.append(f"{module.path.relative_to(ROOT)}:{node.lineno}")
    return found


ALL = list(modules())


def test_every_module_is_in_a_room() -> None:
    """Every module of helperd lives in one of the rooms, or is the package's root, entry point
    or test helper: a new module cannot land outside the layout."""
    assert [] == [m.name for m in ALL if room(m.name) is None]


@pytest.mark.parametrize("expected", ROOMS)
def test_every_room_is_scanned(expected: str) -> None:
    """The scan finds each room's modules (a wrong path would otherwise pass every rule)."""
    assert any(room(m.name) == expected for m in ALL)


def test_imports_run_one_way() -> None:
    """client <- core <- stores; daemon -> core, stores; ctl -> client (and core's rules,
    integrations); integrations never import the daemon or helperctl; nothing imports upward."""
    assert [] == violations(ALL)


# Third-party packages kept in one room: hvac (and the requests it rides on) is the daemon's
# business alone, so helperctl, the client and the keyring plugin never pay for importing it.
CONFINED = {"hvac": "helperd.upstream", "requests": "helperd.upstream"}


def confined_imports(mods: list[Module]) -> list[str]:
    """Every import of a confined package outside its room, as ``path:line: a -> b``."""
    found = []
    for module in mods:
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                names = [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [(node.lineno, node.module)]
            else:
                continue
            for line, name in names:
                home = CONFINED.get(name.split(".")[0])
                if home is not None and room(module.name) != home:
                    where = module.path.relative_to(ROOT)
                    found.append(f"{where}:{line}: {module.name} -> {name}")
    return found


def test_hvac_stays_in_the_upstream_room() -> None:
    """Only ``helperd.upstream`` imports hvac and requests."""
    assert [] == confined_imports(ALL)


def test_a_confined_import_is_reported() -> None:
    """The checker reports hvac imported outside its room, lazily too, and not inside it."""
    outside = _fake("helperd.core.fake", "def f():\n    import hvac.exceptions\n")
    inside = _fake("helperd.upstream.fake", "import hvac\nfrom requests import exceptions\n")
    assert (1, 0) == (len(confined_imports([outside])), len(confined_imports([inside])))


def test_no_import_after_code() -> None:
    """No module imports at its bottom: every module-level import comes before the first other
    statement (the import cycle that once needed ``# noqa: E402`` cannot come back)."""
    assert [] == [where for m in ALL for where in late_imports(m)]


MAX_LINES = 450
"""The most lines a module may have (the project's rule): past it, a module does more than one
job, and is split by job."""


def long_modules(mods: list[Module]) -> list[str]:
    """Every module over `MAX_LINES` lines, as ``path: N lines``."""
    return [f"{m.path.relative_to(ROOT)}: {m.lines} lines" for m in mods if m.lines > MAX_LINES]


def test_no_module_is_over_the_line_limit() -> None:
    """No module of helperd or the client is over `MAX_LINES` lines (one job a module)."""
    found = long_modules(ALL)
    assert not found, f"over {MAX_LINES} lines, split by job:\n" + "\n".join(found)


def _fake(name: str, source: str) -> Module:
    path = ROOT / "helperd" / "fake.py"
    return Module(name, path, ast.parse(source), source.count("\n"))


def test_a_long_module_is_reported() -> None:
    """The checker reports a module one line over the limit, and not one at the limit."""
    at_limit = _fake("helperd.core.fake", "x = 1\n" * MAX_LINES)
    over = _fake("helperd.core.fake", "x = 1\n" * (MAX_LINES + 1))
    assert (["helperd/fake.py: 451 lines"], []) == (long_modules([over]), long_modules([at_limit]))


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("helperd.stores.fake", "from helperd.core.service import Service\n"),
        ("helperd.stores.fake", "def f():\n    from helperd.daemon import server\n"),
        ("helperd.core.fake", "from helperd.stores import file_store\n"),
        (
            "helperd.daemon.server",
            "if TYPE_CHECKING:\n    from helperd.ctl.session import Session\n",
        ),
        ("helperd.ctl.fake", "import helperd.daemon.server\n"),
        ("helperd.integrations.fake", "from helperd.ctl.session import DaemonClient\n"),
        ("helperd.ctl.fake", "from helperd.integrations.providers import runner\n"),
        ("helperd.integrations.poetry", "from helperd.integrations.providers import runner\n"),
        ("helperd.integrations.providers.fake", "from helperd.stores import durable\n"),
        ("helperd.core.fake", "from helperd.integrations.providers.runner import run_provider\n"),
        ("helperd_client.fake", "from helperd.core import lookup\n"),
        ("helperd.upstream.fake", "from helperd.daemon import server\n"),
        ("helperd.ctl.fake", "from helperd.upstream import engine\n"),
        ("helperd.core.fake", "def f():\n    import helperd.upstream.engine\n"),
    ],
)
def test_a_crossing_is_reported(name: str, source: str) -> None:
    """The checker reports an import that crosses a rule, wherever in the module it sits."""
    assert 1 == len(violations([_fake(name, source)]))


def test_a_bottom_import_is_reported() -> None:
    """The checker reports an import below code, and not one under ``if TYPE_CHECKING``."""
    source = (
        '"""Doc."""\nfrom __future__ import annotations\nif TYPE_CHECKING:\n    import os\n'
        "X = 1\nimport sys\n"
    )
    assert ["helperd/fake.py:6"] == late_imports(_fake("helperd.fake", source))
