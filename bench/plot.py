"""docs/performance.png: four panels of one run, drawn with matplotlib (the bench extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot"]

COLORS = {
    "c_echo": "#999999",
    "floor": "#4c72b0",
    "floor_json": "#55a868",
    "helperd": "#c44e52",
    "helperd_uvloop": "#8172b2",
}
NAMES = {
    "c_echo": "C echo",
    "floor": "floor",
    "floor_json": "floor+JSON",
    "helperd": "helperd",
    "helperd_uvloop": "helperd+uvloop",
}


def _latency(ax: Any, r: dict[str, Any]) -> None:
    rows = r["latency"]["rows"]
    servers = list(dict.fromkeys(row["server"] for row in rows))
    width = 0.38
    for offset, mode in ((-width / 2, "kept"), (width / 2, "fresh")):
        values = [
            next(x for x in rows if x["server"] == s and x["mode"] == mode)["us"]["p50"]
            for s in servers
        ]
        bars = ax.bar(
            [i + offset for i in range(len(servers))],
            values,
            width,
            label=f"{mode} connection",
            color=[COLORS[s] for s in servers],
            alpha=1.0 if mode == "kept" else 0.55,
            edgecolor="black",
            linewidth=0.4,
        )
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(servers)), [NAMES[s] for s in servers])
    ax.set_ylabel("p50 µs (one client)")
    ax.set_title("1. get latency: solid kept, pale fresh connection", fontsize=10)


def _throughput(ax: Any, r: dict[str, Any]) -> None:
    rows = r["throughput"]["rows"]
    for server in dict.fromkeys(row["server"] for row in rows):
        mine = [x for x in rows if x["server"] == server]
        ax.plot(
            [x["clients"] for x in mine],
            [x["rate"]["p50"] for x in mine],
            marker="o",
            color=COLORS[server],
            label=NAMES[server],
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(r["throughput"]["clients"], [str(c) for c in r["throughput"]["clients"]])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("gets per second")
    ax.set_title("4. throughput", fontsize=10)
    ax.legend(fontsize=7)


def _rivals(ax: Any, r: dict[str, Any]) -> None:
    rows = r["rivals"]["rows"]
    labels = [row["label"].split(" (")[0].replace("helperd_client.", "") for row in rows]
    values = [row["warm_us"]["p50"] for row in rows]
    bars = ax.barh(range(len(rows)), values, color="#8172b2")
    ax.bar_label(bars, labels=[f"{v:,.0f} µs" for v in values], fontsize=7, padding=2)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(right=max(values) * 30)  # room for the labels
    ax.set_xlabel("warm get p50, µs (log)")
    ax.set_title("2. the same secret through keyring", fontsize=10)


def _scale(ax: Any, r: dict[str, Any]) -> None:
    rows = r["scale"]["rows"]
    sizes = [row["size"] for row in rows]
    for key, label, color in (
        ("get_service_us", "get by service", "#c44e52"),
        ("get_url_us", "get by URL", "#dd8452"),
        ("set_ms", "durable set", "#4c72b0"),
        ("disk_ms", "write_atomic alone", "#999999"),
    ):
        factor = 1e3 if key.endswith("_ms") else 1.0
        ax.plot(
            sizes, [row[key]["p50"] * factor for row in rows], marker="o", label=label, color=color
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("repositories in the store")
    ax.set_ylabel("p50 µs (log)")
    ax.set_title("5. scale", fontsize=10)
    ax.legend(fontsize=7)


def plot(results: dict[str, Any], path: Path) -> None:
    """Draw what ``results`` holds into ``path`` (a small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (key, draw)
        for key, draw in (
            ("latency", _latency),
            ("throughput", _throughput),
            ("rivals", _rivals),
            ("scale", _scale),
        )
        if key in results
    ]
    if not panels:
        return
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (_key, draw) in zip(axes.flat, panels, strict=False):
        draw(ax, results)
        ax.grid(alpha=0.3, which="both", linewidth=0.4)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(
        f"helperd benchmarks, {results['started'][:10]}, {results['machine']['cpus']} CPUs"
        " (same run, same machine)",
        fontsize=11,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
