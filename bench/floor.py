"""The floor: a Python asyncio line server on a Unix socket answering a canned ``get`` response.

    python bench/floor.py SOCKET RESPONSE_FILE [--json]

It is what helperd would cost if it did nothing but frame lines with the same asyncio streams:
every request line is answered with the bytes of RESPONSE_FILE (helperd's own response to the
same request, captured in the same run, so both send the same number of bytes). With
``--json`` it also parses each request and renders the response from a parsed copy, with the
request's id: the cost the issue's 1.3x aim stands for. Prints ``ready`` once it listens and
stops on SIGTERM or SIGINT. Stdlib only, so it starts in any Python.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path


async def _serve(path: str, response: bytes, parse: bool) -> None:
    canned = json.loads(response)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if parse:
                    request = json.loads(line)
                    body = {**canned, "id": request.get("id")}
                    writer.write(json.dumps(body, separators=(",", ":")).encode() + b"\n")
                else:
                    writer.write(response)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_unix_server(answer, path=path, limit=65_536)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str]) -> int:
    """Serve until signalled."""
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--json"):
        print(__doc__, file=sys.stderr)
        return 2
    response = Path(argv[1]).read_bytes()
    asyncio.run(_serve(argv[0], response, parse=len(argv) == 3))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
