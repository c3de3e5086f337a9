"""Hostile input: property tests on the protocol models, and a raw-socket fuzzer on a real daemon.

The properties: `parse_request` only ever raises `RequestError`; whatever it refuses can be
answered on the wire (the error line renders); whatever it accepts can be echoed back (the
result line renders); no secret-carrying field leaks into an error message.

The fuzzer sends CI: a few thousand, full: 100,000 hostile frames in bursts, on pipelined
connections, and checks after each burst that a well-behaved client is served the right
answer. Every complete line of at most 65,536 bytes gets exactly one answer line, never
``internal``; the daemon logs no traceback; its memory and file descriptors stay bounded.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import socket
import string
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helperd_client import Client
from helperd_client.wire import MAX_LINE, OPS
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from helperd.core import protocol
from helperd.core.protocol import RequestError, parse_request, render_error, render_ok
from tests.hardening import Figures, Spawn, fd_count, rss_kib, sized, timeout_for

pytestmark = pytest.mark.timeout(timeout_for(120, 3600))

NEEDLE = "NdL7-fuzz-secret"
SECRET_FIELDS = ("password", "passphrase", "old", "new")
REFUSALS = {"bad_request", "unsupported_version", "unknown_op"}
ANSWER_CODES = REFUSALS | {"too_large", "not_found", "locked", "bad_passphrase", "forbidden"}
ANSWER_CODES |= {"store_unavailable"}

HYPOTHESIS = settings(
    max_examples=sized(400, 5_000),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MODELS: dict[str, type[BaseModel]] = {
    model.model_fields["op"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        protocol.HelloRequest,
        protocol.StatusRequest,
        protocol.GetRequest,
        protocol.SetRequest,
        protocol.DeleteRequest,
        protocol.ListRequest,
        protocol.InitRequest,
        protocol.LockRequest,
        protocol.UnlockRequest,
        protocol.PasswdRequest,
        protocol.MigrateRequest,
    )
}


def wire_answer(line: bytes) -> bytes:
    """What the daemon's protocol layer would answer for ``line`` (short of the store).

    Fails the test when `parse_request` raises anything but `RequestError`, when an error
    cannot be rendered, when an accepted request cannot be echoed back on the wire, or when
    a refusal quotes a secret.
    """
    try:
        request_id, request = parse_request(line)
    except RequestError as exc:
        refused = exc
    else:
        assert request.op in OPS
        # Whatever is accepted may come back in an answer (a stored name, password or the id).
        return render_ok(request_id, request)
    assert refused.error.code in REFUSALS
    assert NEEDLE not in refused.error.message
    assert NEEDLE not in str(refused)
    return render_error(refused.request_id, refused.error)


# --- strategies ---------------------------------------------------------------------------

lone_surrogates = st.characters(categories=["Cs"])
texts = st.text(max_size=40) | st.text(lone_surrogates, min_size=1, max_size=3)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**300), max_value=10**300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A request of a real op whose fields are present, missing or of any type.

    Secret fields, when they hold text, hold the needle, so that a leak shows.
    """
    op = draw(st.sampled_from(sorted(MODELS)) | texts)
    fields = (
        [f for f in MODELS[op].model_fields if f not in ("v", "id", "op")] if op in MODELS else []
    )
    message: dict[str, Any] = {}
    if draw(st.booleans()):
        message["v"] = draw(st.sampled_from([1, 1, 1, 2, 0, "1", 1.0, True, None]) | json_values)
    if draw(st.booleans()):
        message["id"] = draw(st.integers() | texts | json_values)
    message["op"] = op
    for name in fields:
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        if name in SECRET_FIELDS:
            message[name] = draw(
                st.sampled_from([NEEDLE, [NEEDLE], {"x": NEEDLE}, NEEDLE * 600, 7, None])
            )
        elif choice == 1:
            message[name] = draw(texts)
        else:
            message[name] = draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        message[draw(texts)] = draw(json_values)  # an unknown field
    return json.dumps(message, allow_nan=True).encode() + b"\n"


