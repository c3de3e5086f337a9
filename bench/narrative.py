"""The words of docs/performance.md around the tables, with this run's numbers in them."""

from __future__ import annotations

from typing import Any

from bench.units import ms, us, x
from bench.verdict import Goal, row

__all__ = ["narrative"]

HEAD = """\
# Performance

Where helperd stands against its floor and its rivals (issue 7), and what the `keyring` shim \
saves pip and uv (issue 8), measured side by side in one run on a shared, noisy 2-core machine.
Absolute times move from run to run here, so every figure sits beside a baseline measured in \
the same run, and the ratios are what to read.
This page and [the plot]({plot}) are written by `bench/run.py` (see \
[bench/README.md](../bench/README.md)); run it again rather than editing them.

Reproduce, from a fresh clone (after `./scripts/test.sh` has installed the Debian packages):

```sh
./bench/run.sh
```

It runs `{command}` in a venv of its own, `bench/.venv`: the `bench` extra installs \
keyrings.alt and keyrings.cryptfile, whose keyring backends would change what keyring chooses \
in the development venv. Every daemon runs as the default install does, on asyncio's event \
loop, but the one marked uvloop (the `fast` extra) in items 1 and 4.
"""


def _headline(r: dict[str, Any]) -> list[str]:
    lines = []
    if "latency" in r:
        kept = row(r["latency"]["rows"], server="helperd", mode="kept")
        fresh = row(r["latency"]["rows"], server="helperd", mode="fresh")
        json_kept = row(r["latency"]["rows"], server="floor_json", mode="kept")
        lines.append(
            f"- `get` over a kept connection: **{x(kept['p50_ratio'])} the floor** at p50"
            f" ({us(kept['us']['p50'])}); over a fresh one **{x(fresh['p50_ratio'])}**"
            f" ({us(fresh['us']['p50'])}). An echo server that parses and renders JSON costs"
            f" {x(json_kept['p50_ratio'])}."
        )
    if "rivals" in r:
        rows = {x_["backend"]: x_ for x_ in r["rivals"]["rows"]}
        plugin = rows["plugin"]
        parts = [f"the plugin's warm `keyring.get_password` takes {us(plugin['warm_us']['p50'])}"]
        if "secret_service" in rows:
            parts.append(
                f"**{x(rows['secret_service']['warm_vs_plugin'])} faster** than the Secret"
                f" Service ({us(rows['secret_service']['warm_us']['p50'])})"
            )
        if "cryptfile" in rows:
            parts.append(
                f"**{x(rows['cryptfile']['warm_vs_plugin'])}** faster than keyrings.cryptfile"
            )
        if "alt" in rows:
            parts.append(f"{x(rows['alt']['warm_vs_plugin'])} faster than keyrings.alt")
        lines.append("- Rivals: " + ", ".join(parts) + ".")
    if "throughput" in r:
        t = r["throughput"]
        most = max(t["clients"])
        h = row(t["rows"], server="helperd", clients=most)
        ceiling = max(x_["rate"]["p50"] for x_ in t["rows"] if x_["server"] == "floor")
        lines.append(
            f"- Throughput at {most} clients: {h['rate']['p50']:,.0f} gets/s,"
            f" **{h['rate']['p50'] / ceiling:.2f} of the floor's ceiling** ({ceiling:,.0f}/s)."
        )
    if "scale" in r:
        big = r["scale"]["rows"][-1]
        lines.append(
            f"- At {big['size']:,} repositories a `get` by service takes"
            f" **{x(big['get_service_us_ratio'])}** as long as at {r['scale']['rows'][0]['size']},"
            f" by URL **{x(big['get_url_us_ratio'])}**; a durable `set` takes"
            f" {ms(big['set_ms']['p50'])}"
            + ("; `list` pages through all of it" if big["list_ok"] else "; `list` fails")
            + "."
        )
    if "imports" in r:
        lines.append(
            f"- The plugin adds **{r['imports']['importtime_ratio'] * 100:.1f}%** to"
            f" `import keyring` ({r['imports']['plugin_ms']['p50']:.1f} ms on"
            f" {r['imports']['keyring_ms']['p50']:.0f} ms)."
        )
    if "poetry" in r:
        p = r["poetry"]
        low, high = p["overhead_iqr_pct"]
        noise = (
            "within the noise of runs that take"
            if low <= 0 <= high
            else "beyond the quartiles of runs that take"
        )
        lines.append(
            f"- `poetry lock` with credentials from helperd: **{p['overhead_pct']:+.1f}%**"
            f" against a plaintext auth.toml ({low:+.0f}% to {high:+.0f}% between the"
            f" quartiles), {noise} {p['plaintext_s']['p50']:.1f} s."
        )
    lines += _shim_headline(r)
    return lines


