#!/usr/bin/env bash
# Install everything the test suite needs, then run the linters and the whole suite.
#
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -k lookup -x    # extra arguments go to pytest
#
# Steps: Debian packages (as root, only those missing), a venv (.venv, or HELPERD_TEST_VENV),
# pip install -e ./client -e '.[test]', then ruff check, ruff format --check, mypy and pytest.
# Every check runs even when an earlier one fails; the script exits 1 when any of them failed.
#
# Environment:
#   PYTHON             the Python for a new venv (default: python3; 3.11 or newer)
#   HELPERD_TEST_VENV  the venv to use (default: .venv in the repository; reused when present)
#   CI                 passed on unchanged; with CI=true a test whose tool is missing fails instead of skipping
set -euo pipefail

info() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
ci_mode() {
    local v
    v="$(printf '%s' "${CI:-}" | tr '[:upper:]' '[:lower:]')"
    [[ "$v" == "true" || "$v" == "1" ]]
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", b - a }'; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"

summary=()
failed=()
record() { # record NAME STATUS START
    summary+=("$1 $2 $(elapsed "$3" "$(now)")")
    if [[ "$2" == FAILED* ]]; then
        failed+=("$1")
    fi
}
print_summary() {
    local IFS='|'
    local line="${summary[*]}"
    printf 'timings: %s\n' "${line//|/ | }"
}

# --- 1. Python ------------------------------------------------------------------------------------
python="${PYTHON:-python3}"
command -v "$python" >/dev/null 2>&1 || die "'$python' not found: install Python 3.11 or newer, or set PYTHON"
py_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
    die "the tests need Python 3.11 or newer; '$python' is $py_version (set PYTHON=/path/to/python3.11 or newer)"

venv="${HELPERD_TEST_VENV:-$repo/.venv}"
venv_ok() {
    "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

# --- 2. Debian packages ---------------------------------------------------------------------------
t0="$(now)"
missing=()
need_tool() { # need_tool PACKAGE COMMAND...
    local package="$1" cmd
    shift
    for cmd in "$@"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            missing+=("$package")
            return
        fi
    done
}
need_tool gnome-keyring gnome-keyring-daemon
need_tool dbus dbus-daemon
need_tool dbus-x11 dbus-launch
need_tool libsecret-tools secret-tool
need_tool systemd systemd-analyze systemd-socket-activate systemd-creds
need_tool procps ps pgrep pkill
need_tool util-linux setsid
need_tool iproute2 ss
if ! venv_ok && ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
    if command -v apt-cache >/dev/null 2>&1 && apt-cache show "python$py_version-venv" >/dev/null 2>&1; then
        missing+=("python$py_version-venv")
    fi
fi

if [[ "${#missing[@]}" -eq 0 ]]; then
    record packages ok "$t0"
elif [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    info "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    record packages ok "$t0"
else
    hint="sudo apt-get install ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 || hint="install the equivalents of: ${missing[*]}"
    if ci_mode; then
        die "missing test tools (${missing[*]}) and not root: $hint"
    fi
    warn "missing test tools (${missing[*]}): the tests that need them will be skipped; to run them: $hint"
    record packages "missing(${missing[*]})" "$t0"
fi

# --- 3. venv and the two distributions in editable mode -------------------------------------------
t0="$(now)"
if venv_ok; then
    info "Reusing the venv at $venv"
else
    if [[ -f "$venv/pyvenv.cfg" ]]; then
        info "Recreating the broken or outdated venv at $venv"
        "$python" -m venv --clear "$venv"
    else
        [[ ! -e "$venv" || -z "$(ls -A "$venv" 2>/dev/null)" ]] ||
            die "$venv exists and is not a virtual environment: remove it or set HELPERD_TEST_VENV"
        info "Creating a venv at $venv"
        "$python" -m venv "$venv"
    fi
fi
info "Installing helperd-client and helperd[test] (editable)"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ./client -e '.[test]' ||
    die "pip could not install the project and its test dependencies (see above)"
record install ok "$t0"

# The tests find helperd, helperctl, ruff and friends on PATH.
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
unset PYTHONHOME

# --- 4. checks ------------------------------------------------------------------------------------
run_step() { # run_step NAME COMMAND...
    local name="$1" rc=0 t
    shift
    info "$name: $*"
    t="$(now)"
    "$@" || rc=$?
    if [[ "$rc" -eq 0 ]]; then
        record "$name" ok "$t"
    else
        record "$name" "FAILED(exit $rc)" "$t"
    fi
    return 0
}

run_step ruff-check ruff check .
run_step ruff-format ruff format --check .
run_step mypy mypy

# pytest runs as `python -m pytest` so that the repository root is on sys.path (tests.support).
info "pytest: python -m pytest $*"
t0="$(now)"
rc=0
"$venv/bin/python" -m pytest "$@" || rc=$?
case "$rc" in
    0) record pytest ok "$t0" ;;
    5)
        printf 'error: pytest collected no tests (exit 5): a run that tests nothing is a failure\n' >&2
        record pytest "FAILED(no tests)" "$t0"
        ;;
    *) record pytest "FAILED(exit $rc)" "$t0" ;;
esac

print_summary
if [[ "${#failed[@]}" -gt 0 ]]; then
    printf 'error: failed: %s\n' "${failed[*]}" >&2
    exit 1
fi
info "all checks passed"