class TestParseRequest:
    """`parse_request` under Hypothesis: only `RequestError`, and every answer renders."""

    @HYPOTHESIS
    @given(st.binary(max_size=4_096))
    @example(b"")
    @example(b"\x00" * 64)
    @example(b"\xff\xfe\xfd")
    @example(b'{"v": 1, "id": 1, "op": "hello"')
    def test_random_bytes(self, line: bytes) -> None:
        """Arbitrary bytes, invalid UTF-8 and NULs included, are refused as `RequestError`."""
        wire_answer(line)

    @HYPOTHESIS
    @given(json_values)
    def test_any_json_document(self, value: object) -> None:
        """Any JSON document (huge numbers, NaN, nesting, lone surrogates) is handled."""
        wire_answer(json.dumps(value, allow_nan=True).encode())

    @HYPOTHESIS
    @given(envelopes())
    @example(b'{"v":1,"id":"\\ud800","op":"hello"}\n')
    @example(b'{"v":1,"id":1,"op":"set","name":"a","username":"u","password":"p\\udc80"}\n')
    def test_every_op_every_field_any_type(self, line: bytes) -> None:
        """Every field of every op, missing or of a wrong type, never breaks the parser."""
        wire_answer(line)

    @pytest.mark.parametrize(
        "line",
        [
            pytest.param(b"[" * 100_000, id="100k-brackets"),
            pytest.param(b"[" * 60_000 + b"]" * 5, id="60k-brackets"),
            pytest.param(b'{"a":' * 12_000, id="nested-objects"),
            pytest.param(b'{"v":1,"id":1,"op":"get","name":' + b"[" * 5_000 + b"\n", id="deep-arg"),
            pytest.param(b'{"v":1,"id":' + b"9" * 5_000 + b',"op":"hello"}', id="5000-digits"),
            pytest.param(b'{"v":1e999,"id":1,"op":"hello"}', id="inf-version"),
            pytest.param(b'{"v":NaN,"id":NaN,"op":"hello"}', id="nan"),
            pytest.param(b'{"v":-0,"id":-0,"op":"hello"}', id="minus-zero"),
            pytest.param(b'{"v":1,"id":1,"op":"hello","v":2}', id="duplicate-version"),
            pytest.param(b'{"v":1,"id":1,"op":"get","op":"set"}', id="duplicate-op"),
            pytest.param(b'{"v":1,"id":1,"id":[1],"op":"hello"}', id="duplicate-id"),
            pytest.param(b'{"v":1,"id":1,"op":"he\x00llo"}', id="raw-nul"),
            pytest.param(b'{"v":1,"id":"\\u0000","op":"hello"}', id="escaped-nul-id"),
            pytest.param(b'{"v":1,"id":"\\ud800","op":"hello"}', id="surrogate-id"),
            pytest.param(b'{"v":1,"id":"\\ud800","op":"nope"}', id="surrogate-id-refused"),
            pytest.param(
                b'{"v":1,"id":"' + b"i" * (MAX_LINE - 40) + b'","op":"nope"}', id="longest-id"
            ),
            pytest.param(
                b'{"v":1,"id":1,"op":"set","name":"' + b"n" * 60_000 + b'","password":"p"}',
                id="60k-name",
            ),
        ],
    )
    def test_classic_hostile_lines(self, line: bytes) -> None:
        """Deep nesting, huge numbers, NaN, duplicate keys, NULs, lone surrogates, long ids."""
        wire_answer(line)


# --- the raw-socket fuzzer ------------------------------------------------------------------

POOL = [f"fz{i}" for i in range(4)]
KNOWN = ("fuzz-known", "the right answer")


