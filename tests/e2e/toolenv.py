"""Cached virtual environments for the real programs: Poetry, pip, uv, keyring, pypiserver,
and the publishing tools twine, pdm and hatch.

Creating them costs a minute, so they are built once per machine and reused: each lives in
``.e2e/envs/<random>/`` at the repository root (``HELPERD_E2E_CACHE`` moves it) and is
published by an atomic symlink named after the tool's version and the interpreter, such as
``.e2e/poetry-2.5.1-py311``. A venv cannot be moved (its scripts name their interpreter by
absolute path), so it is created where it stays and only the symlink is swapped in; an
environment whose build died half-way is never linked and is removed by the next build.

The environments that hold the helperd keyring plugin get the current ``./client`` again
whenever its source changed (a hash of its files is stamped into each environment), with
``--no-deps --force-reinstall``, so that the tool's own pins (Poetry's ``keyring``) stay.

Concurrency: `prepared_tools` holds a shared ``fcntl`` lock on ``.e2e/.lock`` for the whole
test session, and takes it exclusively only while it builds or reinstalls, so parallel runs
share ready environments and no run swaps the plugin under another run's feet.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HATCH_VERSION",
    "KEYRING_VERSION",
    "PDM_VERSION",
    "PIP_VERSION",
    "POETRY_VERSION",
    "PYPISERVER_VERSION",
    "TWINE_VERSION",
    "UV_VERSION",
    "Tools",
    "prepared_tools",
]

POETRY_VERSION = "2.5.1"
PIP_VERSION = "26.3"
UV_VERSION = "0.13.9"
KEYRING_VERSION = "25.7.0"
PYPISERVER_VERSION = "2.4.2"
PASSLIB_VERSION = "1.7.4"
# The publishing tools, each with helperd's plugin beside its own keyring. pdm comes with the
# hishel it was released with (see _specs). pdm and hatch upload wheels the tests build themselves
# (--no-build, or a named file), so their build backends (pdm-backend, hatchling) are never
# fetched inside a sandbox.
TWINE_VERSION = "7.0.0"
PDM_VERSION = "2.29.4"
HISHEL_VERSION = "1.4.0"
HATCH_VERSION = "1.18.2"

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "client"
BUILD_TIMEOUT = 900.0
"""Seconds one build step (a venv, a pip install) may take: PyPI downloads included."""
BUILDERS = 3
"""Environments built at once: each build waits on PyPI for much of its time, so three of
them side by side took a fresh build (cold pip cache) from 98 s to 63 s on two CPUs."""

_COMPLETE = ".helperd-e2e-complete"
_STAMP = ".helperd-client.sha256"
_PY = f"py{sys.version_info.major}{sys.version_info.minor}"
_CLIENT_SKIP = {"build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

# Prints the lowest keyring version that the installed Poetry accepts (its own metadata).
_OLDEST_KEYRING = """
from importlib.metadata import requires
from packaging.requirements import Requirement
for line in requires("poetry") or []:
    req = Requirement(line)
    if req.name == "keyring":
        floor = [s.version for s in req.specifier if s.operator in (">=", "==", "~=")]
        print(min(floor, key=lambda v: tuple(int(p) for p in v.split("."))))
        break
"""


@dataclass(frozen=True)
class Tools:
    """The ready environments (their real paths) and the versions in them."""

    root: Path
    poetry_env: Path
    keyring_env: Path
    oldest_keyring_env: Path
    oldest_keyring_version: str
    pip_env: Path
    uv_env: Path
    pypiserver_env: Path
    twine_env: Path
    pdm_env: Path
    hatch_env: Path
    build_seconds: float

    @property
    def poetry(self) -> Path:
        """The ``poetry`` executable (the plugin is installed in its venv)."""
        return self.poetry_env / "bin" / "poetry"

    @property
    def uv(self) -> Path:
        """The ``uv`` executable."""
        return self.uv_env / "bin" / "uv"

    @property
    def keyring_bin(self) -> Path:
        """The folder holding the ``keyring`` CLI next to the plugin (for PATH)."""
        return self.keyring_env / "bin"

    @property
    def pip_python(self) -> Path:
        """A Python whose pip has no keyring and no plugin (the subprocess provider's pip)."""
        return self.pip_env / "bin" / "python"

    @property
    def plugin_python(self) -> Path:
        """The Python of the env holding keyring, the plugin and pip (the import provider's)."""
        return self.keyring_env / "bin" / "python"


@dataclass(frozen=True)
class _Spec:
    """One environment: what pip installs into it and whether it gets the plugin."""

    name: str
    version: str
    requirements: tuple[str, ...]
    plugin: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}-{_PY}"


