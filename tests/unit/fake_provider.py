"""A fake provider command for the provider tests, written to a temporary folder and run.

``python fake_provider.py COUNT MODE [ARG]``: counts its run in the file COUNT (one line per
run, with its pid), then by MODE prints a JSON token ``{"token": ..., "expires": epoch}``
living ARG seconds (``ok``), sleeps ARG seconds first (``sleep``), fails with a token-like word
on stderr and the token on stdout (``fail``, or ``fail-short`` with a short token full of
punctuation, echoed whole), prints junk (``junk``) or ARG bytes (``huge``),
hangs with a child in its process group (``hang``, pids in ARG), or dumps its environment,
session and stdin to ARG (``env``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

TOKEN_PREFIX = "tok"


def main() -> None:
    """Count the run, then behave as MODE says."""
    count, mode, arg = Path(sys.argv[1]), sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")
    with count.open("a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    runs = len(count.read_text(encoding="utf-8").splitlines())
    token = f"{TOKEN_PREFIX}-{runs}-{'s3cr3t' * 5}"
    if mode == "sleep":
        time.sleep(float(arg))
        arg = "3600"
    if mode in {"ok", "sleep"}:
        print(json.dumps({"token": token, "expires": time.time() + float(arg or 3600)}))
    elif mode == "fail":
        print(json.dumps({"token": token}))
        print(f"denied: key {token} is wrong; see https://example.invalid", file=sys.stderr)
        sys.exit(3)
    elif mode == "fail-short":  # a short token with punctuation, printed as JSON and echoed
        short = f"t:{runs}$Zq!x"
        print(json.dumps({"token": short, "note": "see stderr"}))
        print(f"error: refusing token {short} (debug)", file=sys.stderr)
        sys.exit(3)
    elif mode == "junk":
        print("<html><body>Sign in</body></html>")
    elif mode == "huge":
        sys.stdout.write("x" * int(arg))
    elif mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        Path(arg).write_text(f"{os.getpid()} {child.pid}", encoding="utf-8")
        time.sleep(3600)
    elif mode == "env":
        facts = {
            "env": dict(os.environ),
            "own_session": os.getsid(0) == os.getpid(),
            "stdin": os.readlink("/proc/self/fd/0"),
        }
        Path(arg).write_text(json.dumps(facts), encoding="utf-8")
        print(json.dumps({"token": token, "expires": time.time() + 3600}))


if __name__ == "__main__":
    main()
