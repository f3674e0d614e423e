"""Loopback HTTP servers that speak hosted-model wire protocols, for tests and benchmarks.

A `LoopbackServer` listens on 127.0.0.1 only (an ephemeral port by default),
in a background thread, and answers two protocols at once:

- OpenAI Chat Completions: ``POST /v1/chat/completions`` (point an OpenAI
  client at ``server.openai_base_url``, which ends in ``/v1``);
- Anthropic Messages: ``POST /v1/messages`` (point an Anthropic client at
  ``server.anthropic_base_url``).
- both batch APIs (`harness.testing.loopback_batches`, ``server.batches``):
  OpenAI's Files + Batch API and Anthropic's Message Batches, each request of a
  batch answered by the same responder once the batch ends (after
  ``server.batches.polls_to_complete`` retrievals), with expired
  (``Fault.expired()``), errored and cancelled entries; ``server.batches.submissions``
  counts what was submitted.

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
share the client's GIL: ``python -m harness.testing.loopback --latency-s 0.2`` prints
its URL on the first line of stdout and serves a fixed answer until it is
terminated (see `main`).

It imports no model SDK: it is the other end of the wire. The parts live in
`loopback_script` (what a test writes), `loopback_openai` and
`loopback_anthropic` (the wire formats) and `loopback_server` (the server);
this module gathers them and is their public home (``harness.loopback`` is
kept for compatibility).
"""

from __future__ import annotations

from harness.testing.loopback_anthropic import ANTHROPIC_LEGACY_VERSION, ANTHROPIC_PATH
from harness.testing.loopback_openai import OPENAI_PATH
from harness.testing.loopback_script import (
    TOKENS_PER_IMAGE,
    Answer,
    Fault,
    FaultKind,
    Outcome,
    Protocol,
    Request,
    Responder,
    always,
    estimate_prompt_tokens,
    sequence,
)
from harness.testing.loopback_server import LoopbackServer

__all__ = [
    "ANTHROPIC_LEGACY_VERSION", "ANTHROPIC_PATH", "Answer", "Fault", "FaultKind", "LoopbackServer", "OPENAI_PATH",
    "Outcome", "Protocol", "Request", "Responder", "TOKENS_PER_IMAGE", "always", "estimate_prompt_tokens", "main",
    "sequence",
]


def main(argv: list[str] | None = None) -> int:
    """Serve fixed answers from a separate process (``python -m harness.testing.loopback``).

    Prints the base URL on the first line of stdout, then serves until it is
    killed or its lifetime ends. A server in its own process does not compete
    with the client for the GIL, which is what a throughput benchmark needs.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m harness.testing.loopback", description=main.__doc__.splitlines()[0])
    parser.add_argument("--answer", default="ok", help="the answer text of every request (default: ok)")
    parser.add_argument("--latency-s", type=float, default=0.0, help="fixed service time per request")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="requests served at once; the others wait (default: no bound)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: an ephemeral one)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop after this long (default: 600)")
    parser.add_argument("--max-requests", type=int, default=None, help="stop after this many requests")
    args = parser.parse_args(argv)
    server = LoopbackServer(args.answer, latency_s=args.latency_s, port=args.port,
                            max_requests=args.max_requests, max_seconds=args.max_seconds,
                            concurrency=args.concurrency).start()
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
