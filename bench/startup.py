"""Items 3 and 6: whole processes (pip's and uv's ``subprocess`` provider) and import cost.

Every command runs in turn with the others, round after round, and is timed from the bench
process (fork, exec, interpreter start, imports, the request, exit). Beside each, the same
interpreter runs ``-c pass`` and ``-c "import <entry point's module>"``: the differences split
a run into start, imports and the rest. ``-X importtime`` (which carries overhead of its own)
only names the largest imports of the whole run, keyring's backend plugins included.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.process import time_command
from bench.stats import ratio, summarize

__all__ = ["Command", "ImportLine", "import_cost", "import_lines", "processes"]

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass(frozen=True)
class Command:
    """One command of the subprocess table, with its interpreter's ``-c pass`` baseline."""

    key: str
    label: str
    argv: tuple[str, ...]
    env: dict[str, str]
    python: Path
    expect: bytes | None = None
    importtime_code: str | None = None  # the same work as Python code, for -X importtime
    import_code: str | None = None  # only the imports of the entry point, timed as a process


@dataclass(frozen=True)
class ImportLine:
    """One line of ``-X importtime``: self and cumulative microseconds, depth, module."""

    self_us: int
    cumulative_us: int
    depth: int
    module: str


def import_lines(python: Path, code: str, env: Mapping[str, str]) -> list[ImportLine]:
    """Run ``python -X importtime -c code`` and parse what it prints on stderr.

    Raises:
        RuntimeError: the code failed.
    """
    done = subprocess.run(
        [str(python), "-X", "importtime", "-c", code],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"-X importtime run failed: {done.stderr[-2000:]}")
    lines = []
    for raw in done.stderr.splitlines():
        match = _LINE.match(raw)
        if match:
            self_us, cumulative, indent, module = match.groups()
            lines.append(ImportLine(int(self_us), int(cumulative), len(indent) // 2, module))
    return lines


def _top_level_us(lines: Sequence[ImportLine]) -> int:
    return sum(line.cumulative_us for line in lines if line.depth == 0)


def _groups(lines: Sequence[ImportLine], baseline: set[str]) -> dict[str, int]:
    """Top-level imports beyond the interpreter's own start-up, by root package."""
    groups: dict[str, int] = {}
    for line in lines:
        if line.depth == 0 and line.module not in baseline:
            root = line.module.split(".")[0]
            groups[root] = groups.get(root, 0) + line.cumulative_us
    return groups


def processes(
    commands: Sequence[Command], baselines: Mapping[Path, dict[str, str]], runs: int, traces: int
) -> dict[str, Any]:
    """Wall time of every command over ``runs`` rounds, and where it goes.

    Args:
        commands: the commands to time.
        baselines: for each interpreter, the environment of its ``-c pass`` baseline.
        runs: rounds of timed runs.
        traces: ``-X importtime`` runs per command (medians are kept).
    """
    keys = [f"pass:{python}" for python in baselines] + [c.key for c in commands]
    keys += [f"imports:{c.key}" for c in commands]
    walls: dict[str, list[float]] = {key: [] for key in keys}
    for turn in range(runs):
        for python, env in baselines.items():
            walls[f"pass:{python}"].append(time_command([python, "-c", "pass"], env=env))
        order = list(commands[turn % len(commands) :]) + list(commands[: turn % len(commands)])
        for command in order:
            walls[command.key].append(
                time_command(command.argv, env=command.env, expect=command.expect)
            )
            if command.import_code is not None:
                walls[f"imports:{command.key}"].append(
                    time_command([command.python, "-c", command.import_code], env=command.env)
                )
    start_imports: dict[Path, tuple[float, set[str]]] = {}
    for python, env in baselines.items():
        traced = [import_lines(python, "pass", env) for _ in range(traces)]
        start_imports[python] = (
            statistics.median(_top_level_us(t) for t in traced),
            {line.module for t in traced for line in t if line.depth == 0},
        )
    rows = []
    for python, _env in baselines.items():
        wall = summarize(walls[f"pass:{python}"]).scaled(1e3)
        rows.append(
            {"key": f"pass:{python}", "label": "`python -c pass`", "python": str(python)}
            | {"wall_ms": wall.as_dict()}
        )
    for command in commands:
        wall = summarize(walls[command.key]).scaled(1e3)
        start = summarize(walls[f"pass:{command.python}"]).scaled(1e3)
        row: dict[str, Any] = {
            "key": command.key,
            "label": command.label,
            "python": str(command.python),
            "argv": " ".join(
                Path(command.argv[0]).name if i == 0 else a for i, a in enumerate(command.argv)
            ),
            "wall_ms": wall.as_dict(),
            "vs_python": ratio(wall.p50, start.p50),
        }
        if command.import_code is not None:
            imported = summarize(walls[f"imports:{command.key}"]).scaled(1e3)
            row["split_ms"] = {
                "interpreter start": start.p50,
                f"`{command.import_code}`": imported.p50 - start.p50,
                "the rest (keyring's discovery, the request, exit)"
                if "keyring" in command.key
                else "the rest (the request, exit)": wall.p50 - imported.p50,
            }
        if command.importtime_code is not None:
            _base_us, base_modules = start_imports[command.python]
            traced = [
                import_lines(command.python, command.importtime_code, command.env)
                for _ in range(traces)
            ]
            groups = _groups(traced[len(traced) // 2], base_modules)
            row["import_groups_ms"] = {
                name: us / 1e3 for name, us in sorted(groups.items(), key=lambda kv: -kv[1])[:8]
            }
        rows.append(row)
    return {"runs": runs, "traces": traces, "rows": rows}


def import_cost(python: Path, env: Mapping[str, str], runs: int, traces: int) -> dict[str, Any]:
    """What ``import helperd_client.keyring_backend`` adds on top of ``import keyring``."""
    plugin = "helperd_client.keyring_backend"
    keyring_us, plugin_us = [], []
    modules: dict[str, int] = {}
    for _ in range(traces):
        lines = import_lines(python, f"import keyring; import {plugin}", env)
        at = next(i for i, line in enumerate(lines) if line.depth == 0 and line.module == "keyring")
        keyring_us.append(lines[at].cumulative_us)
        after = lines[at + 1 :]
        plugin_us.append(sum(line.cumulative_us for line in after if line.depth == 0))
        for line in after:
            modules[line.module] = modules.get(line.module, 0) + line.self_us
    walls: dict[str, list[float]] = {"pass": [], "keyring": [], "both": []}
    codes = {"pass": "pass", "keyring": "import keyring", "both": f"import keyring, {plugin}"}
    for _ in range(runs):
        for key, code in codes.items():
            walls[key].append(time_command([python, "-c", code], env=env))
    wall = {key: summarize(values).scaled(1e3) for key, values in walls.items()}
    keyring_only = wall["keyring"].p50 - wall["pass"].p50
    extra = wall["both"].p50 - wall["keyring"].p50
    keyring_ms = summarize(keyring_us).scaled(1e-3)
    plugin_ms = summarize(plugin_us).scaled(1e-3)
    return {
        "traces": traces,
        "runs": runs,
        "keyring_ms": keyring_ms.as_dict(),
        "plugin_ms": plugin_ms.as_dict(),
        "importtime_ratio": ratio(plugin_ms.p50, keyring_ms.p50),
        "wall_ms": {key: value.as_dict() for key, value in wall.items()},
        "wall_ratio": ratio(extra, keyring_only),
        "modules_us": {
            name: us / traces for name, us in sorted(modules.items(), key=lambda kv: -kv[1])
        },
        "python": str(python),
    }
