"""``helperctl doctor``'s checks of the tools helperd serves: Poetry, the keyring CLI, pip, the
shim, and the plaintext secrets Poetry's auth.toml may still hold.

Pure functions of the gathered `helperd.ctl.doctor_facts.Facts`, as the daemon checks in
`helperd.ctl.doctor` are; that module lists them all in `helperd.ctl.doctor.CHECKS`.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from helperd.ctl.doctor_facts import Facts, KeyringProbe
from helperd.ctl.doctor_finding import Finding

__all__ = [
    "check_auth_toml",
    "check_keyring_cli",
    "check_keyring_probe",
    "check_pip",
    "check_poetry",
    "check_shim",
]


def _plugin_fix(probe: KeyringProbe) -> str:
    if probe.tool == "poetry":
        return (
            'poetry self add helperd-client (from a checkout: poetry self add "$(pwd)/client"),'
            f" or {shlex.quote(str(probe.python))} -m pip install helperd-client"
        )
    return (
        f"{shlex.quote(str(probe.python))} -m pip install helperd-client, into the environment"
        f" of {probe.program}"
    )


def check_keyring_probe(  # noqa: PLR0911 - one return per verdict
    probe: KeyringProbe, facts: Facts, name: str
) -> Finding:
    """Which backend ``probe``'s Python picks, and whether helperd's plugin is there."""
    what = "Poetry" if probe.tool == "poetry" else f"the keyring CLI ({probe.program})"
    if probe.state == "absent":
        return Finding(name, "warn", f"no {probe.tool} on PATH: not checked")
    if probe.state == "no-python":
        return Finding(name, "warn", f"cannot tell which Python runs {probe.program}: not checked")
    if probe.state == "timeout":
        return Finding(
            name,
            "fail",
            f"{what} hangs choosing a keyring backend ({probe.error}); {probe.python}",
            "a backend waits on a keyring that does not answer: install helperd's plugin"
            " there, or set PYTHON_KEYRING_BACKEND",
        )
    if not probe.plugin:
        picked = f"; it picks {probe.backend}" if probe.backend else ""
        return Finding(
            name,
            "fail",
            f"helperd's keyring plugin is not installed in {what}'s Python"
            f" ({probe.python}){picked}",
            _plugin_fix(probe),
        )
    if probe.state == "error":
        return Finding(
            name, "fail", f"{what}: {probe.error}", f"run {probe.python} -c 'import keyring'"
        )
    if probe.picks_helperd:
        return Finding(name, "ok", f"{what} picks {probe.backend} ({probe.python})")
    if facts.connection.state != "ok":
        return Finding(
            name,
            "warn",
            f"helperd's plugin is installed in {what}, which picks {probe.backend} for now:"
            " the plugin steps aside while helperd is not running",
            "start helperd (see the daemon check)",
        )
    return Finding(
        name,
        "fail",
        f"{what} picks {probe.backend}, not helperd, although helperd runs",
        "unset PYTHON_KEYRING_BACKEND, or remove default-keyring from keyringrc.cfg"
        " (`keyring diagnose` shows where it is)",
    )


# `poetry config pypi-token.NAME` refuses to prompt: the token would go into argv and history.
_POETRY_ARGV_NOTE = (
    "store an API token with `helperctl set NAME --token --password-stdin`"
    " (`poetry config pypi-token.NAME` takes it only as an argument)"
)


def check_poetry(facts: Facts) -> Finding:
    """The keyring backend Poetry's own interpreter picks; when it is helperd, how to store a
    token without putting it in argv."""
    found = check_keyring_probe(facts.poetry, facts, "poetry-keyring")
    if found.status == "ok":
        return replace(found, message=f"{found.message}; {_POETRY_ARGV_NOTE}")
    return found


def check_keyring_cli(facts: Facts) -> Finding:
    """The keyring backend of the ``keyring`` CLI on PATH (uv's and pip's subprocess provider)."""
    return check_keyring_probe(facts.keyring_cli, facts, "keyring-cli")


def check_pip(facts: Facts) -> Finding:
    """The ``keyring`` CLI that ``pip --keyring-provider subprocess`` would run."""
    name, pip = "pip-keyring", facts.pip
    if pip.pip is None:
        return Finding(name, "warn", "no pip on PATH: not checked")
    if pip.chosen is None:
        skipped = (
            f" ({pip.first} is in pip's own environment, which pip skips)" if pip.first else ""
        )
        return Finding(
            name,
            "warn",
            f"pip --keyring-provider subprocess would find no keyring CLI{skipped}",
            f"put a keyring CLI from another environment on PATH: {_keyring_cli_fix(facts)}",
        )
    if pip.probe is None:
        return Finding(
            name, "ok", f"pip ({pip.pip}) would run {pip.chosen}, the keyring CLI on PATH"
        )
    found = check_keyring_probe(pip.probe, facts, name)
    said = f"pip ({pip.pip}) skips {pip.first}, in its own environment, and would run {pip.chosen}"
    return Finding(name, found.status, f"{said}: {found.message}", found.fix)


def _keyring_cli_fix(facts: Facts) -> str:
    """How to install a ``keyring`` CLI with helperd's plugin: pipx only where pipx is."""
    if facts.pipx:
        return "pipx install keyring && pipx inject keyring ./client (from a checkout of helperd)"
    return (
        "python3 -m venv ~/.local/share/keyring-cli && ~/.local/share/keyring-cli/bin/pip install"
        " keyring ./client (from a checkout of helperd) && ln -s"
        " ~/.local/share/keyring-cli/bin/keyring ~/.local/bin/"
    )


