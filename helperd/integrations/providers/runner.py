"""Run one provider command safely and read the token it prints.

No shell: the argv list is executed as is. The command gets a clean environment (PATH, HOME,
the locale and zone, the cloud CLIs' ``AWS_*``, ``CLOUDSDK_*``, ``AZURE_*`` and the names its
spec passes through), /dev/null as stdin (a CLI that prompts fails instead of hanging), and a
session of its own, so that at the bound (`RUN_TIMEOUT`) the whole process group is killed,
children included. Stdout is capped (`MAX_STDOUT`: more is an error, not a token); stderr is
kept up to `MAX_STDERR` and scrubbed of anything token-like before it reaches a message.
The token never goes into argv, a log or an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from helperd.core.provider import ProviderSpec
from helperd.core.provider_output import (
    Minted,
    ProviderError,
    parse_output,
    printed_secrets,
    scrub,
)

__all__ = [
    "MAX_STDERR",
    "MAX_STDOUT",
    "PASSED_PREFIXES",
    "RUN_TIMEOUT",
    "clean_env",
    "run_provider",
]

RUN_TIMEOUT = 60.0
"""Longest a provider run may take, in seconds; then its process group is killed."""

MAX_STDOUT = 64 * 1024
"""Most bytes of stdout read; a command that prints more has failed."""

MAX_STDERR = 64 * 1024
"""Most bytes of stderr kept for the error message; the rest is read and dropped."""

PASSED_PREFIXES = ("AWS_", "CLOUDSDK_", "AZURE_")
"""Variables the cloud CLIs read their profile, region, config folder and credentials from."""

_PASSED_NAMES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
_KILL_WAIT = 5.0  # seconds to reap a killed group: SIGKILL cannot be caught
_CHUNK = 8192


class _TooLarge(Exception):
    pass


def clean_env(spec: ProviderSpec, base: Mapping[str, str]) -> dict[str, str]:
    """The environment a provider runs with: the few names it needs, taken from ``base``.

    Args:
        spec: the provider; its ``env`` names are passed through too.
        base: the environment to take them from (the daemon's).
    """
    env = {
        name: value
        for name, value in base.items()
        if name in _PASSED_NAMES or name.startswith(PASSED_PREFIXES) or name in spec.env
    }
    env.setdefault("PATH", os.defpath)
    return env


async def run_provider(
    spec: ProviderSpec,
    *,
    base_env: Mapping[str, str] | None = None,
    timeout: float = RUN_TIMEOUT,
    max_stdout: int = MAX_STDOUT,
) -> Minted:
    """Run the provider once and return the token it printed and its expiry.

    Args:
        spec: what to run and how to read it.
        base_env: the environment the clean one is taken from; None is the daemon's.
        timeout: the bound of the whole run, in seconds.
        max_stdout: the most bytes of stdout accepted.

    Raises:
        ProviderError: the command could not start, timed out, exited with an error, printed
            too much, or printed no valid token. The message holds no token.
    """
    program = Path(spec.argv[0]).name
    env = clean_env(spec, os.environ if base_env is None else base_env)
    try:
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=env.get("HOME") or "/",
            start_new_session=True,  # its own process group: killed whole at the bound
            close_fds=True,
        )
    except OSError as exc:
        raise ProviderError(f"cannot run {program}: {exc.strerror or type(exc).__name__}") from None
    assert process.stdout is not None
    assert process.stderr is not None
    out = asyncio.ensure_future(_read(process.stdout, max_stdout, overflow=True))
    err = asyncio.ensure_future(_read(process.stderr, MAX_STDERR, overflow=False))
    clean = False
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await out, await err
            code = await process.wait()
        clean = True
    except TimeoutError:
        raise ProviderError(f"{program} did not finish within {timeout:g} s: stopped") from None
    except _TooLarge:
        message = f"{program} printed more than {max_stdout} bytes: not a token"
        raise ProviderError(message) from None
    finally:
        if not clean:  # timed out, too large, or cancelled: nothing of it may run on
            await _stop(process, out, err)
    ended = datetime.now(UTC)
    if code != 0:
        status = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        said = _said(stderr, stdout)
        raise ProviderError(f"{program} {status}" + (f": {said}" if said else ""))
    try:
        return parse_output(spec, stdout, ended)
    except ProviderError as exc:
        said = _said(stderr, stdout)  # only for a failure: it reads stdout again
        raise ProviderError(f"{program}: {exc.message}" + (f" ({said})" if said else "")) from None


async def _read(stream: asyncio.StreamReader, limit: int, *, overflow: bool) -> bytes:
    """Up to ``limit`` bytes until EOF; past it raise (stdout) or drop the rest (stderr)."""
    kept = bytearray()
    while chunk := await stream.read(_CHUNK):
        room = limit - len(kept)
        if len(chunk) > room and overflow:
            raise _TooLarge
        kept += chunk[: max(room, 0)]
    return bytes(kept)


def _said(stderr: bytes, stdout: bytes) -> str:
    """Stderr as one scrubbed line: without anything of stdout that could be the token."""
    return scrub(stderr.decode("utf-8", "replace"), printed_secrets(stdout))


async def _stop(process: asyncio.subprocess.Process, *readers: asyncio.Future[bytes]) -> None:
    """Kill the process group, stop reading, and close the pipes."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), _KILL_WAIT)
    # The readers stopped before EOF, so the pipes would stay open: close them here.
    transport = getattr(process, "_transport", None)
    if isinstance(transport, asyncio.SubprocessTransport):
        transport.close()
