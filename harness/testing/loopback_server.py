"""The loopback server itself: a threaded HTTP server on 127.0.0.1 that asks a responder what to answer.

`LoopbackServer` reads each request into a `Request`, answers a structurally
invalid one with the 400 the real API would send, asks its responder for an
`Outcome` otherwise, and writes that outcome in the request's wire format
(`harness.testing.loopback_openai`, `harness.testing.loopback_anthropic`):
an answer, a JSON body, an HTTP error, a hang, a reset or a malformed body.
The public home of the whole server is `harness.testing.loopback`.
"""

from __future__ import annotations

import http
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping

from harness.testing.loopback_batches import BatchBook
from harness.testing.loopback_anthropic import ANTHROPIC_PATH, REQUIRED_FIELDS as ANTHROPIC_REQUIRED
from harness.testing.loopback_anthropic import anthropic_error, anthropic_reply, removed_parameter
from harness.testing.loopback_openai import OPENAI_PATH, REQUIRED_FIELDS as OPENAI_REQUIRED
from harness.testing.loopback_openai import openai_error, openai_reply
from harness.testing.loopback_script import Answer, Fault, Outcome, Protocol, Request, Responder, always

_KNOWN_STATUSES = {int(code) for code in http.HTTPStatus}

_PROTOCOLS = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic"}


def _error_body(protocol: Protocol | None, status: int, message: str) -> dict:
    """The protocol's error object; an unknown path gets OpenAI's."""
    return anthropic_error(status, message) if protocol == "anthropic" else openai_error(status, message)


def _invalid_request(request: Request) -> str | None:
    """The message of the 400 a real server would send for a structurally invalid request."""
    body = request.body
    if not isinstance(body, dict):
        return "the request body is not a JSON object"
    required = ANTHROPIC_REQUIRED if request.protocol == "anthropic" else OPENAI_REQUIRED
    missing = [name for name in required if name not in body]
    if missing:
        return f"missing required field(s): {', '.join(missing)}"
    if not isinstance(body["messages"], list) or not body["messages"]:
        return "messages must be a non-empty list"
    if request.protocol == "anthropic":
        return removed_parameter(request)
    return None


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
    resets), as the fixed service time of a throughput benchmark. ``concurrency``
    bounds the requests served at once (None: no bound); the others wait their
    turn, as on a GPU server that holds only so many requests at a time, so one
    server cannot absorb any load a client sends. The server stops by itself after ``max_requests`` requests (None: no limit) or
    ``max_seconds`` seconds. A responder that raises is answered with 500 and
    the exception is kept in `errors` (assert it is empty).
    """

    def __init__(self, responder: Responder | Outcome = "ok", *, latency_s: float = 0.0, port: int = 0,
                 max_requests: int | None = None, max_seconds: float = 300.0, concurrency: int | None = None):
        if max_requests is not None and max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._serving = threading.BoundedSemaphore(concurrency) if concurrency is not None else None
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
        #: The batch APIs' files and batches (`harness.testing.loopback_batches`), answered by the same responder.
        self.batches = BatchBook(self._outcome)

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
        if self.batches.handles(path):
            if self._stopping.is_set():
                self._abort(handler)
                return
            headers = {k.lower(): v for k, v in handler.headers.items()}
            status, reply, content_type = self.batches.handle(handler.command, path, headers, raw)
            self._send(handler, status, reply, content_type, {})
            return
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
        if not self._take_a_serving_slot():
            request.outcome = "closed"
            self._abort(handler)
            return
        try:
            self._respond(handler, request)
        finally:
            if self._serving is not None:
                self._serving.release()
            request.finished_at = time.monotonic()
            if self.max_requests is not None and index + 1 >= self.max_requests:
                self._expired.set()

    def _take_a_serving_slot(self) -> bool:
        """Wait for one of ``concurrency`` serving slots; False when the server stops meanwhile."""
        if self._serving is None:
            return True
        while not self._serving.acquire(timeout=0.05):  # woken now and then to notice a stop
            if self._stopping.is_set():
                return False
        return True

    def _respond(self, handler: _Handler, request: Request) -> None:
        if request.protocol is None or handler.command != "POST":
            request.outcome = "status:404"
            self._send_json(handler, 404, _error_body(None, 404, f"loopback: no route for {handler.command} {request.path}"))
            return
        outcome = self._outcome(request)
        if isinstance(outcome, Fault) and outcome.kind == "invalid":
            request.outcome = "status:400" if outcome.status == 400 else "responder_error"
            self._send_json(handler, outcome.status, _error_body(request.protocol, outcome.status, outcome.message))
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
            build = anthropic_reply if request.protocol == "anthropic" else openai_reply
            self._send_json(handler, 200, build(request, answer), answer.headers)

    def _outcome(self, request: Request) -> Outcome:
        """The responder's outcome for a well-formed request; a ``Fault`` of kind ``invalid`` for a request the
        real API refuses (400) or a responder that raised (500, the exception kept in `errors`)."""
        invalid = _invalid_request(request)
        if invalid:
            return Fault("invalid", status=400, message=invalid)  # type: ignore[arg-type]
        try:
            outcome = self.responder(request)
            if callable(outcome) and not isinstance(outcome, (Fault, Answer)):  # e.g. Fault.unauthorized
                outcome = outcome(request)
            return outcome
        except Exception as error:  # a bug in the test's script: visible in .errors, answered with 500
            self.errors.append(error)
            return Fault("invalid", status=500, message=f"loopback responder failed: {error!r}")  # type: ignore[arg-type]

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
