#!/usr/bin/env bash
# Install helperd and helperctl from this repository, then start the daemon.
#
#   ./scripts/install.sh
#   ./scripts/install.sh --which-python   # print the Python it would build the venv with, and stop
#
# As root: a venv in /opt/helperd built from a Python every user can run (the first python3 on
# PATH, else /usr/bin/python3), links in /usr/local/bin.
# As a user: a venv in ~/.local/share/helperd/venv, links in ~/.local/bin.
# Where a systemd user manager runs, it also installs the user units (helperctl install-service).
# Re-running upgrades in place and leaves a running daemon alone.
#
# Environment:
#   PYTHON          the Python to build the venv with (default: python3, else /usr/bin/python3;
#                   3.11 or newer, and as root one every user can run)
#   HELPERD_VENV    where the venv goes
#   HELPERD_BIN_DIR where the helperd, helperctl and git-credential-helperd links go
# HELPERD_HOME, HELPERD_SOCKET and HELPERD_STORE reach the daemon and helperctl unchanged.
#
# This script never reads, asks for or prints a secret.
set -euo pipefail

info() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

case "${1:-}" in
"" | --which-python) ;;
*) die "usage: $0 [--which-python]" ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
[[ -f "$repo/pyproject.toml" && -f "$repo/client/pyproject.toml" ]] ||
    die "$repo does not look like the helperd repository (no pyproject.toml or client/pyproject.toml)"

if [[ "$(id -u)" -eq 0 ]]; then
    is_root=1
    default_venv=/opt/helperd
    default_bin=/usr/local/bin
else
    is_root=0
    default_venv="$HOME/.local/share/helperd/venv"
    default_bin="$HOME/.local/bin"
fi
# Root's umask may be 077: the venv and the links must still be readable by every user.
[[ "$is_root" -eq 1 ]] && umask 022
venv="${HELPERD_VENV:-$default_venv}"
bin_dir="${HELPERD_BIN_DIR:-$default_bin}"

# --- 1. a Python 3.11 or newer -------------------------------------------------------------------
# As root the venv serves every user, so its Python must be one every user can run: a pyenv
# Python under root's 0700 home is not. Then /usr/bin/python3 is the fallback.
py_is() { # py_is PYTHON CHECK: whether PYTHON runs and passes CHECK (new | shared)
    "$1" - "$2" >/dev/null 2>&1 <<'PY'
import os, stat, sys
if sys.version_info < (3, 11):
    sys.exit(1)
if sys.argv[1] == "shared":
    # Every folder up to the real interpreter and its standard library must let others in,
    # and the interpreter itself must be readable and runnable by others.
    exe = os.path.realpath(sys.executable)
    lib = os.path.realpath(os.path.dirname(os.__file__))
    for start in (exe, lib):
        folder = os.path.dirname(start)
        while True:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                sys.exit(1)
            if folder == os.path.dirname(folder):
                break
            folder = os.path.dirname(folder)
    mode = os.stat(exe).st_mode
    sys.exit(0 if mode & stat.S_IROTH and mode & stat.S_IXOTH else 1)
PY
}
py_where() { "$1" -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null || echo "$1"; }
need=new
[[ "$is_root" -eq 1 ]] && need=shared
if [[ -n "${PYTHON:-}" ]]; then
    candidates=("$PYTHON")
else
    candidates=(python3 /usr/bin/python3)
fi
python=""
for candidate in "${candidates[@]}"; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    if py_is "$candidate" "$need"; then
        python="$candidate"
        break
    fi
    if py_is "$candidate" new; then
        warn "$(py_where "$candidate") is not usable by every user (a folder on its way is closed to others, e.g. a 0700 home): not using it for a machine-wide install"
    fi
