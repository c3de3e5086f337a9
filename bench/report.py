"""docs/performance.md and its plot, rendered from one run's results (nothing measured here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.plot import plot
from bench.units import DASH, TIMES, ms, span, us, x
from bench.verdict import Goal, goals
from bench.writers import PACED

__all__ = ["write"]


def _spread_us(s: dict[str, Any]) -> str:
    return span(us(s["q1"]), us(s["q3"]))


def _spread_ms(s: dict[str, Any]) -> str:
    return span(ms(s["q1"]), ms(s["q3"]))


def _first(s: dict[str, Any]) -> str:
    low, high = f"{s['q1']:.2f}", f"{s['q3']:.2f}"
    return f"{s['p50']:.2f} ms ({span(low, high)})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _goals(found: list[Goal]) -> str:
    rows = [
        [
            g.item,
            g.goal,
            g.measured,
            "**met**" if g.met else "**not met**" if g.met is False else DASH,
        ]
        for g in found
    ]
    return _table(["item", "goal", "measured (this run)", "verdict"], rows)


def _machine(r: dict[str, Any]) -> str:
    m = r["machine"]
    before = ", ".join(f"{v:.2f}" for v in r["load_before"])
    after = ", ".join(f"{v:.2f}" for v in r["load_after"])
    rows = [
        ["CPU", f"{m['cpus']} {TIMES} {m['cpu_model']} (shared, noisy)"],
        ["memory", f"{m['memory_gib']} GiB"],
        ["kernel / OS", f"Linux {m['kernel']} / {m['os']}"],
        ["Python", f"{m['python_implementation']} {m['python']}"],
        ["C compiler", m["cc"]],
        ["helperd source measured", r.get("source", "unknown")],
        *([["section 5b's daemons run", r["daemon_source"]]] if "daemon_source" in r else []),
        ["load average before / after (1, 5, 15 min)", f"{before} / {after}"],
        ["started (UTC) / took", f"{r['started']} / {r['total_seconds']:.0f} s"],
    ]
    return _table(["", ""], rows)


def _versions(r: dict[str, Any]) -> str:
    return _table(["package or program", "version"], [[k, v] for k, v in r["versions"].items()])


def _latency(r: dict[str, Any]) -> str:
    lat = r["latency"]
    rows = [
        [
            row["mode"],
            row["label"],
            us(row["us"]["p50"]),
            us(row["us"]["p99"]),
            _spread_us(row["us"]),
            f"**{x(row['p50_ratio'])}**" if row["server"] == "helperd" else x(row["p50_ratio"]),
            x(row["p99_ratio"]),
            span(x(row["round_ratio_low"]), x(row["round_ratio_high"])),
        ]
        for row in lat["rows"]
    ]
    return _table(
        [
            "connection",
            "server",
            "p50",
            "p99",
            "IQR",
            "p50 / floor",
            "p99 / floor",
            "p50 / floor, per round",
        ],
        rows,
    )


def _rivals(r: dict[str, Any]) -> str:
    rows = [
        [
            row["label"],
            f"{row['import_ms']['p50']:.1f} ms",
            f"{row['discovery_ms']['p50']:.1f} ms" if row["discovery_ms"]["p50"] > 0.05 else DASH,
            _first(row["first_ms"]),
            us(row["warm_us"]["p50"]),
            us(row["warm_us"]["p99"]),
            _spread_us(row["warm_us"]),
            x(row["warm_vs_plugin"]),
            x(row["first_vs_plugin"]),
        ]
        for row in r["rivals"]["rows"]
    ]
    return _table(
        [
            "backend",
            "imports and set-up",
            "keyring's discovery",
            "first get p50 (IQR)",
            "warm p50",
            "warm p99",
            "warm IQR",
            "warm / plugin",
            "first get / plugin",
        ],
        rows,
    )


def _processes(r: dict[str, Any]) -> str:
    rows = []
    for row in r["processes"]["rows"]:
        where = Path(row["python"]).parts
        venv = "bench venv" if "bench" in where else "e2e keyring venv"
        label = row["label"] + ("" if row["key"].startswith("pass") is False else f" ({venv})")
        rows.append(
            [
                label,
                ms(row["wall_ms"]["p50"]),
                ms(row["wall_ms"]["p99"]),
                _spread_ms(row["wall_ms"]),
                x(row.get("vs_python", 1.0)),
            ]
        )
    table = _table(["process", "wall p50", "wall p99", "IQR", "/ `python -c pass`"], rows)
    splits = []
    for row in r["processes"]["rows"]:
        if "split_ms" not in row:
            continue
        parts = ", ".join(
            f"{k} {ms(v)}" if v >= 0 else f"{k} about 0 (within the noise)"
            for k, v in row["split_ms"].items()
        )
        groups = ", ".join(f"`{k}` {ms(v)}" for k, v in list(row["import_groups_ms"].items())[:6])
        splits.append(f"- {row['label']}: {parts}. Largest imports: {groups}.")
    return (
        table + "\nWhere the time goes (differences of p50 wall times; largest imports of the whole"
        " run by `-X importtime`, keyring's backend plugins included):\n\n"
        + "\n".join(splits)
        + "\n"
    )


def _throughput(r: dict[str, Any]) -> str:
    t = r["throughput"]
    rows = []
    for row in t["rows"]:
        rows.append(
            [
                row["label"],
                str(row["clients"]),
                f"{row['rate']['p50']:,.0f}",
                span(f"{row['rate']['low']:,.0f}", f"{row['rate']['high']:,.0f}"),
                us(row["p50_us"]),
                us(row["p99_us"]["p50"]),
            ]
        )
    return _table(
        ["server", "clients", "gets/s (median of rounds)", "range over rounds", "p50", "p99"], rows
    )


def _scale(r: dict[str, Any]) -> str:
    rows = []
    for row in r["scale"]["rows"]:
        listing = (
            ms(row["list_ms"]["p50"]) + f" ({row.get('list_count', 0):,} records, in pages)"
            if row["list_ok"]
            else f"**fails** ({row['list_error']}) after {ms(row['list_ms']['p50'])}"
        )
        rows.append(
            [
                f"{row['size']:,}",
                f"{us(row['get_service_us']['p50'])} ({x(row['get_service_us_ratio'])})",
                f"{us(row['get_url_us']['p50'])} ({x(row['get_url_us_ratio'])})",
                listing,
                ms(row["startup_ms"]["p50"]),
                ms(row["open_ms"]["p50"]),
                ms(row["unlock_ms"]["p50"]),
                (
                    f"{ms(row['set_ms']['p50'])}"
                    f" ({x(row['set_vs_disk'])} the disk's {ms(row['disk_ms']['p50'])})"
                ),
                f"{row['file_bytes'] / 1e6:.2f} MB"
                if row["file_bytes"] >= 1e5
                else f"{row['file_bytes'] / 1e3:.1f} kB",
            ]
        )
    return _table(
        [
            "repositories",
            "get by service p50 (/ smallest)",
            "get by URL p50 (/ smallest)",
            "list",
            "start-up",
            "first get (opens the key-file store)",
            "unlock (passphrase store)",
            "durable set p50 (/ write_atomic of the whole file)",
            "store file",
        ],
        rows,
    )


def _writers(r: dict[str, Any]) -> str:
    rows = [
        [
            f"{row['size']:,}",
            f"{us(row['quiet_us']['p50'])} / {us(row['quiet_us']['p99'])}",
            f"{us(row['busy_us']['p50'])} / {us(row['busy_us']['p99'])}",
            x(row["p50_ratio"]),
            x(row["p99_ratio"]),
            f"{row['sets']:,}",
            us(row["cpu_us"]) if "cpu_us" in row else "not measured",
            _writer_process_cpu(row),
            *(_beside(row, kind) for kind in ("paced", "hello", "apart", "bare")),
        ]
        for row in r["writers"]["rows"]
    ]
    return _table(
        [
            "repositories",
            "get alone p50 / p99",
            "get beside a writer p50 / p99",
            "p50 ratio (goal 1.2x)",
            "p99 ratio (goal 3x)",
            "sets made",
            "the daemon's CPU per set",
            "its writer process's CPU per set",
            f"beside a writer paced at {PACED} sets/s instead: p50 / p99 ratio",
            "beside a client looping `hello` instead: p50 / p99 ratio",
            "beside the looping writer served by a second helperd: p50 / p99 ratio",
            "beside a bare durable server, no helperd in it (the floor): p50 / p99 ratio",
        ],
        rows,
    )


def _writer_process_cpu(row: dict[str, Any]) -> str:
    """5b's CPU per set of the measured daemon's writer process, if it has one."""
    if row.get("writer_process") is False:  # a daemon of another checkout (--daemon-source)
        return "no writer process"
    return us(row["writer_process_cpu_us"]) if "writer_process_cpu_us" in row else "not measured"


def _beside(row: dict[str, Any], kind: str) -> str:
    """One of 5b's other neighbours: its p50 / p99 ratios and the requests it made."""
    if f"{kind}_p50_ratio" not in row:
        return "not measured"
    unit = {"hello": "hellos", "bare": "appends"}.get(kind, "sets")
    made = f" ({row[kind + '_sets']:,} {unit})" if f"{kind}_sets" in row else ""
    return f"{x(row[kind + '_p50_ratio'])} / {x(row[kind + '_p99_ratio'])}{made}"


