"""The one command: run every benchmark of issues 7 and 8; write the results, report and plot.

`bench/run.py` calls `main`; see bench/README.md for the command and what each part does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.process import BENCH, REPO, compile_c, helperd_daemon, new_key_file, scratch
from bench.store import Layout, build_store
from helperd.integrations.shim_install import write_shim
from helperd.testing import daemon_env

__all__ = ["Budget", "main"]

SECTIONS = (
    "latency",
    "throughput",
    "rivals",
    "processes",
    "imports",
    "scale",
    "writers",
    "poetry",
    "uv",
    "profile",
    "providers",
    "upstream",
)


@dataclass(frozen=True)
class Budget:
    """How much of everything to measure: the full run, or a smoke run (``--quick``)."""

    rounds: int = 5
    kept: int = 2000
    fresh: int = 800
    clients: tuple[int, ...] = (1, 8, 32)
    load_seconds: float = 1.5
    load_rounds: int = 2
    rival_processes: int = 7
    warm_plugin: int = 300
    warm_client: int = 500
    warm_secret_service: int = 100
    warm_alt: int = 50
    warm_cryptfile: int = 5
    process_runs: int = 15
    traces: int = 5
    import_runs: int = 20
    import_traces: int = 9
    sizes: tuple[int, ...] = (10, 1_000, 100_000)
    starts: int = 3
    gets: int = 10_000
    get_seconds: float = 10.0
    get_rounds: int = 5
    lists: int = 3
    sets: int = 5
    unlocks: int = 3
    poetry_runs: int = 6
    uv_runs: int = 10
    profile_small: int = 3000
    profile_big: int = 10_000
    writer_sizes: tuple[int, ...] = (10, 1_000, 10_000)
    writer_rounds: int = 20
    writer_window: float = 0.3
    provider_gets: int = 2000
    provider_rounds: int = 5
    provider_runs: int = 30
    upstream_gets: int = 500
    upstream_rounds: int = 10
    upstream_refreshes: int = 3


QUICK = Budget(
    rounds=2,
    kept=300,
    fresh=150,
    load_seconds=0.3,
    load_rounds=1,
    rival_processes=2,
    warm_plugin=50,
    warm_client=50,
    warm_secret_service=20,
    warm_alt=10,
    warm_cryptfile=1,
    process_runs=3,
    traces=1,
    import_runs=3,
    import_traces=2,
    sizes=(10, 1_000, 10_000),
    starts=1,
    gets=50,
    get_seconds=1.0,
    get_rounds=2,
    lists=1,
    sets=1,
    unlocks=1,
    poetry_runs=1,
    uv_runs=1,
    profile_small=500,
    profile_big=2_000,
    writer_rounds=4,
    writer_window=0.1,
    provider_gets=200,
    provider_rounds=2,
    provider_runs=5,
)


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only these parts (repeatable)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="the results JSON (default: bench/results/full.json, or quick.json)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="the Markdown report (default: docs/performance.md; a quick run: bench/results/)",
    )
    parser.add_argument(
        "--daemon-source",
        type=Path,
        metavar="CHECKOUT",
        help="with --only writers: section 5b's daemons run the helperd package of another"
        " checkout (first on their PYTHONPATH), to see how the method reads that version;"
        " results and report go to bench/results/daemon-source.json and .md unless given",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: render the report and plot again from --results",
    )
    args = parser.parse_args(argv)
    if args.daemon_source is not None and args.only != ["writers"]:
        parser.error("--daemon-source measures section 5b only: give --only writers")
    return args


class _Clock:
    """Prints each part as it starts and records how long it took."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        print(f"bench: {name} (at {time.perf_counter() - self.started:.0f} s)", flush=True)
        before = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - before


def _secret_service(stack: contextlib.ExitStack) -> dict[str, str] | None:
    """The environment of a private Secret Service, or None where gnome-keyring cannot run."""
    try:
        from tests.support.secret_service import SecretService

        service = stack.enter_context(SecretService())  # stopped by PID when the stack closes
    except BaseException as exc:  # pytest's skip (a missing program) is a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        print(f"bench: no Secret Service here, leaving it out: {exc}", file=sys.stderr)
        return None
    return service.env