done
if [[ -z "$python" ]]; then
    if [[ "$need" == shared ]]; then
        die "no Python 3.11 or newer that every user can run: tried ${candidates[*]} (Debian/Ubuntu: apt-get install python3; or set PYTHON=/path/to/python3.11 outside any home folder)"
    fi
    die "no Python 3.11 or newer: tried ${candidates[*]} (Debian/Ubuntu: apt-get install python3, or set PYTHON=/path/to/python3.11)"
fi
py_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "${1:-}" == "--which-python" ]]; then
    py_where "$python"
    exit 0
fi
info "Python: $(py_where "$python") ($py_version)"

# --- 2. the venv module (Debian ships it separately) ---------------------------------------------
has_venv() { "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; }
if ! has_venv; then
    if [[ "$is_root" -eq 1 ]] && command -v apt-get >/dev/null 2>&1; then
        info "Installing python3-venv (python3 -m venv is unavailable)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        packages=(python3-venv)
        # A non-default Debian Python (python3.12 beside python3.11) needs its own venv package.
        if apt-cache show "python$py_version-venv" >/dev/null 2>&1; then
            packages+=("python$py_version-venv")
        fi
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
        has_venv || die "'$python -m venv' still does not work after installing ${packages[*]}"
    else
        die "'$python -m venv' is unavailable: install python3-venv (Debian/Ubuntu: sudo apt-get install python3-venv python$py_version-venv), or run this script as root"
    fi
fi

# --- 3. the venv ----------------------------------------------------------------------------------
# A venv made earlier from a Python other users cannot run (root's pyenv) is made again.
venv_ok() { py_is "$venv/bin/python" "$need"; }
if [[ -e "$venv" && ! -f "$venv/pyvenv.cfg" ]]; then
    if [[ -d "$venv" && -z "$(ls -A "$venv")" ]]; then
        : # an empty folder is fine
    else
        die "$venv exists and is not a virtual environment: remove it or set HELPERD_VENV elsewhere"
    fi
fi
if [[ -f "$venv/pyvenv.cfg" ]] && venv_ok; then
    info "Reusing the venv at $venv"
else
    if [[ -f "$venv/pyvenv.cfg" ]]; then
        info "Recreating the venv at $venv (broken, older than 3.11, or built from a Python other users cannot run)"
        "$python" -m venv --clear "$venv"
    else
        info "Creating a venv at $venv"
        mkdir -p "$(dirname "$venv")"
        "$python" -m venv "$venv"
    fi
fi

# --- 4. the two distributions ---------------------------------------------------------------------
info "Installing helperd-client and helperd from $repo"
(cd "$repo" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade ./client .) ||
    die "pip could not install helperd from $repo (see above)"
for exe in helperd helperctl git-credential-helperd; do
    [[ -x "$venv/bin/$exe" ]] || die "pip did not install $venv/bin/$exe"
done
helperctl="$venv/bin/helperctl"
info "Installed: $("$venv/bin/python" -c 'from importlib.metadata import version; print("helperd", version("helperd"), "/ helperd-client", version("helperd-client"))')"

# --- 5. links on PATH -----------------------------------------------------------------------------
mkdir -p "$bin_dir"
for exe in helperd helperctl git-credential-helperd; do
    link="$bin_dir/$exe"
    target="$venv/bin/$exe"
    if [[ -e "$link" && ! -L "$link" ]]; then
        die "$link exists and is not a symbolic link: move it away, or set HELPERD_BIN_DIR elsewhere"
    fi
    if [[ -L "$link" && "$(readlink "$link")" != "$target" ]]; then
        warn "$link pointed to $(readlink "$link"); it now points to $target"
    fi
    ln -sfn "$target" "$link"
done
info "Linked helperd, helperctl and git-credential-helperd into $bin_dir"
case ":$PATH:" in
    *":$bin_dir:"*) ;;
    *) warn "$bin_dir is not on your PATH: add it (e.g. export PATH=\"$bin_dir:\$PATH\" in ~/.profile)" ;;
esac