def _upstream(r: dict[str, Any]) -> str:
    u = r["upstream"]
    rows = [
        [
            "get by URL, local record",
            f"{us(u['local_us']['p50'])} / {us(u['local_us']['p99'])}",
            "1.00x",
        ],
        [
            f"get by URL, upstream record (cache of {u['secrets']:,})",
            f"{us(u['upstream_us']['p50'])} / {us(u['upstream_us']['p99'])}",
            f"{x(u['p50_ratio'])} (p99 {x(u['p99_ratio'])})",
        ],
        [
            f"one refresh of {u['secrets']:,} secrets (bao -dev, {u['refreshes']} runs)",
            f"{u['refresh_s']['p50']:.2f} s / {u['refresh_s']['high']:.2f} s (max)",
            "",
        ],
    ]
    return _table(["what", "p50 / p99", "ratio to local"], rows)


def _imports(r: dict[str, Any]) -> str:
    i = r["imports"]
    modules = ", ".join(f"`{k}` {v / 1e3:.2f} ms" for k, v in list(i["modules_us"].items())[:10])
    w = i["wall_ms"]
    return (
        _table(
            ["measure", "`import keyring`", "plugin on top", "ratio"],
            [
                [
                    f"`-X importtime`, cumulative (median of {i['traces']})",
                    f"{i['keyring_ms']['p50']:.1f} ms",
                    f"{i['plugin_ms']['p50']:.2f} ms",
                    f"{i['importtime_ratio'] * 100:.1f}%",
                ],
                [
                    (
                        f"process wall time minus `python -c pass` (median of {i['runs']};"
                        " whole processes here vary by more than the plugin costs)"
                    ),
                    (
                        f"{w['keyring']['p50'] - w['pass']['p50']:.1f} ms (IQR of the process:"
                        f" {span(ms(w['keyring']['q1']), ms(w['keyring']['q3']))})"
                    ),
                    f"{w['both']['p50'] - w['keyring']['p50']:.2f} ms",
                    f"{i['wall_ratio'] * 100:.1f}%",
                ],
            ],
        )
        + f"\nModules the plugin loads beyond keyring's, by own import time: {modules}.\n"
    )


