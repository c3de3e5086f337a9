"""Run every benchmark of issues 7 and 8 and rewrite docs/performance.md and docs/performance.png.

    bench/.venv/bin/python bench/run.py            # the full run, about 5 minutes
    bench/.venv/bin/python bench/run.py --quick    # a smoke run, about a minute

See bench/README.md for the setup (a venv of its own) and what each part measures.
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script: make the repository importable (bench.*, tests.support, tests.e2e).
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    # Measure imports as an installed package runs them: from cached bytecode. Some machines
    # set PYTHONDONTWRITEBYTECODE, which would make every measured process compile its source.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for package in (root / "helperd", root / "client" / "helperd_client"):
        compileall.compile_dir(package, quiet=1)
    from bench.main import main

    sys.exit(main(sys.argv[1:]))