def _shim_headline(r: dict[str, Any]) -> list[str]:
    lines = []
    rows = {x_["key"]: x_ for x_ in r.get("processes", {}).get("rows", [])}
    if "shim" in rows:
        shim, plugin = rows["shim"], rows["keyring_plugin"]
        lines.append(
            f"- The `keyring` shim answers pip's and uv's lookup in {ms(shim['wall_ms']['p50'])}"
            f" of process time, **{x(shim['vs_python'])} `python -c pass`**; `keyring get`"
            f" with the plugin takes {ms(plugin['wall_ms']['p50'])}"
            f" ({x(plugin['vs_python'])})."
        )
    if "uv" in r:
        u = r["uv"]
        lines.append(
            f"- `uv lock` of {u['packages']} private packages: **{x(u['plugin_vs_shim'])}**"
            f" as long with `keyring` and the plugin as with the shim"
            f" ({ms(u['ms']['plugin']['p50'])} vs {ms(u['ms']['shim']['p50'])}); the shim adds"
            f" {ms(u['shim_over_url_ms'])} to a resolution with the password in the URL."
        )
    return lines


def _profile_words(r: dict[str, Any]) -> str:
    if "profile_daemon" not in r:
        return ""
    small, big = r["profile_daemon"]["small"], r["profile_daemon"]["big"]

    def cum(profile: dict[str, Any], *names: str) -> float:
        parts = {p["part"].split(" (")[0]: p for p in profile["parts"]}
        return sum(float(parts[n]["cumulative_us"]) for n in names if n in parts)

    hot_parts = ("quick_request", "Service.answer_hot", "render_cached")
    hot, big_hot = cum(small, *hot_parts), cum(big, *hot_parts)
    full = cum(small, "parse_request", "render_ok")
    io = cum(small, "socket recv", "socket send")
    main_busy = small["busy_us"]["main"]
    worker_busy = small["busy_us"]["workers"]
    total = main_busy + worker_busy

    def share(part: float) -> str:
        return f"{part / total * 100:.0f}%"

    return (
        f"On a 10-repository store, open and warm, the daemon spends {us(main_busy)} per `get`"
        f" on the event loop and {us(worker_busy)} in worker threads (under cProfile; without"
        " it the whole request takes the p50 of the latency table), in"
        f" {small['loop_iterations_per_request']:.0f} loop iterations."
        f" The hot path (the line checked by hand, the kept answer found, its id put in front)"
        f" takes {share(hot)} of the busy time, the full parse and render (JSON and pydantic,"
        f" for what the hot path does not take) {share(full)}, and the socket calls"
        f" {share(io)}; the rest is asyncio's own stream machinery, which the floor's bare"
        f" protocol does without. At {big['size']:,} repositories (half the gets by URL) the"
        f" hot path takes {us(big_hot)} per `get` against {us(hot)} here"
        + (": a kept answer does not grow with the store." if big_hot < hot * 1.5 else ".")
    )


