"""helperctl's upstream commands and the upstream parts of status, list and set, against a
fake client (the real daemon and engine: tests/integration/test_upstream_daemon.py)."""

from __future__ import annotations

import json
from typing import Any

from helperd_client import Status

from tests.unit.test_cli import UNLOCKED, FakeClient, run

ADDRESS = "https://bao.example.test:8200"
STATUS = {
    "address": ADDRESS,
    "state": "due",
    "records": 2,
    "last_refresh": "2026-11-25T18:05:00+00:00",
    "result": "engine_down",
    "message": f"upstream secret engine {ADDRESS} refused the connection: is it running?",
    "skipped": [],
    "warnings": [],
    "refreshed_at": "2026-11-25T18:00:00+00:00",
    "cache_age_seconds": 300.0,
}


class UpstreamClient(FakeClient):
    """The fake client, with an upstream that answers ``answers``."""

    def __init__(self, **answers: dict[str, Any]) -> None:
        super().__init__(Status(**{**UNLOCKED.__dict__, "upstream": STATUS}))
        self.answers = answers

    def upstream(self, action: str) -> dict[str, Any]:
        self._call("upstream", action=action)
        return self.answers[action]


def test_status_shows_the_upstream_line_and_json() -> None:
    """status prints one upstream line (state, records, result, age, error); --json has it all."""
    client = UpstreamClient()

    text = run(client, "status").stdout
    data = json.loads(run(client, "status", "--json").stdout)

    assert (
        f"upstream:     {ADDRESS}: due, 2 record(s), last refresh: engine_down, cache age 300 s"
        f" ({STATUS['message']})"
    ) in text
    assert STATUS == data["upstream"]


def test_upstream_show_text_and_json() -> None:
    """upstream show prints the settings that are set and the state; --json the answer."""
    answer = {
        "configured": True,
        "settings": {"address": ADDRESS, "ca_file": None},
        "status": STATUS,
    }
    client = UpstreamClient(show=answer)

    text = run(client, "upstream", "show")
    shown = run(client, "upstream", "show", "--json")

    assert 0 == text.exit_code
    assert f"address:            {ADDRESS}" == text.stdout.splitlines()[0]
    assert "ca_file" not in text.stdout
    assert answer == json.loads(shown.stdout)


def test_upstream_show_without_upstream() -> None:
    """Without [upstream], show says so on stderr and exits 0."""
    result = run(UpstreamClient(show={"configured": False}), "upstream", "show")

    assert (0, "") == (result.exit_code, result.stdout)
    assert "no upstream secret engine is configured" in result.stderr


def test_upstream_test_failure_exits_1_with_the_message() -> None:
    """A failed test exits 1 with the engine's message, which says what to fix."""
    tested = {"ok": False, "reason": "tls", "message": "TLS failed: set [upstream] ca_file"}
    client = UpstreamClient(test={"configured": True, "test": tested})

    result = run(client, "upstream", "test")

    assert (1, "helperctl: TLS failed: set [upstream] ca_file\n") == (
        result.exit_code,
        result.stderr,
    )


def test_set_upstream_asks_the_daemon_to_write_upstream() -> None:
    """set --upstream passes upstream=True; a plain set passes False."""
    sent: list[dict[str, Any]] = []

    class Recording(UpstreamClient):
        def set(self, name: str, password: str, **kwargs: Any) -> Any:
            sent.append(dict(kwargs))
            kwargs.pop("upstream", None)
            return super().set(name, password, **kwargs)

    client = Recording()
    run(client, "set", "corp", "-u", "ci", "--password-stdin", "--upstream", stdin="pw")
    run(client, "set", "corp", "-u", "ci", "--password-stdin", stdin="pw")

    assert [True, False] == [s.get("upstream") for s in sent]