class Frames:
    """Hostile frames, drawn from one seeded generator (the seed is reported)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.kinds: list[Callable[[], bytes]] = [
            self.random_bytes,
            self.invalid_utf8,
            self.nul_bytes,
            self.truncated,
            self.nested,
            self.huge_number,
            self.huge_string,
            self.wrong_type,
            self.missing_key,
            self.duplicate_key,
            self.surrogate,
            self.valid,
        ]

    def next(self) -> tuple[str, bytes]:
        """One frame: its kind and its bytes (newline included; it may hold more lines)."""
        while True:
            kind = self.rng.choice(self.kinds)
            frame = kind()
            # Over-long lines have their own connections (the daemon closes them).
            if max(map(len, frame.split(b"\n"))) <= MAX_LINE:
                return kind.__name__, frame

    def request(self) -> dict[str, Any]:
        rng = self.rng
        op = rng.choice(["hello", "status", "get", "set", "delete", "list", "lock", "init"])
        message: dict[str, Any] = {"v": 1, "id": rng.randrange(1 << 31), "op": op}
        name = rng.choice(POOL)
        if op == "get":
            message[rng.choice(["name", "service"])] = name
        elif op == "set":
            message |= {"name": name, "username": "u", "password": self.text(1, 30)}
            if rng.random() < 0.3:
                message["urls"] = [f"https://{name}.example.test/simple/"]
        elif op == "delete":
            message["name"] = name
        elif op == "init":
            message["passphrase"] = self.text(1, 20)
        return message

    def encode(self, message: dict[str, Any]) -> bytes:
        return json.dumps(message, allow_nan=True).encode() + b"\n"

    def text(self, low: int, high: int) -> str:
        alphabet = string.printable + "Ωé漢\u2028"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(low, high)))

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.randint(0, 300)) + b"\n"

    def invalid_utf8(self) -> bytes:
        line = self.encode(self.request())
        cut = self.rng.randrange(len(line) - 1)
        bad = self.rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
        return line[:cut] + bad + line[cut:]

    def nul_bytes(self) -> bytes:
        message = self.request()
        message["id"] = "\x00" * self.rng.randint(1, 8)
        line = self.encode(message)
        if self.rng.random() < 0.5:
            cut = self.rng.randrange(len(line) - 1)
            line = line[:cut] + b"\x00" + line[cut:]
        return line

    def truncated(self) -> bytes:
        line = self.encode(self.request())
        return line[: self.rng.randrange(len(line) - 1)] + b"\n"

    def nested(self) -> bytes:
        depth = self.rng.choice([10, 200, 990, 1_000, 1_100, 5_000, 30_000, 64_000])
        opener, closer = self.rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        body = opener * (depth // len(opener))
        if self.rng.random() < 0.5:
            body += b"1" + closer * (depth // len(opener))
        if self.rng.random() < 0.5 and len(body) < MAX_LINE - 60:
            return b'{"v":1,"id":1,"op":"get","name":' + body + b"}\n"
        return body[:MAX_LINE] + b"\n"

    def huge_number(self) -> bytes:
        number = self.rng.choice(
            [b"9" * self.rng.randint(300, 6_000), b"1e999", b"-1e999", b"NaN", b"-Infinity", b"-0"]
        )
        where = self.rng.choice([b"v", b"id", b"name", b"expires_at", b"urls"])
        return b'{"v":1,"id":1,"op":"set","password":"p",' + b'"' + where + b'":' + number + b"}\n"

    def huge_string(self) -> bytes:
        message = self.request()
        field = self.rng.choice(["id", "name", "username", "password", "op", "url", "service"])
        message[field] = "s" * self.rng.randint(4_000, MAX_LINE - 200)
        return self.encode(message)

    def wrong_type(self) -> bytes:
        op = self.rng.choice(sorted(MODELS))
        message = {"v": 1, "id": 1, "op": op}
        fields = [f for f in MODELS[op].model_fields if f not in ("v", "op")]
        values: list[Any] = [None, True, 0, -1, 1.5, "", [], {}, [1], {"a": 1}, "x" * 5_000]
        for name in self.rng.sample(fields, k=min(len(fields), self.rng.randint(1, 3))):
            message[name] = self.rng.choice(values)
        return self.encode(message)

    def missing_key(self) -> bytes:
        message = self.request()
        del message[self.rng.choice(list(message))]
        return self.encode(message)

    def duplicate_key(self) -> bytes:
        message = self.request()
        key = self.rng.choice(list(message))
        line = self.encode(message)
        extra = json.dumps({key: self.rng.choice([None, 2, "x", [], {"k": 1}])})[1:-1]
        return line[:1] + extra.encode() + b"," + line[1:]

    def surrogate(self) -> bytes:
        message = self.request()
        field = self.rng.choice(["id", "name", "username", "password", "service"])
        message[field] = "s\ud800" if self.rng.random() < 0.5 else "\udfff"
        line = self.encode(message)  # ensure_ascii: the surrogate travels as an escape
        if message["op"] == "set" and field == "password":
            # Ask for what was just stored: it must come back, or be refused at set.
            line += self.encode({"v": 1, "id": 2, "op": "get", "name": message["name"]})
        return line

    def valid(self) -> bytes:
        return self.encode(self.request())


class Session:
    """A pipelined raw connection: send many lines, read as many answers, never deadlock."""

    def __init__(self, path: Path, timeout: float = 20.0) -> None:
        self.path = path
        self.timeout = timeout

    def exchange(self, payload: bytes, answers: int) -> list[bytes]:
        """Send ``payload`` while reading; return the answer lines (fewer if closed early)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self.path))
            sock.setblocking(False)
            return self._pump(sock, payload, answers)
        finally:
            sock.close()

    def _pump(self, sock: socket.socket, payload: bytes, answers: int) -> list[bytes]:
        view, received = memoryview(payload), b""
        deadline = time.monotonic() + self.timeout
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while received.count(b"\n") < answers:
                left = deadline - time.monotonic()
                assert left > 0, f"no complete answer within {self.timeout} s"
                if not view:
                    selector.modify(sock, selectors.EVENT_READ)
                for _, events in selector.select(left):
                    if events & selectors.EVENT_WRITE and view:
                        try:
                            view = view[sock.send(view[:65_536]) :]
                        except (BrokenPipeError, ConnectionResetError):
                            view = view[len(view) :]
                    if events & selectors.EVENT_READ:
                        try:
                            chunk = sock.recv(1 << 20)
                        except ConnectionResetError:
                            chunk = b""
                        if not chunk:
                            return received.splitlines()
                        received += chunk
        return received.splitlines()