def _suggestions(r: dict[str, Any]) -> list[str]:
    found = []
    if "latency" in r:
        kept = row(r["latency"]["rows"], server="helperd", mode="kept")
        json_kept = row(r["latency"]["rows"], server="floor_json", mode="kept")
        if kept["p50_ratio"] > 2.0:
            found.append(
                "**helperd/daemon/server.py: the kept-connection `get` costs"
                f" {x(kept['p50_ratio'])} the floor ({us(kept['us']['p50'])}),** against"
                f" {x(json_kept['p50_ratio'])} for the floor that parses and renders JSON."
                + (
                    " In-process and without a profiler, parsing the request takes"
                    f" {us(r['in_process']['parse_us'])}, `Service.answer_now`"
                    f" {us(r['in_process']['answer_us'])} and `render_ok`"
                    f" {us(r['in_process']['render_us'])}: the rest of the gap is, by"
                    " elimination, the round trip through the event loop, and the cold caches"
                    " that a ping-pong between two processes meets at every request (the"
                    " floor's JSON, too, costs more per request here than in a loop)."
                    if "in_process" in r
                    else ""
                )
                + " The hand-checked hot path answers without a pydantic model (about 5 µs"
                " in process); tried and not kept: an `asyncio.Protocol` per connection that"
                " answers from `data_received` measured no faster than the streams."
            )
    if "scale" in r:
        big = r["scale"]["rows"][-1]
        worst = max(big["get_service_us_ratio"], big["get_url_us_ratio"])
        if worst > 1.5:
            found.append(
                f"**Scale: a `get` at {big['size']:,} repositories takes"
                f" {us(big['get_service_us']['p50'])} by service and"
                f" {us(big['get_url_us']['p50'])} by URL**, {x(worst)} the smallest store's:"
                " see the big-store profile below for where it goes."
            )
        if not big["list_ok"]:
            found.append(f"**`list` at {big['size']:,} repositories fails** ({big['list_error']}).")
        if big["open_ms"]["p50"] > 1000 or big["set_ms"]["p50"] > 200:
            found.append(
                "**helperd/stores/file_store.py and the catalog, at"
                f" {big['size']:,} records.** Opening the store (first `get`:"
                f" {ms(big['open_ms']['p50'])}) is decoding the segments (json, then one"
                " pydantic validation of every record: about two thirds) and building the lookup"
                " catalog (a Python loop over every record, its URLs indexed by origin and host),"
                " by an in-process profile on this machine; the collector no longer walks what"
                " they made (`helperd.core.bulk`). A durable `set`"
                f" ({ms(big['set_ms']['p50'])}; writing and fsyncing the whole file's bytes takes"
                f" {ms(big['disk_ms']['p50'])}) appends one entry to the journal. Left to do:"
                " opening a key-file store at start-up rather than on the first request."
            )
    writers = r.get("writers", {})
    missed = [w for w in writers.get("rows", []) if w["p50_ratio"] > 1.2 or w["p99_ratio"] > 3]
    if missed:
        found.append(_writer_words(writers, missed))
    return found