def _measure(args: argparse.Namespace, budget: Budget, results: dict[str, Any]) -> None:  # noqa: PLR0912, PLR0915 - one step per part, in order
    from bench import (
        poetry_lock,
        profiling,
        rival,
        scale,
        server_load,
        startup,
        upstream,
        uv_lock,
        writers,
    )
    from tests.e2e.toolenv import prepared_tools

    wanted = set(args.only or SECTIONS)
    clock = _Clock()
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(scratch())
        with clock.part("compiling the C echo server and load generator"):
            binaries = {
                "echo": compile_c(BENCH / "echo.c", work),
                "load": compile_c(BENCH / "load.c", work, "-pthread"),
            }
        tools: Any = None
        if wanted - {"latency", "throughput", "scale", "writers", "providers", "upstream"}:
            with clock.part("preparing the e2e tool venvs (built once per machine)"):
                tools = stack.enter_context(prepared_tools())
        results["versions"] = machine.versions(
            {}
            if tools is None
            else {
                "keyring (e2e keyring venv)": tools.plugin_python,
                "poetry (e2e poetry venv)": tools.poetry_env / "bin" / "python",
                "pypiserver (e2e index venv)": tools.pypiserver_env / "bin" / "python",
            }
        )
        if wanted & {"latency", "throughput"}:
            folder = work / "servers"
            folder.mkdir()
            with server_load.running_servers(folder, binaries, 10) as servers:
                results["request"] = servers.request.decode().strip()
                results["response_bytes"] = len(servers.response)
                if "latency" in wanted:
                    with clock.part("1. latency beside the floor"):
                        results["latency"] = server_load.latency(
                            servers, budget.rounds, budget.kept, budget.fresh
                        )
                if "throughput" in wanted:
                    with clock.part("4. throughput at 1, 8, 32 clients"):
                        results["throughput"] = server_load.throughput(
                            servers, budget.clients, budget.load_seconds, budget.load_rounds
                        )
        if wanted & {"rivals", "processes", "profile"}:
            home = work / "hd"
            home.mkdir(mode=0o700)
            empty = work / "empty"
            empty.mkdir(mode=0o700)
            key = new_key_file(work / "hd.key")
            build_store(home / "store.enc", Layout(10), key_file=key)
            daemon = stack.enter_context(helperd_daemon(home, key))
            ss_env = _secret_service(stack)
            if ss_env is not None:
                rival.seed_secret_service(tools.plugin_python, {**daemon_env(empty), **ss_env})
            if "rivals" in wanted:
                with clock.part("2. rivals, in-process"):
                    files = work / "files"
                    files.mkdir()
                    file_env = {**daemon_env(files), "XDG_DATA_HOME": str(files / "data")}
                    found = rival.probes(
                        keyring_python=tools.plugin_python,
                        helperd_home=daemon.home,
                        empty_home=empty,
                        secret_service_env=ss_env or {},
                        file_env=file_env,
                        file_rivals=rival.seed_file_rivals(file_env),
                        warm={
                            "plugin": budget.warm_plugin,
                            "client": budget.warm_client,
                            "secret_service": budget.warm_secret_service,
                            "alt": budget.warm_alt,
                            "cryptfile": budget.warm_cryptfile,
                        },
                    )
                    if ss_env is None:
                        del found["secret_service"]
                    results["rivals"] = rival.rivals(found, budget.rival_processes)
            if "processes" in wanted:
                with clock.part("3. subprocess paths"):
                    results["processes"] = _processes(
                        startup=startup,
                        tools=tools,
                        home=daemon.home,
                        empty=empty,
                        ss_env=ss_env,
                        budget=budget,
                        shim=write_shim(work / "shim-bin", str(tools.plugin_python)),
                    )
            if "profile" in wanted:
                with clock.part("profile of the get path (client side)"):
                    results["profile_client"] = profiling.profile_client(
                        tools.plugin_python, daemon.home, work, budget.warm_plugin
                    )
        if "imports" in wanted:
            with clock.part("6. import cost of the plugin"):
                results["imports"] = startup.import_cost(
                    tools.plugin_python,
                    daemon_env(work),
                    budget.import_runs,
                    budget.import_traces,
                )
        if "scale" in wanted:
            with clock.part(f"5. scale: {', '.join(map(str, budget.sizes))} repositories"):
                folder = work / "scale"
                folder.mkdir()
                results["scale"] = scale.scale(
                    budget.sizes,
                    folder,
                    binaries["load"],
                    {
                        "starts": budget.starts,
                        "gets": budget.gets,
                        "get_seconds": budget.get_seconds,
                        "get_rounds": budget.get_rounds,
                        "lists": budget.lists,
                        "sets": budget.sets,
                        "unlocks": budget.unlocks,
                    },
                )
        if "writers" in wanted:
            sizes = ", ".join(map(str, budget.writer_sizes))
            with clock.part(f"5b. get beside a writer: {sizes} repositories"):
                folder = work / "writers"
                folder.mkdir()
                results["writers"] = writers.beside_writer(
                    budget.writer_sizes,
                    folder,
                    budget.writer_rounds,
                    budget.writer_window,
                    daemon_source=args.daemon_source,
                )
        if "profile" in wanted:
            with clock.part("the get path's steps in-process, without a profiler"):
                folder = work / "in-process"
                folder.mkdir()
                results["in_process"] = profiling.in_process(folder, budget.profile_small * 3)
            with clock.part("profile of the get path (daemon side)"):
                folder = work / "profile"
                folder.mkdir()
                results["profile_daemon"] = profiling.profile_daemon(
                    folder, binaries["load"], budget.profile_small, budget.profile_big, 120.0
                )
        if "poetry" in wanted:
            with clock.part("7. poetry lock end to end"):
                folder = work / "poetry"
                folder.mkdir()
                results["poetry"] = poetry_lock.poetry_lock(tools, folder, budget.poetry_runs)
        if "uv" in wanted:
            with clock.part(f"8. uv lock of {uv_lock.PACKAGES} private packages, shim vs plugin"):
                folder = work / "uv"
                folder.mkdir()
                results["uv"] = uv_lock.uv_lock(tools, folder, budget.uv_runs)
        if "providers" in wanted:
            with clock.part("9. provider records: a warm get against a plain one"):
                from bench.providers import providers

                folder = work / "providers"
                folder.mkdir()
                results["providers"] = providers(
                    folder, budget.provider_gets, budget.provider_rounds, budget.provider_runs
                )
        if "upstream" in wanted:
            with clock.part(f"10. fleets: upstream get vs local get, refresh of {1000:,} secrets"):
                folder = work / "upstream"
                folder.mkdir()
                results["upstream"] = upstream.upstream(
                    folder, budget.upstream_gets, budget.upstream_rounds, budget.upstream_refreshes
                )
    results["part_seconds"] = clock.seconds
    results["total_seconds"] = time.perf_counter() - clock.started


