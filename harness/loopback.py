"""Loopback HTTP servers that speak hosted-model wire protocols, for tests and benchmarks.

A `LoopbackServer` listens on 127.0.0.1 only (an ephemeral port by default),
in a background thread, and answers two protocols at once:

- OpenAI Chat Completions: ``POST /v1/chat/completions`` (point an OpenAI
  client at ``server.openai_base_url``, which ends in ``/v1``);
- Anthropic Messages: ``POST /v1/messages`` (point an Anthropic client at
  ``server.anthropic_base_url``).

What it answers is scripted by a *responder*: a callable that receives the
parsed `Request` and returns one of

- ``str``: the model's answer text, wrapped into a valid protocol response
  with a ``usage`` block (an `Answer` gives control over tokens, refusals and
  finish reasons);
- ``dict``: a complete JSON body, sent as is with status 200;
- a callable: called with the `Request`, and its result used (so
  ``sequence(Fault.unauthorized, "ok")`` works);
- a `Fault`: an HTTP error (status, body, headers, e.g. 429 with Retry-After,
  500, 529, 401), a hang (no answer until the client gives up), a reset
  connection, or a malformed 200 body.

When an Anthropic request forces a tool (``tool_choice`` of type ``tool``) and
the answer text is a JSON object, the answer is returned as that tool's input
(a ``tool_use`` block), as a real model would. An OpenAI structured-output
request simply gets the JSON text as the message content.

Every request is recorded (`LoopbackServer.requests`: path, headers, JSON body,
arrival time, outcome), so tests can assert what a client sent. Headers are
kept in memory only, never logged: they carry API keys.

The server bounds its own life: it stops by itself after ``max_requests``
requests or ``max_seconds`` seconds, whichever comes first, so a forgotten
server never outlives a test session. Use it as a context manager::

    with LoopbackServer(sequence(Fault.rate_limited(0.2), "scratch"), latency_s=0.2) as server:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
        ...
    assert [r.outcome for r in server.requests] == ["status:429", "answer"]

For a throughput benchmark, run it in its own process so that it does not
share the client's GIL: ``python -m harness.loopback --latency-s 0.2`` prints
its URL on the first line of stdout and serves a fixed answer until it is
terminated (see `main`).

It imports no model SDK: it is the other end of the wire.
"""

from __future__ import annotations

import http
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Literal, Mapping, Union

_KNOWN_STATUSES = {int(code) for code in http.HTTPStatus}

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
_PROTOCOLS = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic"}

#: The last Anthropic API version that accepts temperature, top_p and top_k; later ones answer 400.
ANTHROPIC_LEGACY_VERSION = "2023-06-01"

#: Prompt tokens counted per image when a responder does not say (OpenAI's low-detail cost).
TOKENS_PER_IMAGE = 85

Protocol = Literal["openai", "anthropic"]


# ----------------------------------------------------------------------------- scripting


@dataclass(frozen=True)
class Answer:
    """A successful reply with explicit details; a bare ``str`` is ``Answer(text)``.

    ``tokens_in`` / ``tokens_out`` default to an estimate (words of the request's
    text plus `TOKENS_PER_IMAGE` per image; words of the answer, at least 1).
    ``refusal`` makes it a refusal: OpenAI's ``message.refusal`` (content null),
    Anthropic's ``stop_reason: "refusal"`` with the refusal as text.
    ``finish_reason`` overrides OpenAI's ``finish_reason`` / Anthropic's ``stop_reason``.
    ``model`` is the model name the reply reports (a server may serve another model
    than the one asked for); None: the request's.
    """

    text: str = ""
    tokens_in: int | None = None
    tokens_out: int | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None


FaultKind = Literal["status", "hang", "reset", "malformed"]