def _writer_words(writers: dict[str, Any], missed: list[dict[str, Any]]) -> str:
    """Item 5b when it misses its goal: what the run and the experiments say, point by point."""
    rows = writers["rows"]
    worst = max(missed, key=lambda w: w["p50_ratio"])
    seconds = writers.get("rounds", 1) * writers.get("window_seconds", 1.0)

    def both(kind: str) -> str:
        return ", ".join(
            f"{w[kind + '_p50_ratio']:.2f}x / {w[kind + '_p99_ratio']:.1f}x"
            for w in rows
            if kind + "_p50_ratio" in w
        )

    rates = ", ".join(f"{w['sets'] / seconds:,.0f}" for w in rows)

    def made(kind: str) -> str:
        return ", ".join(f"{w[kind + '_sets'] / seconds:,.0f}" for w in rows if kind + "_sets" in w)

    own = ", ".join(f"{w['p50_ratio']:.2f}x" for w in rows)

    def cpu(kind: str) -> str:
        key = "cpu_us" if kind == "writer" else kind + "_cpu_us"
        return ", ".join(us(w[key]) for w in rows if key in w)

    points = [
        (
            "A `get` takes no lock and no thread: it is answered on the event loop from the"
            " snapshot of the last durable write. The looping writer sets as fast as the daemon"
            f" answers ({rates} sets a second from 10 to 10,000 repositories), and each set costs"
            f" the daemon {cpu('writer')} of CPU (its event loop and its worker thread, the"
            f" system time of the fsync included), against {cpu('told')} for a `hello`."
        ),
        (
            "The machine alone does not slow them. A bare durable server, no helperd in it (a"
            " blocking loop that appends each line a client sends to a file, fsyncs it and"
            f" answers), costs the gets {both('bare')} ({made('bare')} appends a second)."
        ),
        (
            "What slows them is the writer's work inside the daemon that answers them, not the"
            " hand-over to a worker thread. One-off experiments on 2026-12-04 (10 repositories,"
            " a throwaway patch of the daemon, two runs each unless said): sets answered with a"
            " canned answer after a bare append and fsync in the worker thread, none of the"
            " store's work, cost the gets 1.21x to 1.35x (four runs); the same append and fsync"
            " sent to a child process instead of a thread, 1.24x and 1.24x; the canned answer on"
            " the event loop with an append and no fsync, 1.38x and 1.40x; 150 µs of Python more"
            " per set, on the loop or in the worker, 1.4x to 2.1x (short runs). So a `set` that"
            " reaches the daemon's event loop costs the gets 1.2x to 1.4x here before the store"
            " does anything, and the store's work adds the rest."
        ),
        (
            "This corrects the reading of 2026-12-03, that the hop was the cost. The bare server"
            f" handing each fsync to a thread costs the gets {both('handed')}, but handing it to"
            f" the thread and then telling the measured daemon (a `hello`) costs them"
            f" {both('handed_told')}. Fsyncing itself and telling the measured daemon costs"
            f" {both('told')}; telling the second helperd instead, {both('told_elsewhere')}; and"
            f" the looping writer served by that second helperd, which never wakes the measured"
            f" one, {both('apart')} (at the idle scheduling class, `chrt --idle`, still 1.25x and"
            " 1.38x on 2026-12-03). A daemon woken at each write answers its gets faster than one"
            " left asleep; our reading, not proven, is that on two virtual CPUs a daemon that"
            " sleeps between gets pays for its wake-up, and one woken often does not. The `hello`"
            " rows therefore do not measure a writer process apart by themselves."
        ),
        (
            "The stand-ins that do: the bare server telling the measured daemon, after each"
            " fsync, with a `get` it cannot find, which the daemon serves the full way (parsed,"
            f" looked up, its error rendered and logged) for {cpu('told_get')} of CPU each, about"
            " what applying a write to its snapshot would cost it: the gets"
            f" {both('told_get')} ({made('told_get')} appends a second). And helperd's own `set`"
            " served in the bare server's one thread on a store of its own (parsed, served by a"
            " `Service` on a file store, its journal appended and fsynced, the answer rendered),"
            f" then the same `get`: the gets {both('written_apart')}, at {made('written_apart')}"
            f" sets a second (the daemon {cpu('written_apart')} of CPU each), where helperd"
            " serving the same sets itself costs them"
            f" {own} at {rates} sets a second."
        ),
        (
            f"Beside a client looping `hello`, the cheapest request: {both('hello')}. Beside the"
            f" same writer paced at {rows[0].get('paced_per_second', 200)} sets a second:"
            f" {both('paced')}."
        ),
        (
            "A faster `set` alone does not help: it raises the looping writer's rate, so the"
            " daemon does as much work a second (with the store on tmpfs, no fsync, the writer"
            " made 40% more sets and the p50 ratio went from 1.6x-1.7x to 1.9x-2.1x)."
        ),
        (
            "Kept: worker threads woken through pipes instead of `run_in_executor` (p50 1.78x to"
            " 1.40x, six A/B pairs), and the journal, which took the p99 at 10,000 repositories"
            f" from 10.1x to {rows[-1]['p99_ratio']:.1f}x here (that p99 moves from run to run on"
            " the same write path: 2.4x to 5.7x in the full runs of 2026-12-03)."
        ),
        (
            "Tried and not kept (10 repositories): a worker thread that answers the client itself,"
            " the loop collecting the outcome at its next wake-up (the p50 ratio's median from"
            " 1.63x to 1.36x in seven pairs, p99 up to 5.6x, and a socket written behind asyncio's"
            " back); a worker thread that takes over a writing client's connection and serves its"
            " sets itself (1.82x to 2.44x: its Python competes with the loop for the interpreter's"
            " lock); parsing and answering a `set` in its worker thread with the switch interval"
            " at 50 µs; a journal whose room is written with zeros ahead, so that an append's fsync"
            " commits no file-system metadata (the fsync a quarter faster, one sleep fewer); the"
            " worker thread at nice 19, at `SCHED_BATCH` or at `SCHED_IDLE`; worker threads woken"
            " through an eventfd instead of pipes (1.44x, 1.51x); the cyclic garbage collector"
            " off (1.79x, 1.83x). None changed more than noise. A writer on a raw socket instead"
            " of helperd_client cost the gets as much (1.50x and 1.52x against 1.57x and 1.63x):"
            " the writer's client is not the cost."
        ),
        (
            "Left undone, and what the last stand-in says meets 1.2x on this machine: a writer"
            " process apart, one thread, that takes over a writing client's connection (passed to"
            " it over a Unix socket), serves its sets and fsyncs them, then tells the daemon the"
            " change, which the daemon applies to its snapshot for about a `get`'s CPU before the"
            " writer answers. Sending each set through the daemon's event loop to such a process"
            " would not do: that is the 1.24x of the child-process experiment, before any of the"
            " store's work. It moves the store's writes into a second process (who owns the store,"
            " how a change reaches the snapshot, kill -9 of either process, connections handed"
            " between processes, the requests other than `set` on a handed connection): a change"
            " not made in this round."
        ),
    ]
    return (
        f"**Reads beside a writer** miss their goal ({len(missed)} size(s); at"
        f" {worst['size']:,} repositories p50 {worst['p50_ratio']:.2f}x, p99"
        f" {worst['p99_ratio']:.1f}x).\n" + "\n".join(f"   - {point}" for point in points)
    )


