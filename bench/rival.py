"""Item 2: the same secret read through keyring from helperd and from its rivals, in-process.

Each backend is read in fresh processes (`bench/probe.py`): the first call of each process
(connections, D-Bus sessions, key derivations) and then warm calls in the same process.
helperd's plugin and the Secret Service run in the e2e keyring venv (keyring and helperd's
plugin, nothing else, as pip's keyring provider has it) and are chosen by keyring's own
discovery; keyrings.alt and keyrings.cryptfile run in the bench venv, their passphrase set on
the instance. The processes take turns, so noise spreads over all of them alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.process import BENCH
from bench.stats import ratio, summarize
from bench.store import PASSWORD, USERNAME, Layout
from helperd.testing import daemon_env

__all__ = ["RIVALS", "Probe", "rivals", "seed_file_rivals", "seed_secret_service"]

PASSPHRASE = "bench keyring passphrase"  # noqa: S105 - protects a throwaway file
SERVICE = f"poetry-repository-{Layout.name(Layout(10).target)}"
SECRET = f"{PASSWORD}-{Layout(10).target}"

RIVALS = ("plugin", "client", "secret_service", "alt", "cryptfile")
LABELS = {
    "plugin": "helperd plugin (keyring.get_password)",
    "client": "helperd_client.Client, kept connection",
    "secret_service": "Secret Service (gnome-keyring) via keyring",
    "alt": "keyrings.alt EncryptedKeyring",
    "cryptfile": "keyrings.cryptfile CryptFileKeyring",
}
CHOSEN = {
    "plugin": "helperd_client.keyring_backend",
    "secret_service": "keyring.backends.SecretService",
}


@dataclass(frozen=True)
class Probe:
    """How to run one backend's probe: its Python, its environment, its warm-call count."""

    python: Path
    env: dict[str, str]
    warm: int


def _setter(python: Path, env: Mapping[str, str], code: str) -> None:
    done = subprocess.run(
        [str(python), "-c", code],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"storing a rival's secret failed: {done.stderr[-2000:]}")


def seed_secret_service(python: Path, env: Mapping[str, str]) -> None:
    """Store the secret in the Secret Service the way keyring does."""
    code = (
        "from keyring.backends.SecretService import Keyring\n"
        f"Keyring().set_password({SERVICE!r}, {USERNAME!r}, {SECRET!r})\n"
    )
    _setter(python, env, code)


def seed_file_rivals(env: Mapping[str, str]) -> list[str]:
    """Store the secret in keyrings.alt's and keyrings.cryptfile's files; return those that work.

    A rival that does not install or import here is left out (and the report says so).
    """
    working = []
    for name, module, cls in (
        ("alt", "keyrings.alt.file", "EncryptedKeyring"),
        ("cryptfile", "keyrings.cryptfile.cryptfile", "CryptFileKeyring"),
    ):
        code = (
            f"from {module} import {cls}\n"
            f"ring = {cls}()\n"
            f"ring.keyring_key = {PASSPHRASE!r}\n"
            f"ring.set_password({SERVICE!r}, {USERNAME!r}, {SECRET!r})\n"
        )
        try:
            _setter(Path(sys.executable), env, code)
        except RuntimeError as exc:
            print(f"bench: leaving out {name}: {exc}", file=sys.stderr)
            continue
        working.append(name)
    return working


def _probe(name: str, probe: Probe) -> dict[str, Any]:
    argv = [str(probe.python), str(BENCH / "probe.py"), name, SERVICE, USERNAME, str(probe.warm)]
    if name in ("alt", "cryptfile"):
        argv.append(PASSPHRASE)
    done = subprocess.run(
        argv,
        env={**probe.env, "PROBE_EXPECT": SECRET},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe {name} failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if name in CHOSEN and result["chosen"] != CHOSEN[name]:
        raise RuntimeError(f"probe {name}: keyring chose {result['chosen']}, not {CHOSEN[name]}")
    return result


def probes(
    *,
    keyring_python: Path,
    helperd_home: Path,
    empty_home: Path,
    secret_service_env: Mapping[str, str],
    file_env: Mapping[str, str],
    file_rivals: list[str],
    warm: Mapping[str, int],
) -> dict[str, Probe]:
    """The probe of every backend that runs here."""
    plugin_env = daemon_env(helperd_home)
    # helperd's plugin now always outranks other backends (it starts a daemon on demand), so
    # keyring is told which backend to use, as a user without helperd would have it chosen.
    ss_env = {
        **daemon_env(empty_home),
        **secret_service_env,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
    }
    found = {
        "plugin": Probe(keyring_python, plugin_env, warm["plugin"]),
        "client": Probe(keyring_python, plugin_env, warm["client"]),
        "secret_service": Probe(keyring_python, ss_env, warm["secret_service"]),
    }
    for name in file_rivals:
        found[name] = Probe(Path(sys.executable), dict(file_env), warm[name])
    return found


def rivals(found: Mapping[str, Probe], processes: int) -> dict[str, Any]:
    """First and warm calls of every backend over ``processes`` fresh processes each."""
    first: dict[str, list[float]] = {name: [] for name in found}
    imports: dict[str, list[float]] = {name: [] for name in found}
    discovery: dict[str, list[float]] = {name: [] for name in found}
    warm: dict[str, list[float]] = {name: [] for name in found}
    names = list(found)
    for turn in range(processes):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            result = _probe(name, found[name])
            first[name].append(result["first_s"])
            imports[name].append(result["import_s"])
            discovery[name].append(result["discovery_s"])
            warm[name].extend(result["warm_s"])
    rows = []
    plugin_warm = summarize(warm["plugin"]).p50
    plugin_first = summarize(first["plugin"]).p50
    for name in RIVALS:
        if name not in found:
            continue
        warm_us = summarize(warm[name]).scaled(1e6)
        first_ms = summarize(first[name]).scaled(1e3)
        rows.append(
            {
                "backend": name,
                "label": LABELS[name],
                "first_ms": first_ms.as_dict(),
                "import_ms": summarize(imports[name]).scaled(1e3).as_dict(),
                "discovery_ms": summarize(discovery[name]).scaled(1e3).as_dict(),
                "warm_us": warm_us.as_dict(),
                "warm_vs_plugin": ratio(warm_us.p50, plugin_warm * 1e6),
                "first_vs_plugin": ratio(first_ms.p50, plugin_first * 1e3),
            }
        )
    missing = [name for name in ("alt", "cryptfile") if name not in found]
    return {"processes": processes, "rows": rows, "missing": missing}