def _poetry(r: dict[str, Any]) -> str:
    p = r["poetry"]
    rows = [
        [
            "credentials from helperd (plugin in Poetry's venv)",
            f"{p['helperd_s']['p50']:.2f} s",
            span(f"{p['helperd_s']['q1']:.2f}", f"{p['helperd_s']['q3']:.2f} s"),
        ],
        [
            "plaintext `auth.toml`",
            f"{p['plaintext_s']['p50']:.2f} s",
            span(f"{p['plaintext_s']['q1']:.2f}", f"{p['plaintext_s']['q3']:.2f} s"),
        ],
    ]
    low, high = p["overhead_iqr_pct"]
    return _table(
        [f"`poetry lock` (Poetry {p['poetry']}, {p['runs']} runs each)", "p50", "IQR"], rows
    ) + (
        f"\nOverhead of helperd: **{p['overhead_pct']:+.1f}%** at the median"
        f" (from {low:+.1f}% to {high:+.1f}% between the quartiles).\n"
    )


UV_SETUPS = {
    "shim": "the shim first on PATH, the real `keyring` behind it",
    "plugin": "`keyring` with helperd's plugin on PATH",
    "url": "password in the index URL, no `keyring` (the floor)",
}


def _uv(r: dict[str, Any]) -> str:
    u = r["uv"]
    floor = u["ms"]["url"]["p50"]
    rows = [
        [
            label,
            str(u["keyring_calls"].get(key, 0)),
            ms(u["ms"][key]["p50"]),
            _spread_ms(u["ms"][key]),
            x(u["ms"][key]["p50"] / floor),
        ]
        for key, label in UV_SETUPS.items()
    ]
    return _table(
        [
            f"`uv lock` (uv {u['uv']}, {u['runs']} runs each)",
            "`keyring` calls",
            "p50",
            "IQR",
            "/ floor",
        ],
        rows,
    )