@dataclass(frozen=True)
class Fault:
    """A scripted failure. Build one with the class methods below."""

    kind: FaultKind
    status: int = 500
    #: JSON-able body (dict or list), or str/bytes sent verbatim; None: the protocol's error body.
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    #: hang: how long to hold the request before closing the connection without an answer.
    seconds: float = 0.0
    content_type: str = "application/json"

    @classmethod
    def error(cls, status: int, message: str = "", *, body: Any = None,
              headers: Mapping[str, str] | None = None, retry_after: float | str | None = None) -> Fault:
        """An HTTP error status. ``body`` None builds the protocol's own error object around ``message``."""
        headers = dict(headers or {})
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}" if isinstance(retry_after, (int, float)) else retry_after
        return cls("status", status=status, body=body, headers=headers, message=message or f"loopback error {status}")

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None, message: str = "Rate limit reached") -> Fault:
        """429 Too Many Requests, optionally with a Retry-After header (seconds or an HTTP date)."""
        return cls.error(429, message, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500, message: str = "The server had an error") -> Fault:
        return cls.error(status, message)

    @classmethod
    def overloaded(cls, message: str = "Overloaded") -> Fault:
        """529, Anthropic's "overloaded" status."""
        return cls.error(529, message)

    @classmethod
    def unauthorized(cls, request: Request | None = None) -> Fault:
        """401. Given the request, the message echoes the key it carried, so a test can check redaction."""
        key = request.api_key if request is not None else None
        return cls.error(401, f"Incorrect API key provided: {key}" if key else "Missing API key")

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        """Hold the request without answering for ``seconds`` (longer than the client's timeout), then close."""
        return cls("hang", seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection abruptly (TCP RST) without any response."""
        return cls("reset")

    @classmethod
    def malformed(cls, body: bytes | str = b'{"id": "truncated", "choices": [{"message": ',
                  content_type: str = "application/json") -> Fault:
        """Status 200 with a body that is not valid JSON (by default a truncated JSON object)."""
        return cls("malformed", status=200, body=body, content_type=content_type)


@dataclass
class Request:
    """One request as the server received it; what a responder decides on."""

    index: int  # 0-based arrival order across the server's life
    protocol: Protocol | None  # None: an unknown path
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when the body was not JSON
    received_at: float  # time.monotonic()
    outcome: str = ""  # "answer", "body", "status:429", "hang", "reset", "malformed", "refused:...", ...
    finished_at: float | None = None

    @property
    def api_key(self) -> str | None:
        """The key the client sent (``Authorization: Bearer`` or ``x-api-key``)."""
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return self.headers.get("x-api-key")

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def schema_enum(self) -> list[str] | None:
        """The enum of the ``class`` property of the request's output schema, if it asked for one.

        OpenAI: ``response_format.json_schema.schema``; Anthropic: the forced tool's ``input_schema``.
        """
        body = self.body if isinstance(self.body, dict) else {}
        schema = None
        if self.protocol == "openai":
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        elif self.protocol == "anthropic":
            forced = _forced_tool(body)
            for tool in body.get("tools") or []:
                if tool.get("name") == forced:
                    schema = tool.get("input_schema")
        try:
            return list(schema["properties"]["class"]["enum"])
        except (TypeError, KeyError):
            return None

    def texts(self) -> list[str]:
        """Every text the request carries (system prompt and message text parts), in order."""
        body = self.body if isinstance(self.body, dict) else {}
        found: list[str] = []
        system = body.get("system")
        if isinstance(system, str):
            found.append(system)
        elif isinstance(system, list):
            found += [b.get("text", "") for b in system if isinstance(b, dict) and b.get("type") == "text"]
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, str):
                found.append(content)
            elif isinstance(content, list):
                found += [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        return found

    def image_count(self) -> int:
        count = 0
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list):
                count += sum(1 for b in content if isinstance(b, dict) and b.get("type") in ("image", "image_url"))
        return count


Outcome = Union[str, Answer, dict, Fault, Callable[["Request"], Any]]
Responder = Callable[[Request], Outcome]


def always(outcome: Outcome) -> Responder:
    """A responder giving the same outcome to every request."""
    return lambda request: outcome


def sequence(*outcomes: Outcome, then: Outcome | None = None) -> Responder:
    """A responder giving ``outcomes`` in arrival order, then ``then`` (default: the last one) forever.

    Thread-safe: concurrent requests each take the next outcome exactly once.
    """
    if not outcomes:
        raise ValueError("sequence() needs at least one outcome")
    remaining = list(outcomes)
    final = then if then is not None else outcomes[-1]
    lock = threading.Lock()

    def respond(request: Request) -> Outcome:
        with lock:
            return remaining.pop(0) if remaining else final

    return respond


# ----------------------------------------------------------------------------- protocol bodies


def _forced_tool(body: dict) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        return choice.get("name")
    return None


def estimate_prompt_tokens(request: Request) -> int:
    """Whitespace-separated words of all request text, plus `TOKENS_PER_IMAGE` per image."""
    return sum(len(t.split()) for t in request.texts()) + TOKENS_PER_IMAGE * request.image_count()


def _openai_body(request: Request, answer: Answer) -> dict:
    tokens_in = answer.tokens_in if answer.tokens_in is not None else estimate_prompt_tokens(request)
    refused = answer.refusal is not None
    text = None if refused else answer.text
    tokens_out = answer.tokens_out if answer.tokens_out is not None else max(1, len((answer.refusal or answer.text).split()))
    return {
        "id": f"chatcmpl-loopback-{request.index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model or request.model or "loopback",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": answer.refusal},
            "logprobs": None,
            "finish_reason": answer.finish_reason or "stop",
        }],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
    }


def _anthropic_body(request: Request, answer: Answer) -> dict:
    tokens_in = answer.tokens_in if answer.tokens_in is not None else estimate_prompt_tokens(request)
    text = answer.refusal if answer.refusal is not None else answer.text
    tokens_out = answer.tokens_out if answer.tokens_out is not None else max(1, len(text.split()))
    stop_reason = answer.finish_reason or ("refusal" if answer.refusal is not None else "end_turn")
    content: list[dict] = [{"type": "text", "text": text}]
    tool = _forced_tool(request.body) if isinstance(request.body, dict) else None
    if tool and answer.refusal is None:
        try:
            tool_input = json.loads(answer.text)
        except ValueError:
            tool_input = None
        if isinstance(tool_input, dict):
            content = [{"type": "tool_use", "id": f"toolu_loopback_{request.index}", "name": tool, "input": tool_input}]
            stop_reason = answer.finish_reason or "tool_use"
    return {
        "id": f"msg_loopback_{request.index}",
        "type": "message",
        "role": "assistant",
        "model": answer.model or request.model or "loopback",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }


_OPENAI_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_denied",
                       404: "not_found", 429: "rate_limit_exceeded"}
_ANTHROPIC_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                          529: "overloaded_error"}


def _error_body(protocol: Protocol | None, status: int, message: str) -> dict:
    if protocol == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _invalid_request(request: Request) -> str | None:
    """The message of the 400 a real server would send for a structurally invalid request."""
    body = request.body
    if not isinstance(body, dict):
        return "the request body is not a JSON object"
    required = ("model", "messages", "max_tokens") if request.protocol == "anthropic" else ("model", "messages")
    missing = [name for name in required if name not in body]
    if missing:
        return f"missing required field(s): {', '.join(missing)}"
    if not isinstance(body["messages"], list) or not body["messages"]:
        return "messages must be a non-empty list"
    if request.protocol == "anthropic" and request.headers.get("anthropic-version", "") > ANTHROPIC_LEGACY_VERSION:
        # Like the real API: versions after 2023-06-01 removed the sampling parameters.
        removed = [name for name in ("temperature", "top_p", "top_k") if name in body]
        if removed:
            return f"{removed[0]}: Extra inputs are not permitted"
    return None


# ----------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections, as against a real API
    disable_nagle_algorithm = True  # TCP_NODELAY: no 40 ms delayed-ACK stalls on small writes
    server_version = "harness-loopback/1"
    timeout = 60  # an idle keep-alive connection is closed after this many seconds

    def setup(self) -> None:
        super().setup()
        self.server.owner._opened(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._closed(self.connection)  # type: ignore[attr-defined]

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.owner._handle_one(self)  # type: ignore[attr-defined]

    do_GET = do_POST  # unknown paths and methods get a 404 from _handle_one

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines are recorded in memory, never printed."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 64+ simultaneous connects must not overflow the listen backlog
    owner: LoopbackServer


class LoopbackServer:
    """A scripted OpenAI/Anthropic-compatible HTTP server on 127.0.0.1 (see the module docstring).

    ``latency_s`` is added before every answer and error (not before hangs and
    resets), as the fixed service time of a throughput benchmark. The server
    stops by itself after ``max_requests`` requests (None: no limit) or
    ``max_seconds`` seconds. A responder that raises is answered with 500 and
    the exception is kept in `errors` (assert it is empty).
    """

    def __init__(self, responder: Responder | Outcome = "ok", *, latency_s: float = 0.0, port: int = 0,
                 max_requests: int | None = None, max_seconds: float = 300.0):
        if max_requests is not None and max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.responder: Responder = responder if callable(responder) else always(responder)
        self.latency_s = latency_s
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.requests: list[Request] = []
        self.errors: list[BaseException] = []
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # wakes hangs and latency sleeps at shutdown
        self._expired = threading.Event()  # max_requests reached: the watchdog stops the server
        self._connections: set[socket.socket] = set()
        #: The most connections open at once so far (requests in flight together).
        self.peak_connections = 0
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        #: Set once the server has stopped (by `stop`, or by itself at the end of its lifetime).
        self.stopped = threading.Event()

    # -- lifecycle

    def start(self) -> LoopbackServer:
        if self._server is not None:
            raise RuntimeError("loopback server already started")
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.owner = self
        self._server = server
        serve = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                 name="loopback-serve", daemon=True)
        watchdog = threading.Thread(target=self._watchdog, name="loopback-watchdog", daemon=True)
        self._threads = [serve, watchdog]
        serve.start()
        watchdog.start()
        return self

    def _watchdog(self) -> None:
        self._expired.wait(self.max_seconds)  # set by max_requests or by stop(); else max_seconds passed
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake hung requests, close open connections. Idempotent; safe from any thread."""
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            server = self._server
        if server is None:
            return
        if not first:  # another thread (the watchdog, say) is stopping it
            self.stopped.wait(timeout)
            return
        self._expired.set()  # lets the watchdog exit
        server.shutdown()  # returns once serve_forever has left its loop
        server.server_close()
        with self._lock:  # taken after shutdown(): no connection is accepted any more
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections would otherwise hold their threads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        with self._lock:
            pending = list(self._connections)
        while pending and time.monotonic() < deadline:
            time.sleep(0.01)
            with self._lock:
                pending = list(self._connections)
        self.stopped.set()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- addresses

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("loopback server not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The base URL an OpenAI client takes: ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The base URL an Anthropic client takes (the SDK adds ``/v1/messages``)."""
        return self.url

    # -- inspection

    def requests_to(self, protocol: Protocol) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.protocol == protocol]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    # -- handling

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
            self.peak_connections = max(self.peak_connections, len(self._connections))

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _handle_one(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = handler.path.split("?", 1)[0]
        with self._lock:
            index = len(self.requests)
            request = Request(
                index=index, protocol=_PROTOCOLS.get(path), method=handler.command, path=path,  # type: ignore[arg-type]
                headers={k.lower(): v for k, v in handler.headers.items()}, body=body, received_at=time.monotonic(),
            )
            self.requests.append(request)
        if self._stopping.is_set() or (self.max_requests is not None and index >= self.max_requests):
            request.outcome = "closed"
            self._abort(handler)
            return
        try:
            self._respond(handler, request)
        finally:
            request.finished_at = time.monotonic()
            if self.max_requests is not None and index + 1 >= self.max_requests:
                self._expired.set()

    def _respond(self, handler: _Handler, request: Request) -> None:
        if request.protocol is None or handler.command != "POST":
            request.outcome = "status:404"
            self._send_json(handler, 404, _error_body(None, 404, f"loopback: no route for {handler.command} {request.path}"))
            return
        invalid = _invalid_request(request)
        if invalid:
            request.outcome = "status:400"
            self._send_json(handler, 400, _error_body(request.protocol, 400, invalid))
            return
        try:
            outcome = self.responder(request)
            if callable(outcome) and not isinstance(outcome, (Fault, Answer)):  # e.g. Fault.unauthorized
                outcome = outcome(request)
        except Exception as error:  # a bug in the test's script: visible in .errors, answered with 500
            self.errors.append(error)
            request.outcome = "responder_error"
            self._send_json(handler, 500, _error_body(request.protocol, 500, f"loopback responder failed: {error!r}"))
            return

        if isinstance(outcome, Fault) and outcome.kind == "hang":
            request.outcome = "hang"
            self._stopping.wait(outcome.seconds)
            self._abort(handler, rst=False)
            return
        if isinstance(outcome, Fault) and outcome.kind == "reset":
            request.outcome = "reset"
            self._abort(handler)
            return
        if self.latency_s > 0 and self._stopping.wait(self.latency_s):
            request.outcome = "closed"
            self._abort(handler)
            return

        if isinstance(outcome, Fault) and outcome.kind == "malformed":
            request.outcome = "malformed"
            raw = outcome.body.encode() if isinstance(outcome.body, str) else bytes(outcome.body)
            self._send(handler, 200, raw, outcome.content_type, outcome.headers)
        elif isinstance(outcome, Fault):
            request.outcome = f"status:{outcome.status}"
            body = outcome.body if outcome.body is not None else _error_body(request.protocol, outcome.status, outcome.message)
            raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self._send(handler, outcome.status, raw, outcome.content_type, outcome.headers)
        elif isinstance(outcome, dict):
            request.outcome = "body"
            self._send_json(handler, 200, outcome)
        else:
            answer = outcome if isinstance(outcome, Answer) else Answer(str(outcome))
            request.outcome = "answer" if answer.refusal is None else "refused"
            build = _anthropic_body if request.protocol == "anthropic" else _openai_body
            self._send_json(handler, 200, build(request, answer), answer.headers)

    def _send_json(self, handler: _Handler, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(handler, status, json.dumps(body).encode(), "application/json", headers or {})

    @staticmethod
    def _send(handler: _Handler, status: int, raw: bytes, content_type: str, headers: Mapping[str, str]) -> None:
        reason = {529: "Overloaded"}.get(status) or (http.HTTPStatus(status).phrase if status in _KNOWN_STATUSES else "")
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {handler.server_version}",
            f"Date: {handler.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(raw)}",
            "x-request-id: req_loopback",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        try:
            # Status, headers and body in one write: separate small writes stall on delayed ACKs.
            handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + raw)
        except OSError:  # the client went away (it timed out, or we are stopping)
            handler.close_connection = True

    @staticmethod
    def _abort(handler: _Handler, rst: bool = True) -> None:
        """End the connection without a response; with ``rst``, abruptly (TCP reset, not FIN)."""
        handler.close_connection = True
        if rst:
            try:
                # SO_LINGER on with a zero timeout: close() sends RST and drops unsent data.
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        try:
            handler.connection.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """Serve fixed answers from a separate process (``python -m harness.loopback``).

    Prints the base URL on the first line of stdout, then serves until it is
    killed or its lifetime ends. A server in its own process does not compete
    with the client for the GIL, which is what a throughput benchmark needs.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m harness.loopback", description=main.__doc__.splitlines()[0])
    parser.add_argument("--answer", default="ok", help="the answer text of every request (default: ok)")
    parser.add_argument("--latency-s", type=float, default=0.0, help="fixed service time per request")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: an ephemeral one)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop after this long (default: 600)")
    parser.add_argument("--max-requests", type=int, default=None, help="stop after this many requests")
    args = parser.parse_args(argv)
    server = LoopbackServer(args.answer, latency_s=args.latency_s, port=args.port,
                            max_requests=args.max_requests, max_seconds=args.max_seconds).start()
    signal.signal(signal.SIGTERM, lambda *_: server._expired.set())
    print(server.url, flush=True)
    try:
        server.stopped.wait()
    except KeyboardInterrupt:
        server.stop()
    print(f"served {server.count} requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
