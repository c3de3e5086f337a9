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
    """Item 5b when it misses its goal: what the run says, point by point."""
    rows = writers["rows"]
    worst = max(missed, key=lambda w: w["p50_ratio"])
    seconds = writers.get("rounds", 1) * writers.get("window_seconds", 1.0)

    def both(kind: str) -> str:
        return ", ".join(
            f"{w[kind + '_p50_ratio']:.2f}x / {w[kind + '_p99_ratio']:.1f}x"
            for w in rows
            if kind + "_p50_ratio" in w
        )

    def cpu(key: str) -> str:
        return ", ".join(us(w[key]) for w in rows if key in w)

    rates = ", ".join(f"{w['sets'] / seconds:,.0f}" for w in rows)
    points = [
        (
            "A `get` takes no lock and no thread: it is answered on the event loop from the"
            " snapshot of the last durable write. The sets are served by the daemon's writer"
            f" process ({rates} sets a second from 10 to 10,000 repositories), which spends"
            f" {cpu('writer_process_cpu_us')} of CPU on each; the daemon spends"
            f" {cpu('cpu_us')} on each (reading the change, applying it to its snapshot,"
            " indexing the records it changed), on the event loop that answers the gets."
        ),
        (
            "What the machine alone costs them: a bare durable server, no helperd in it (a"
            " blocking loop that appends each line a client sends to a file, fsyncs it and"
            f" answers), {both('bare')}; the same looping writer served by a second helperd,"
            f" which shares nothing with the measured one but the machine, {both('apart')}."
        ),
        (
            f"Beside a client looping `hello`, the cheapest request: {both('hello')}. Beside the"
            f" same writer paced at {rows[0].get('paced_per_second', 200)} sets a second:"
            f" {both('paced')}."
        ),
        (
            "Where to look: the daemon's share of a set (`helperd.daemon.writer_link`,"
            " `FileStore.apply`, `Service.written`), which runs on the loop the gets wait for,"
            " and the machine's own noise, which the rows above measure."
        ),
    ]
    return (
        f"**Reads beside a writer** miss their goal ({len(missed)} size(s); at"
        f" {worst['size']:,} repositories p50 {worst['p50_ratio']:.2f}x, p99"
        f" {worst['p99_ratio']:.1f}x).\n" + "\n".join(f"   - {point}" for point in points)
    )


def _writers_text(r: dict[str, Any]) -> str:
    """Section 5b's text: how it measures, and why so."""
    writers = r.get("writers", {})
    rows = writers.get("rows", [])
    noise = ", ".join(us(w["apart_cpu_us"]) for w in rows if "apart_cpu_us" in w)
    return (
        "## 5b. Reads beside a writer\n\n"
        "For each size, one connection asks for the middle repository (`get` by Poetry's"
        " service), back to back, while a second process loops `set` on its own connection,"
        " each one appending to the store's journal and fsyncing it (`bench/writers.py`). The"
        " daemon's writer process serves those sets, the daemon applying each to its snapshot"
        " on its event loop (docs/architecture.md); a first set starts it before anything is"
        " measured. The writer is stopped and let go in turns, so that windows alone and"
        f" beside it alternate ({writers.get('rounds', 0)} of each,"
        f" {writers.get('window_seconds', 0):g} s long); the ratios compare the two. As in"
        " section 1, the getter (a Python client, whose own time is in both figures) and the"
        " daemon's event loop share one CPU while they are measured; the writer, and every"
        " other process, runs where the kernel puts it. A get that arrives while the loop"
        " applies a set waits for it: that is the p99 ratio. The `hello` client loops as fast"
        " as the getter, on the same event loop: its row shows two busy clients sharing one"
        " loop, not a write, and how they interleave moves it from size to size.\n\n"
        "The CPU per set, from the scheduler's count of each thread's time: the writer"
        " process's over the busy windows less the quiet ones; the daemon's the same, less"
        " what the busy windows' gets cost it at their quiet rate. Beside the second"
        " helperd's writer, whose sets never reach the measured daemon, that figure reads"
        f" {noise or 'not measured'}: its noise.\n\n"
        "Why this method: until 2026-12-04 this section let the kernel place every process"
        " and paused 1 ms between gets. With the writer process, the quiet p50 then moved"
        " between 76 µs and 128 µs from run to run (seven runs), with how fast an idle"
        " virtual CPU woke up, and the row of the second helperd, which shares only the"
        " machine with the measured one, exceeded 1.2x at one size or more in each run;"
        " helperd's own ratio read 1.04x to 1.43x. The method still tells the designs apart:"
        " the daemon before the writer process (commit cbade8a, which wrote each set in a"
        " worker thread of its own process, sharing the interpreter with the event loop),"
        " measured this way on 2026-12-04 with"
        " `./bench/run.sh --only writers --daemon-source` (bench/README.md), read p50 1.78x,"
        " 1.54x and 1.59x and p99 3.64x, 3.85x and 4.46x at 10, 1,000 and 10,000"
        " repositories, with the daemon spending 519 µs to 642 µs of CPU per set.\n"
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
    out.append(_writers_text(r))
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