# --- 6. the daemon, now and after a reboot ------------------------------------------------------
# Where a systemd user manager runs, its units start helperd at each login, on the first
# connection (socket activation). Elsewhere nothing runs at boot: the keyring plugin, the shim and
# git-credential-helperd start helperd on demand when none answers. Either way, start one now.
systemd_user=0
if command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1; then
    systemd_user=1
fi
if [[ "$systemd_user" -eq 1 ]]; then
    info "A systemd user manager runs: installing helperd's user units (helperctl install-service)"
    "$helperctl" install-service ||
        warn "'helperctl install-service' failed (see above): helperd will be started on demand instead"
fi

status_rc=0
"$helperctl" status >/dev/null 2>&1 || status_rc=$?
case "$status_rc" in
    0)
        info "helperd answers already: leaving it alone (stop and start it again to run the new version)"
        ;;
    3)
        state_dir="${XDG_STATE_HOME:-$HOME/.local/state}/helperd"
        log="$state_dir/helperd.log"
        (umask 077 && mkdir -p "$state_dir")
        chmod 700 "$state_dir"
        (umask 077 && touch "$log")
        chmod 600 "$log"
        info "Starting helperd in the background (log: $log)"
        printf '\n--- started by install.sh at %s ---\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
        detach=(nohup)
        if command -v setsid >/dev/null 2>&1; then
            detach=(setsid nohup)
        fi
        (umask 077 && exec "${detach[@]}" "$venv/bin/helperd" </dev/null >>"$log" 2>&1) &
        daemon_pid=$!
        # Wait up to 10 seconds for the daemon to answer.
        up=0
        for _ in $(seq 50); do
            if "$helperctl" status >/dev/null 2>&1; then
                up=1
                break
            fi
            if ! kill -0 "$daemon_pid" 2>/dev/null; then
                break
            fi
            sleep 0.2
        done
        if [[ "$up" -ne 1 ]]; then
            printf '%s\n' "--- last lines of $log ---" >&2
            tail -n 20 "$log" >&2 || true
            if kill -0 "$daemon_pid" 2>/dev/null; then
                die "helperd (pid $daemon_pid) did not answer within 10 seconds and is still running (stop it with: kill $daemon_pid); see $log, and try: helperctl doctor"
            fi
            die "helperd exited at start; see $log, and try: helperctl doctor"
        fi
        info "helperd is running (pid $daemon_pid)"
        ;;
    *)
        "$helperctl" status >&2 || true
        die "'helperctl status' failed with exit code $status_rc (3 would mean no daemon); run: helperctl doctor"
        ;;
esac

echo
"$helperctl" status || die "'helperctl status' failed after the daemon started; run: helperctl doctor"
echo

# --- 7. what next ---------------------------------------------------------------------------------
store="$("$helperctl" status --json 2>/dev/null |
    "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin).get("store") or "")' 2>/dev/null)" || store=""

if [[ "$is_root" -eq 1 && -n "${SUDO_USER:-}" ]]; then
    warn "this daemon belongs to root; each user runs their own: as $SUDO_USER, run helperd (or this script) without sudo"
fi
if [[ "$systemd_user" -eq 0 ]]; then
    echo "No systemd user manager runs here: no unit was installed. After a reboot, the keyring plugin,"
    echo "the shim and git-credential-helperd start helperd on demand (HELPERD_AUTOSTART=0 turns that off);"
    echo "helperctl never starts one: running this script again does (docs/install.md)."
fi
echo "Next steps:"
if [[ "$store" == "keyring" ]]; then
    echo "  helperd keeps secrets in your OS keyring: no store to create."
else
    echo "  helperctl init                        # create the encrypted file store (asks for a passphrase)"
fi
echo "  helperctl set NAME --url URL --username USER   # add a repository's credentials (asks for the password)"
echo "  helperctl set NAME --url URL --token           # or an API token"
echo "  helperctl list"
echo "  git config --global credential.helper helperd   # git (and pip/uv/Poetry git deps) ask helperd (docs/git.md)"