def check_shim(facts: Facts) -> Finding:
    """Whether helperd's keyring shim is first on PATH, and which real keyring stands behind it."""
    name, found = "keyring-shim", facts.shim
    if found.first is None:
        return Finding(
            name, "ok", "no keyring shim first on PATH (optional: helperctl install-shim)"
        )
    if found.backing is None:
        return Finding(
            name,
            "warn",
            f"{found.first} is helperd's shim, with no real keyring behind it on PATH:"
            " set, del and lookups while helperd is down fail",
            f"install a keyring CLI further along PATH: {_keyring_cli_fix(facts)}",
        )
    return Finding(
        name, "ok", f"{found.first} is helperd's shim; it hands other calls to {found.backing}"
    )


def check_auth_toml(facts: Facts) -> Finding:
    """Secrets left in plaintext in Poetry's auth.toml or in a backup beside it: a count,
    never a value."""
    finding = _auth_toml_itself(facts)
    auth = facts.auth
    if auth is None or not auth.backups:
        return finding
    copies = "; ".join(
        f"{path} holds {held} plaintext secret{'s' if held > 1 else ''}"
        if held
        else f"{path} may hold plaintext secrets (not TOML)"
        for path, held in auth.backups
    )
    removal = "rm -- " + " ".join(shlex.quote(str(path)) for path, _ in auth.backups)
    if finding.status == "ok":
        return Finding(
            finding.name,
            "warn",
            f"{copies} (a backup beside auth.toml); {finding.message}",
            f"`{removal}` once the secrets are in helperd (`helperctl list`)",
        )
    fix = f"{finding.fix}; then `{removal}`" if finding.fix else f"`{removal}`"
    return Finding(finding.name, finding.status, f"{finding.message}; {copies}", fix)


def _auth_toml_itself(facts: Facts) -> Finding:
    name, auth = "poetry-auth-toml", facts.auth
    if auth is None or auth.state == "absent":
        where = f" at {auth.path}" if auth else ""
        return Finding(name, "ok", f"no auth.toml{where}: no plaintext secret")
    if auth.state == "error":
        return Finding(name, "warn", f"cannot read {auth.path}: {auth.error}")
    left = f" ({auth.left} more entries that import-poetry would leave)" if auth.left else ""
    if auth.secrets:
        plural = "secret" if auth.secrets == 1 else "secrets"
        return Finding(
            name,
            "warn",
            f"{auth.path} holds {auth.secrets} plaintext {plural}{left}",
            "helperctl import-poetry (moves them into helperd and rewrites the file without them)",
        )
    if auth.left:
        entries = "entry" if auth.left == 1 else "entries"
        return Finding(
            name,
            "warn",
            f"{auth.path} holds {auth.left} {entries} with a password or token that"
            " import-poetry cannot move (one may be a plaintext secret)",
            "helperctl import-poetry --dry-run says why; fix or remove them by hand",
        )
    return Finding(name, "ok", f"{auth.path} holds no plaintext secret")