def _specs(oldest_keyring: str | None = None) -> dict[str, _Spec]:
    pip = f"pip=={PIP_VERSION}"
    specs = {
        "pip": _Spec("pip", PIP_VERSION, (pip, "setuptools>=68")),
        "poetry": _Spec("poetry", POETRY_VERSION, (pip, f"poetry=={POETRY_VERSION}"), True),
        "keyring": _Spec("keyring", KEYRING_VERSION, (pip, f"keyring=={KEYRING_VERSION}"), True),
        "uv": _Spec("uv", UV_VERSION, (pip, f"uv=={UV_VERSION}")),
        "twine": _Spec("twine", TWINE_VERSION, (pip, f"twine=={TWINE_VERSION}"), True),
        # hishel 2.0 dropped SyncSqliteStorage, which pdm 2.29 imports: pdm asks for
        # hishel>=1.4 and would get 2.0. (pdm[locked] pins it too, but also a certifi
        # that PyPI mirrors may lack.)
        "pdm": _Spec(
            "pdm", PDM_VERSION, (pip, f"pdm=={PDM_VERSION}", f"hishel=={HISHEL_VERSION}"), True
        ),
        "hatch": _Spec("hatch", HATCH_VERSION, (pip, f"hatch=={HATCH_VERSION}"), True),
        "pypiserver": _Spec(
            "pypiserver",
            PYPISERVER_VERSION,
            (pip, f"pypiserver=={PYPISERVER_VERSION}", f"passlib=={PASSLIB_VERSION}"),
        ),
    }
    if oldest_keyring is not None:
        specs["oldest"] = _Spec(
            "keyring", oldest_keyring, (pip, f"keyring=={oldest_keyring}"), plugin=True
        )
    return specs


def cache_root() -> Path:
    """Where the environments live: ``$HELPERD_E2E_CACHE``, else ``.e2e`` in the repository."""
    return Path(os.environ.get("HELPERD_E2E_CACHE") or REPO / ".e2e").resolve()


def _build_env() -> dict[str, str]:
    """The environment of build steps: this machine's pip settings, a cache inside the root."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PIP_CACHE_DIR"] = str(cache_root() / "cache" / "pip")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def _check(args: list[str], *, env: Mapping[str, str] | None = None) -> str:
    """Run a build step; raise with its output when it fails or takes too long."""
    try:
        done = subprocess.run(
            args,
            env=dict(env or _build_env()),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"timed out after {BUILD_TIMEOUT} s: {args}") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"failed ({done.returncode}): {' '.join(args)}\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    return done.stdout


def client_hash() -> str:
    """A hash of ./client's source files: it changes whenever the plugin's code does."""
    digest = hashlib.sha256()
    for path in sorted(CLIENT.rglob("*")):
        relative = path.relative_to(CLIENT)
        if any(part in _CLIENT_SKIP or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file():
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _ready(link: Path) -> Path | None:
    """The real folder behind ``link`` when it is a complete environment, else None."""
    if not link.is_symlink():
        return None
    target = link.resolve()
    return target if (target / _COMPLETE).is_file() else None


def _build(spec: _Spec, root: Path, wheel: Path | None) -> Path:
    """Create the venv in its final place, install, mark it complete, swap the link in."""
    envs = root / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"{spec.key}.", dir=envs))
    _check([sys.executable, "-m", "venv", str(target)])
    python = str(target / "bin" / "python")
    _check([python, "-m", "pip", "install", "--quiet", *spec.requirements])
    if spec.plugin:
        assert wheel is not None
        _check([python, "-m", "pip", "install", "--quiet", str(wheel)])
    (target / _COMPLETE).write_text(f"{spec.key}\n")
    link = root / spec.key
    staging = root / f".{spec.key}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    staging.symlink_to(target.relative_to(root))
    staging.replace(link)
    return target


def _client_wheel(pip_env: Path, out: Path) -> Path:
    """Build the helperd-client wheel from a copy of ./client (nothing written in the tree)."""
    source = out / "client"
    shutil.copytree(
        CLIENT,
        source,
        ignore=lambda _dir, names: [
            n for n in names if n in _CLIENT_SKIP or n.endswith(".egg-info")
        ],
    )
    _check(
        [
            str(pip_env / "bin" / "python"),
            *("-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"),
            *("-w", str(out), str(source)),
        ]
    )
    (wheel,) = out.glob("helperd_client-*.whl")
    return wheel


def _refresh_plugin(env: Path, wheel: Path, digest: str) -> None:
    """Put the current plugin into ``env`` without touching its other packages."""
    python = str(env / "bin" / "python")
    _check(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel)]
    )
    (env / _STAMP).write_text(digest + "\n")


def _oldest_keyring(poetry_env: Path) -> str:
    """The lowest keyring version that this Poetry's metadata accepts."""
    version = _check([str(poetry_env / "bin" / "python"), "-c", _OLDEST_KEYRING]).strip()
    if not version:
        raise RuntimeError("Poetry's metadata names no keyring requirement")
    return version