def narrative(results: dict[str, Any], found: list[Goal], tables: dict[str, str], plot: str) -> str:
    """The whole Markdown page."""
    r = results
    out = [HEAD.format(plot=plot, command=r["command"].replace(" --quick", ""))]
    if r.get("quick"):
        out.append("**This is a `--quick` smoke run: too few samples to judge by.**\n")
    out.append("## Goals\n")
    out.append(tables["goals"])
    out.append("## Headline\n")
    out.append("\n".join(_headline(r)) + "\n")
    out.append(f"![the four main measurements]({plot})\n")
    out.append("## Machine and versions\n")
    out.append(tables["machine"])
    out.append(tables["versions"])
    out.append(
        "## 1. The floor\n\n"
        f"One client sends `{r.get('request', '')}` and reads the"
        f" {r.get('response_bytes', 0)}-byte answer, {r['budget']['kept']} times over a kept"
        f" connection and {r['budget']['fresh']} times over fresh ones, in each of"
        f" {r['budget']['rounds']} rounds; the servers take turns within each round. The"
        " client is a C program (`bench/load.c`), so that it costs less than any server it"
        " drives. The floor is a Python asyncio server in its own process that answers every"
        " line with helperd's own response bytes, captured first (`bench/floor.py`); the C"
        " server (`bench/echo.c`) is the physical limit, for the record. helperd serves a"
        " 10-repository file store opened by a key file. Each server's event loop and the client"
        " share one CPU while it is measured: left to the kernel, this machine's two virtual CPUs"
        " put them on one CPU or on two at random from run to run, and the second placement's"
        " cross-CPU wake-up (about 25 µs) moved every server's p50 by more than helperd differs"
        " from the floor.\n"
    )
    out.append(tables["latency"])
    out.append(
        "## 2. Rivals\n\n"
        f"The same secret through `keyring.get_password` in {r['budget']['rival_processes']}"
        " fresh processes per backend (`bench/probe.py`), taking turns: the imports and set-up"
        " (for the two file rivals that includes checking the passphrase), keyring's"
        " backend discovery where keyring chooses the backend itself, the first get, then warm"
        " gets in the same process. helperd's plugin and the Secret Service (gnome-keyring on a"
        " private D-Bus, `tests/support/secret_service.py`) run in the e2e keyring venv, which"
        " holds keyring and the plugin only, as pip's provider has it; keyrings.alt and"
        " keyrings.cryptfile run in the bench venv with their passphrase set on the instance."
        " keyring's discovery is the same cost for every backend it chooses (most of it is"
        " keyring importing its macOS backend, which runs `ctypes.util.find_library`).\n"
    )
    out.append(tables["rivals"])
    missing = r.get("rivals", {}).get("missing", [])
    if missing:
        out.append(f"Left out because they do not install or import here: {', '.join(missing)}.\n")
    out.append(
        "## 3. Subprocess paths\n\n"
        f"Whole processes, as pip's and uv's `subprocess` keyring provider runs them, timed"
        f" from the bench over {r['budget']['process_runs']} rounds, taking turns. `keyring`"
        " is the e2e keyring venv's; `helperctl` is the bench venv's, whose editable installs"
        " add a path finder to every interpreter start (hence its own `-c pass` baseline).\n"
    )
    out.append(tables["processes"])
    out.append(
        "## 4. Throughput\n\n"
        f"The C load generator holds 1, 8 or 32 connections, each sending its next request as"
        f" soon as the last is answered, for {r['budget']['load_seconds']:g} s per point and"
        f" {r['budget']['load_rounds']} rounds; the floor's ceiling is its best rate at any"
        " client count. The generator shares the machine's 2 cores with the server.\n"
    )
    out.append(tables["throughput"])
    out.append(
        "## 5. Scale\n\n"
        "Stores of each size are written in one commit by `bench/store.py` (one repository,"
        " one host and one basic record each); the request asks for the middle repository."
        " `get` latency comes from one daemon per size running side by side, the sizes"
        f" taking turns in {r['budget'].get('get_rounds', 1)} rounds of"
        f" {r['budget']['gets'] // r['budget'].get('get_rounds', 1)} requests each, over a"
        " kept connection, the daemon's event loop and the client on one CPU (as in item 1)."
        " Start-up is `Popen` to the first `hello`; a key-file store opens on its first"
        " request; unlock is the `unlock` op on a passphrase store of the same size (Argon2id"
        " with the default cost, then decrypt and parse); a durable `set` replaces one"
        " record, which appends one entry to the store's journal and fsyncs it, shown beside"
        " `helperd.stores.durable.write_atomic` of the whole file's bytes (what each `set`"
        " wrote before the journal, format version 3).\n"
    )
    out.append(tables["scale"])
    out.append(
        "## 5b. Reads beside a writer\n\n"
        "For each size, one connection asks for the middle repository (`get` by Poetry's"
        " service) while a second process loops `set` on its own connection, each one"
        " appending to the store's journal and fsyncing it (`bench/writers.py`). The writer"
        " is stopped"
        " and let go in turns, so that windows alone and beside it alternate"
        f" ({r.get('writers', {}).get('rounds', 0)} of each); the ratios compare the two.\n"
    )
    out.append(tables["writers"])
    out.append(
        "## 6. Import cost of the plugin\n\n"
        "In the e2e keyring venv: `import keyring; import helperd_client.keyring_backend`,"
        " with `-X importtime` (cumulative time of the top-level imports after keyring's), and"
        " as wall time of whole processes.\n"
    )
    out.append(tables["imports"])
    out.append(
        "## 7. Poetry end to end\n\n"
        "`poetry lock` of a project whose only source is a local pypiserver that demands"
        " basic auth, with the e2e ring's cached Poetry venv (which holds the plugin). Each"
        " run starts from a copy of the project without a lock file and with an empty Poetry"
        " cache; the two setups take turns and a first run of each is not counted.\n"
    )
    out.append(tables["poetry"])
    out.append(
        "## 8. The `keyring` shim for pip and uv\n\n"
        "The shim's per-call process time is in the table of section 3: it is written by"
        " `helperd.integrations.shim_install.write_shim` for the e2e keyring venv's Python (where"
        " `helperd_client` is installed as a user installs it, not editable), so it shares"
        " its `python -c pass` baseline with `keyring get`.\n\n"
        f"Here `uv lock` resolves a project that needs {r.get('uv', {}).get('packages', 10)}"
        " packages from a local pypiserver that demands basic auth (half of them named by the"
        " project, each needing one of the others), with"
        " `--keyring-provider subprocess`, `alice@` in the index URL and `--no-cache`, in a"
        " fresh copy of the project each time; the three setups take turns"
        " (`bench/uv_lock.py`). A first, untimed run of each goes through a wrapper that counts"
        " the `keyring` calls.\n"
    )
    out.append(tables["uv"])
    out.append(
        "## 9. Provider records (short-lived tokens)\n\n"
        "One connection asks in turns for a plain token record and for a provider record whose"
        " token is warm (minted at `set`, not yet near its minimum life), the same number of"
        " times each (`bench/providers.py`). Beside them, the cost of running the provider on"
        " every lookup, as the per-cloud keyring plugins do: here a Python script that prints"
        " a token, far cheaper than a cloud CLI, whose start alone `aws --version` shows.\n"
    )
    out.append(tables["providers"])
    out.append(
        "## 10. Fleets: the upstream cache\n\n"
        "A daemon on a key-file store with one local repository reads"
        f" {r.get('upstream', {}).get('secrets', 1000):,} repository secrets from a real"
        " `bao server -dev` (`[upstream]`, docs/fleet.md). Over one kept connection, gets by URL"
        " of the local repository and of the middle upstream one take turns in rounds"
        " (`bench/upstream.py`); the ratio compares their medians. The refresh is the daemon's"
        " own code (`helperd.upstream.engine.refresh`: login, mount check, one list, one read per"
        " secret), timed in the bench's process; the daemon runs it in a thread of its own, so a"
        " get never waits for it.\n"
    )
    out.append(tables["upstream"])
    out.append("## Profile of `get`: what dominates\n")
    out.append(_profile_words(r) + "\n")
    out.append(tables["profile"])
    out.append(
        "## Suggestions\n\n"
        "Done after the first run, and measured in this one: a `get` from an open file store"
        " is answered on the event loop (no worker thread), reads use `asyncio.timeout`"
        " instead of `wait_for`, `helperd_client` loads its client module on first use, and"
        " only keyring's own OS backends may hold secrets (keyrings.cryptfile won the choice"
        " and would have prompted on the terminal). Then, for item 5: stores hand out one"
        " sorted tuple of records per version instead of sorting a copy per request, and the"
        " service keeps a lookup catalog per version (`helperd.core.lookup.Catalog`: names, URL"
        " origins and hosts as dict keys, URLs parsed once and reused by the next version's"
        " catalog), with message text built only when a lookup fails; and the keyring"
        " plugin keeps one connection per backend instance instead of one per call (the"
        " client replaces a connection the daemon has closed meanwhile). Then, for issue 19:"
        " a plain `get` or `hello` is checked by hand and a `get` served once is answered"
        " from its rendered bytes until the store changes (`helperd.core.hot`: no pydantic"
        " model per request, about 7 µs of Python instead of 30 in-process); `list` pages;"
        " the file format keeps a line per record, validated in one pydantic call with the"
        " garbage collector paused, and the catalog reads plain index URLs without"
        " `urlsplit`. Then, for issues 13, 14 and 19 again: the store file is in segments"
        " (format version 3), so a `set` encrypts a few hundred records, not all of them; the"
        " store says what a write changed, and the next catalog shares its tables with the"
        " previous one under a small layer of changes; the answers a write leaves as they"
        " were are checked by the writer and kept; and a provider record's warm token is"
        " answered from its rendered bytes like a plain record's. Then: a kept answer goes out"
        " under an integer id without the JSON encoder (about 5 µs of Python per kept `get`"
        " instead of 7), what a bulk build leaves alive is frozen for the garbage collector"
        " (two collections of about 150 ms each no longer follow the opening of a"
        " 100,000-record store), and latency is measured with server and client on one CPU."
        " Then, for issue 13: blocking calls go to worker threads woken and answered through"
        " pipes (half the event loop's cost of `run_in_executor`), and a `set` appends one"
        " entry to the store's journal (format version 4) instead of writing the whole file.\n\n"
        "Still open: the measured costs and the"
        " changes that remove them, largest first.\n"
    )
    out.append("\n".join(f"{n}. {text}" for n, text in enumerate(_suggestions(r), start=1)) + "\n")
    return "\n".join(out)