def check_answers(lines: list[bytes], codes: Counter[str]) -> None:
    """Count each answer by its code (``ok``, an error code, or ``malformed``)."""
    for raw in lines:
        try:
            answer = json.loads(raw)
            code = "ok" if answer["ok"] is True else answer["error"]["code"]
            assert 1 == answer["v"]
        except (ValueError, KeyError, TypeError, AssertionError):
            code = "malformed"
        codes[code] += 1


def test_raw_socket_fuzz(spawn: Spawn, figures: Figures) -> None:
    """Hostile frames in bursts: one answer per line, no internal error, a good client served.

    Also in every burst: a line of exactly 65,536 bytes (answered), one of 65,537 bytes
    (``too_large``, then closed), a request sent one byte at a time, and connections that
    send half a line and fall silent (closed by the daemon at its read timeout).
    """
    total = sized(4_000, 100_000)
    seed = int(os.environ.get("HELPERD_FUZZ_SEED", random.randrange(1 << 32)))
    figures("fuzz seed (HELPERD_FUZZ_SEED)", seed)
    rng = random.Random(seed)
    frames = Frames(rng)
    daemon = spawn(config="read_timeout = 2.0")
    pid = daemon.process.pid
    good = Client(daemon.socket, timeout=5.0)
    good.set(KNOWN[0], KNOWN[1], username="u")
    good.close()
    session = Session(daemon.socket)
    codes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    sent = 0
    fd_start = fd_count(pid)
    rss_start: int | None = None
    silent: list[socket.socket] = []
    started = time.monotonic()
    try:
        burst = 0
        while sent < total:
            batch: list[bytes] = []
            lines = 0
            while len(batch) < 100 and sent + len(batch) < total:
                kind, frame = frames.next()
                kinds[kind] += 1
                batch.append(frame)
                lines += frame.count(b"\n")
            answers = session.exchange(b"".join(batch), lines)
            codes["unanswered (connection dropped)"] += lines - len(answers)
            check_answers(answers, codes)
            sent += len(batch)
            sent += limit_lines(session, codes)
            sent += one_byte_at_a_time(daemon.socket, codes)
            silent.append(half_line(daemon.socket))
            sent += 1
            burst += 1
            with Client(daemon.socket, timeout=5.0) as client:
                assert KNOWN[1] == client.get(name=KNOWN[0]).password
            assert daemon.process.poll() is None, "the daemon died"
            if rss_start is None and sent >= total // 10:
                rss_start = rss_kib(pid)  # after warm-up: buffers and caches have grown
        elapsed = time.monotonic() - started
        time.sleep(2.0 + 1.0)  # the read timeout, and some slack
        closed = sum(1 for sock in silent if is_closed(sock))
        assert len(silent) == closed, "a silent half-line connection outlived the read timeout"
    finally:
        for sock in silent:
            sock.close()
    rss_end = rss_kib(pid)
    time.sleep(0.5)
    log = daemon.log.read_text(errors="replace")
    tracebacks = log.count("Traceback")
    figures("hostile frames sent", sent)
    figures("fuzz rate", sent / elapsed, "frames/s")
    figures("answers by code", json.dumps(dict(sorted(codes.items()))))
    figures("RSS after warm-up", (rss_start or rss_end) / 1024, "MiB")
    figures("RSS growth", (rss_end - (rss_start or rss_end)) / 1024, "MiB")
    figures("open fds before/after", f"{fd_start}/{fd_count(pid)}")
    figures("tracebacks in the daemon log", tracebacks)
    unexpected = {c: n for c, n in codes.items() if n and c not in ANSWER_CODES | {"ok"}}
    assert {} == unexpected, "lines went unanswered, or were answered internal or malformed"
    assert 0 == tracebacks, log[max(0, log.find("Traceback") - 300) :][:3000]
    assert sent >= total
    assert rss_end - (rss_start or rss_end) < 32 * 1024, "memory grew by more than 32 MiB"
    assert fd_count(pid) <= fd_start + 2, "file descriptors leaked"