def _processes(
    *,
    startup: Any,
    tools: Any,
    home: Path,
    empty: Path,
    ss_env: dict[str, str] | None,
    budget: Budget,
    shim: Path,
) -> dict[str, Any]:
    from bench.rival import SECRET, SERVICE
    from bench.store import USERNAME

    keyring_bin = str(tools.keyring_bin / "keyring")
    helperctl = str(Path(sys.executable).parent / "helperctl")
    plugin_env = daemon_env(home)
    cli = "import sys; sys.argv = {argv!r}; from {module} import main; main()"
    commands = [
        startup.Command(
            "keyring_plugin",
            "`keyring get` with helperd's plugin",
            (keyring_bin, "get", SERVICE, USERNAME),
            plugin_env,
            tools.plugin_python,
            SECRET.encode(),
            cli.format(argv=["keyring", "get", SERVICE, USERNAME], module="keyring.cli"),
            "import keyring.cli",
        ),
        startup.Command(
            "shim",
            "the `keyring` shim (`helperctl install-shim`)",
            (str(shim), "get", SERVICE, USERNAME),
            plugin_env,
            tools.plugin_python,
            SECRET.encode(),
            cli.format(argv=["keyring", "get", SERVICE, USERNAME], module="helperd_client.shim"),
            "import helperd_client.shim",
        ),
        startup.Command(
            "helperctl",
            "`helperctl get`",
            (helperctl, "get", SERVICE, "--username", USERNAME),
            plugin_env,
            Path(sys.executable),
            SECRET.encode(),
            cli.format(
                argv=["helperctl", "get", SERVICE, "--username", USERNAME],
                module="helperd.ctl.main",
            ),
            "import helperd.ctl.main",
        ),
    ]
    if ss_env is not None:
        # keyring is told to use the Secret Service: helperd's plugin always outranks it.
        env = {
            **daemon_env(empty),
            **ss_env,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.SecretService.Keyring",
        }
        commands.insert(
            1,
            startup.Command(
                "keyring_secret_service",
                "`keyring get` with the Secret Service",
                (keyring_bin, "get", SERVICE, USERNAME),
                env,
                tools.plugin_python,
                SECRET.encode(),
                cli.format(argv=["keyring", "get", SERVICE, USERNAME], module="keyring.cli"),
                "import keyring.cli",
            ),
        )
    baselines = {tools.plugin_python: plugin_env, Path(sys.executable): plugin_env}
    return startup.processes(commands, baselines, budget.process_runs, budget.traces)  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    """Run, write, render; return the exit status."""
    args = _arguments(argv)
    budget = QUICK if args.quick else Budget()
    name = "quick" if args.quick else "full"
    if args.daemon_source is not None:
        name = "daemon-source"
    results_path = args.results or BENCH / "results" / f"{name}.json"
    report_path = args.report or (
        REPO / "docs" / "performance.md" if name == "full" else BENCH / "results" / f"{name}.md"
    )
    if args.report_only:
        results = json.loads(results_path.read_text())
    else:
        command = shlex.join([os.path.relpath(sys.executable, REPO), "bench/run.py", *argv])
        results = {
            "command": command,
            "quick": args.quick,
            "budget": asdict(budget),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_before": machine.load_average(),
            "machine": machine.machine(),
            "source": machine.source(REPO),
        }
        if args.daemon_source is not None:
            results["daemon_source"] = machine.source(args.daemon_source)
        _measure(args, budget, results)
        results["load_after"] = machine.load_average()
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"bench: results in {results_path}")
    plot_path = report_path.with_suffix(".png")
    report.write(results, report_path, plot_path)
    print(f"bench: report in {report_path}, plot in {plot_path}")
    return 0
