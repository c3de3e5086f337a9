"""Issue 7's goals, each judged met or not from one run's results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Goal", "goals", "row"]


@dataclass(frozen=True)
class Goal:
    """One goal: what it asks, what this run measured, and whether that meets it (None: no goal)."""

    item: str
    goal: str
    measured: str
    met: bool | None


def row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    """The one row whose fields equal ``match``."""
    return next(r for r in rows if all(r.get(k) == v for k, v in match.items()))


def _latency(r: dict[str, Any]) -> list[Goal]:
    found = []
    for mode, words in (("fresh", "a fresh connection"), ("kept", "a kept connection")):
        h = row(r["latency"]["rows"], server="helperd", mode=mode)
        found.append(
            Goal(
                "1. floor",
                f"`get` p50 over {words} ≤ 2x the floor (aim 1.3x)",
                f"{h['p50_ratio']:.2f}x (p99 {h['p99_ratio']:.2f}x)",
                h["p50_ratio"] <= 2.0,
            )
        )
    return found


def _rivals(r: dict[str, Any]) -> list[Goal]:
    rows = r["rivals"]["rows"]
    found = []
    if any(x["backend"] == "secret_service" for x in rows):
        ss = row(rows, backend="secret_service")["warm_vs_plugin"]
        found.append(
            Goal(
                "2. rivals",
                "plugin's warm get ≥ 40x faster than a warm Secret Service get (aim 90x)",
                f"{ss:.1f}x",
                ss >= 40,
            )
        )
    if any(x["backend"] == "cryptfile" for x in rows):
        cf = row(rows, backend="cryptfile")["warm_vs_plugin"]
        found.append(
            Goal(
                "2. rivals",
                "plugin's warm get ≥ 1,000x faster than keyrings.cryptfile",
                f"{cf:,.0f}x",
                cf >= 1000,
            )
        )
    return found


def _throughput(r: dict[str, Any]) -> list[Goal]:
    rows = r["throughput"]["rows"]
    most = max(r["throughput"]["clients"])
    ceiling = max(x["rate"]["p50"] for x in rows if x["server"] == "floor")
    h = row(rows, server="helperd", clients=most)
    f = row(rows, server="floor", clients=most)
    share = h["rate"]["p50"] / ceiling
    p99 = h["p99_us"]["p50"] / f["p99_us"]["p50"]
    return [
        Goal(
            "4. throughput",
            f"gets/s at {most} clients ≥ 1/3 of the floor's ceiling",
            f"{share:.2f} ({h['rate']['p50']:,.0f} of {ceiling:,.0f}/s)",
            share >= 1 / 3,
        ),
        Goal(
            "4. throughput",
            f"p99 at {most} clients ≤ 10x the floor's p99 at that load",
            f"{p99:.1f}x",
            p99 <= 10,
        ),
    ]


def _scale(r: dict[str, Any]) -> list[Goal]:
    rows = r["scale"]["rows"]
    big, small = rows[-1], rows[0]
    worst = max(big["get_service_us_ratio"], big["get_url_us_ratio"])
    return [
        Goal(
            "5. scale",
            f"get latency flat within 1.5x from {small['size']:,} to {big['size']:,} repositories",
            f"by service {big['get_service_us_ratio']:,.1f}x,"
            f" by URL {big['get_url_us_ratio']:,.1f}x",
            worst <= 1.5,
        ),
        Goal(
            "5. scale",
            f"opening a {big['size']:,}-record store (first get) ≤ 1 s",
            f"{big['open_ms']['p50'] / 1e3:.2f} s (at {small['size']:,}:"
            f" {small['open_ms']['p50']:.0f} ms)",
            big["open_ms"]["p50"] <= 1000,
        ),
        Goal(
            "5. scale",
            f"a durable set at {big['size']:,} records ≤ 0.2 s",
            f"{big['set_ms']['p50'] / 1e3:.3f} s (at {small['size']:,}:"
            f" {small['set_ms']['p50']:.1f} ms)",
            big["set_ms"]["p50"] <= 200,
        ),
        Goal(
            "5. scale",
            f"`helperctl list` (Client.list, paged) works at {big['size']:,} records",
            "yes" if big["list_ok"] else f"no: {big['list_error']}",
            bool(big["list_ok"]),
        ),
    ]


def _writers(r: dict[str, Any]) -> list[Goal]:
    found = []
    for row in r["writers"]["rows"]:
        found.append(
            Goal(
                "5b. reads beside a writer",
                f"get p50 at most 1.2x and p99 at most 3x the quiet ones, {row['size']:,}"
                " repositories",
                f"p50 {row['p50_ratio']:.2f}x, p99 {row['p99_ratio']:.2f}x",
                row["p50_ratio"] <= 1.2 and row["p99_ratio"] <= 3,
            )
        )
    return found


def _imports(r: dict[str, Any]) -> list[Goal]:
    i = r["imports"]
    return [
        Goal(
            "6. import cost",
            "plugin adds ≤ 5% to `import keyring` (`-X importtime`)",
            f"{i['importtime_ratio'] * 100:.1f}% (wall clock: {i['wall_ratio'] * 100:.1f}%)",
            i["importtime_ratio"] <= 0.05,
        )
    ]


def _poetry(r: dict[str, Any]) -> list[Goal]:
    p = r["poetry"]
    return [
        Goal(
            "7. Poetry",
            "overhead of helperd on `poetry lock` vs plaintext auth.toml (reported, no target)",
            f"{p['overhead_pct']:+.1f}%",
            None,
        )
    ]


def _shim(r: dict[str, Any]) -> list[Goal]:
    rows = r["processes"]["rows"]
    if not any(x["key"] == "shim" for x in rows):
        return []
    shim = row(rows, key="shim")
    keyring = row(rows, key="keyring_plugin")
    return [
        Goal(
            "8. shim",
            "the shim's `keyring get` ≤ 3x `python -c pass` of its interpreter",
            f"{shim['vs_python']:.2f}x (`keyring get` with the plugin:"
            f" {keyring['vs_python']:.1f}x)",
            shim["vs_python"] <= 3,
        )
    ]


def _uv(r: dict[str, Any]) -> list[Goal]:
    u = r["uv"]
    return [
        Goal(
            "8. shim",
            f"`uv lock` of {u['packages']} private packages: plugin's time / shim's"
            " (reported, no target)",
            f"{u['plugin_vs_shim']:.2f}x",
            None,
        )
    ]


def goals(results: dict[str, Any]) -> list[Goal]:
    """Every goal whose measurement is in ``results``, in the issue's order."""
    found: list[Goal] = []
    for key, judge in (
        ("latency", _latency),
        ("rivals", _rivals),
        ("throughput", _throughput),
        ("scale", _scale),
        ("writers", _writers),
        ("imports", _imports),
        ("poetry", _poetry),
        ("processes", _shim),
        ("uv", _uv),
    ):
        if key in results:
            found += judge(results)
    return found
