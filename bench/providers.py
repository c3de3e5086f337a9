"""Issue 14: a get of a provider record with a warm token against a plain get, and against
running the provider on every lookup (what the per-cloud keyring plugins do).

One daemon holds a plain token record and a provider record whose command is a small Python
script printing a token (a stand-in far cheaper than any cloud CLI). One client connection
asks for each in turns, so both see the same machine; the ratio of their medians is the cost
of the provider path once its token is minted. Beside them: one run of the provider script per
lookup, and, where the AWS CLI is installed, ``aws --version`` (its start alone, a floor under
any ``aws codeartifact get-authorization-token``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.process import helperd_daemon, new_key_file
from bench.stats import ratio, summarize

__all__ = ["providers"]

SCRIPT = f"""#!{sys.executable}
import secrets
print("bench-" + secrets.token_urlsafe(24))
"""


def _time_gets(client: Any, name: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        client.get(name=name)
        samples.append(time.perf_counter() - started)
    return samples


def _time_runs(argv: list[str], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, timeout=60)
        samples.append(time.perf_counter() - started)
    return samples


def providers(folder: Path, gets: int, rounds: int, runs: int) -> dict[str, Any]:
    """Measure ``rounds`` turns of ``gets`` gets of each record, and ``runs`` provider runs.

    Returns:
        Summaries in microseconds (gets) and milliseconds (runs), and the ratios.
    """
    from helperd_client import Client

    home = folder / "hd"
    home.mkdir(mode=0o700)
    key = new_key_file(folder / "hd.key")
    script = folder / "mint"
    script.write_text(SCRIPT)
    script.chmod(0o700)
    spec = {"preset": "command", "argv": [str(script)], "username": "aws"}
    plain: list[float] = []
    provided: list[float] = []
    with helperd_daemon(home, key) as daemon, Client(daemon.socket, timeout=70.0) as client:
        client.set("plain", "bench-plain-token-0123456789", username="aws", kind="token")
        client.set("minted", None, username="aws", kind="token", provider=spec)
        _time_gets(client, "plain", gets // 10)  # warm both paths before counting
        _time_gets(client, "minted", gets // 10)
        for _ in range(rounds):
            plain += _time_gets(client, "plain", gets)
            provided += _time_gets(client, "minted", gets)
    each_run = _time_runs([str(script)], runs)
    aws = shutil.which("aws")
    aws_start = _time_runs([aws, "--version"], max(1, runs // 3)) if aws else []
    plain_us = summarize([s * 1e6 for s in plain])
    provided_us = summarize([s * 1e6 for s in provided])
    run_ms = summarize([s * 1e3 for s in each_run])
    return {
        "gets": gets,
        "rounds": rounds,
        "plain_us": plain_us.as_dict(),
        "provider_us": provided_us.as_dict(),
        "warm_ratio": ratio(provided_us.p50, plain_us.p50),
        "run_ms": run_ms.as_dict(),
        "run_ratio": ratio(run_ms.p50 * 1e3, plain_us.p50),
        "aws_start_ms": summarize([s * 1e3 for s in aws_start]).as_dict() if aws_start else None,
    }