def limit_lines(session: Session, codes: Counter[str]) -> int:
    """A line of exactly 65,536 bytes is answered; one of 65,537 gets too_large and a close."""
    prefix, suffix = b'{"v":1,"id":1,"op":"hello","pad":"', b'"}'
    for size, expected in ((MAX_LINE, "bad_request"), (MAX_LINE + 1, "too_large")):
        line = prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix
        assert size == len(line)
        answers = session.exchange(line + b"\n" + b'{"v":1,"id":2,"op":"hello"}\n', 2)
        check_answers(answers, codes)
        assert expected == json.loads(answers[0])["error"]["code"]
        assert (2 if expected == "bad_request" else 1) == len(answers)
    return 2


def one_byte_at_a_time(path: Path, codes: Counter[str]) -> int:
    """A request dribbled one byte per send is answered once its newline arrives."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        for byte in b'{"v":1,"id":"dribble","op":"status"}\n':
            sock.send(bytes([byte]))
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(65_536)
            assert chunk, "closed without answering"
            answer += chunk
    check_answers([answer], codes)
    assert "dribble" == json.loads(answer)["id"]
    return 1


def half_line(path: Path) -> socket.socket:
    """A connection that sends half a request and then nothing."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    sock.sendall(b'{"v":1,"id":1,"op":"get","na')
    return sock


def is_closed(sock: socket.socket) -> bool:
    """Whether the daemon has closed ``sock`` (it sent nothing else on it)."""
    sock.setblocking(False)
    try:
        return b"" == sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