def _profile(r: dict[str, Any]) -> str:
    out = []
    for which in ("small", "big"):
        prof = r["profile_daemon"][which]
        busy = prof["busy_us"]
        out.append(
            f"**Daemon, {prof['size']:,}-repository store, {prof['requests']:,} requests**"
            f" (after {prof['warmup']} of each kind, left out; under cProfile, which inflates"
            " every figure): busy time per request"
            f" {us(busy['main'])} on the event-loop thread and {us(busy['workers'])} in the"
            f" worker threads; {prof['loop_iterations_per_request']:.1f} event-loop iterations"
            " per request.\n"
        )
        out.append(
            _table(
                ["part of a request", "thread", "calls / request", "cumulative / request"],
                [
                    [
                        p["part"],
                        p["thread"],
                        f"{p['calls_per_request']:.1f}",
                        us(p["cumulative_us"]),
                    ]
                    for p in prof["parts"]
                ],
            )
        )
        if which == "big":
            top = prof["top"]["main"][:8]
            out.append(
                "\nEvent-loop thread, by own time:\n\n"
                + _table(
                    ["function", "calls / request", "own / request", "cumulative / request"],
                    [
                        [
                            f"`{t['function']}`",
                            f"{t['calls_per_request']:.1f}",
                            us(t["own_us"]),
                            us(t["cumulative_us"]),
                        ]
                        for t in top
                    ],
                )
            )
        out.append("")
    client = r["profile_client"]
    out.append(
        f"**Client, the plugin's warm `keyring.get_password`** ({client['calls']} calls, under"
        " cProfile):\n"
    )
    out.append(
        _table(
            ["part", "cumulative / call"],
            [[p["part"], us(p["cumulative_us"])] for p in client["parts"]],
        )
    )
    return "\n".join(out)


def _providers(r: dict[str, Any]) -> str:
    p = r["providers"]
    rows = [
        [
            "get of a plain token record",
            f"{us(p['plain_us']['p50'])} ({_spread_us(p['plain_us'])})",
            "1x",
        ],
        [
            "get of a provider record, warm token",
            f"{us(p['provider_us']['p50'])} ({_spread_us(p['provider_us'])})",
            x(p["warm_ratio"]),
        ],
        [
            "running the provider (a Python script) per lookup",
            f"{ms(p['run_ms']['p50'])} ({_spread_ms(p['run_ms'])})",
            x(p["run_ratio"]),
        ],
    ]
    if p.get("aws_start_ms"):
        aws = p["aws_start_ms"]
        rows.append(
            [
                "`aws --version` (a cloud CLI's start alone)",
                f"{ms(aws['p50'])} ({_spread_ms(aws)})",
                DASH,
            ]
        )
    return _table(["path", "median (quartiles)", "against a plain get"], rows)


def write(results: dict[str, Any], report: Path, plot_path: Path) -> None:
    """Render the Markdown report and the PNG plot of ``results``."""
    from bench.narrative import narrative

    found = goals(results)
    tables = {
        "goals": _goals(found),
        "machine": _machine(results),
        "versions": _versions(results),
        "latency": _latency(results) if "latency" in results else "(not run)\n",
        "rivals": _rivals(results) if "rivals" in results else "(not run)\n",
        "processes": _processes(results) if "processes" in results else "(not run)\n",
        "throughput": _throughput(results) if "throughput" in results else "(not run)\n",
        "scale": _scale(results) if "scale" in results else "(not run)\n",
        "writers": _writers(results) if "writers" in results else "(not run)\n",
        "imports": _imports(results) if "imports" in results else "(not run)\n",
        "poetry": _poetry(results) if "poetry" in results else "(not run)\n",
        "uv": _uv(results) if "uv" in results else "(not run)\n",
        "profile": _profile(results) if "profile_daemon" in results else "(not run)\n",
        "providers": _providers(results) if "providers" in results else "(not run)\n",
        "upstream": _upstream(results) if "upstream" in results else "(not run)\n",
    }
    text = narrative(results, found, tables, plot_path.name)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text)
    plot(results, plot_path)