def _prune(root: Path) -> None:
    """Remove environments that no link points to (old versions, interrupted builds)."""
    envs = root / "envs"
    if not envs.is_dir():
        return
    used = {link.resolve() for link in root.iterdir() if link.is_symlink()}
    for folder in envs.iterdir():
        if folder.resolve() not in used:
            shutil.rmtree(folder, ignore_errors=True)


class _NeedsWork(Exception):
    """An environment is missing or holds an outdated plugin (raised when not building)."""


def _prepare(root: Path, *, build: bool) -> Tools:
    """The ready environments; with ``build`` false, raise `_NeedsWork` instead of changing any."""
    started = time.monotonic()
    digest = client_hash()
    ready: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="hd-wheel-") as scratch:
        wheel: Path | None = None
        wheel_lock = threading.Lock()

        def plugin_wheel() -> Path:
            nonlocal wheel
            with wheel_lock:  # built once, by the first build that needs it
                if wheel is None:
                    wheel = _client_wheel(ready["pip"], Path(scratch))
                return wheel

        def ensure(key: str, spec: _Spec) -> None:
            env = _ready(root / spec.key)
            if not build and (env is None or (spec.plugin and _stamp(env) != digest)):
                raise _NeedsWork(spec.key)
            if env is None:
                env = _build(spec, root, plugin_wheel() if spec.plugin else None)
            if spec.plugin and _stamp(env) != digest:
                _refresh_plugin(env, plugin_wheel(), digest)
            ready[key] = env

        specs = _specs()
        ensure("pip", specs["pip"])  # its pip builds the plugin's wheel
        tools = ("poetry", "keyring", "uv", "pypiserver", "twine", "pdm", "hatch")
        with ThreadPoolExecutor(BUILDERS, thread_name_prefix="e2e-build") as pool:
            # Each is its own venv and link; pip's cache is safe to share. The first error
            # (or _NeedsWork) is raised here, once the builds under way have finished.
            for done in [pool.submit(ensure, key, specs[key]) for key in tools]:
                done.result()
        oldest = _oldest_keyring(ready["poetry"])
        ensure("oldest", _specs(oldest)["oldest"])
    if build:
        _prune(root)
    return Tools(
        root=root,
        poetry_env=ready["poetry"],
        keyring_env=ready["keyring"],
        oldest_keyring_env=ready["oldest"],
        oldest_keyring_version=oldest,
        pip_env=ready["pip"],
        uv_env=ready["uv"],
        pypiserver_env=ready["pypiserver"],
        twine_env=ready["twine"],
        pdm_env=ready["pdm"],
        hatch_env=ready["hatch"],
        build_seconds=time.monotonic() - started,
    )


def _stamp(env: Path) -> str | None:
    try:
        return (env / _STAMP).read_text().strip()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def prepared_tools() -> Iterator[Tools]:
    """Build what is missing, refresh the plugin, and keep the environments stable meanwhile."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as lock:
        try:
            # Most runs find everything ready: a shared lock lets them run side by side.
            fcntl.flock(lock, fcntl.LOCK_SH)
            try:
                tools = _prepare(root, build=False)
            except _NeedsWork:
                fcntl.flock(lock, fcntl.LOCK_UN)
                fcntl.flock(lock, fcntl.LOCK_EX)
                tools = _prepare(root, build=True)
                # Downgrade: other runs may use the environments too, but not change them.
                fcntl.flock(lock, fcntl.LOCK_SH)
            yield tools
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
