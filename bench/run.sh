#!/usr/bin/env bash
# The one command for the benchmarks: makes bench/.venv when missing, then runs bench/run.py.
#
#   ./bench/run.sh            # the full run (about 7 minutes); rewrites docs/performance.md
#   ./bench/run.sh --quick    # a smoke run (about a minute); writes bench/results/ only
#
# Run ./scripts/test.sh once first on a new machine: it installs gnome-keyring, dbus and
# the other Debian packages the Secret Service rival needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -x bench/.venv/bin/python ]]; then
    "${PYTHON:-python3}" -m venv bench/.venv
fi
bench/.venv/bin/python -m pip install -q -e ./client -e '.[test,bench,fast]'
exec bench/.venv/bin/python bench/run.py "$@"
