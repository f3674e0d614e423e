"""The OpenAI Chat Completions side of the loopback server: its path, replies and error bodies."""

from __future__ import annotations

import time

from harness.testing.loopback_script import Answer, Request, estimate_prompt_tokens

#: Where an OpenAI client posts (its base URL ends in ``/v1``).
OPENAI_PATH = "/v1/chat/completions"

#: Fields whose absence the real API answers with a 400.
REQUIRED_FIELDS = ("model", "messages")

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_denied",
                404: "not_found", 429: "rate_limit_exceeded"}


def openai_reply(request: Request, answer: Answer) -> dict:
    """A ``chat.completion`` body carrying ``answer`` (a refusal in ``message.refusal``, content null)."""
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


def openai_error(status: int, message: str) -> dict:
    """OpenAI's error object for ``status`` (also the body of a 404 for an unknown path)."""
    kind = _ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
