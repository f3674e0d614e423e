"""The Anthropic Messages side of the loopback server: its path, replies, error bodies and version rule."""

from __future__ import annotations

import json

from harness.testing.loopback_script import Answer, Request, estimate_prompt_tokens, forced_tool

#: Where an Anthropic client posts (the SDK adds it to the base URL).
ANTHROPIC_PATH = "/v1/messages"

#: The last Anthropic API version that accepts temperature, top_p and top_k; later ones answer 400.
ANTHROPIC_LEGACY_VERSION = "2023-06-01"

#: Fields whose absence the real API answers with a 400.
REQUIRED_FIELDS = ("model", "messages", "max_tokens")

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                529: "overloaded_error"}


def anthropic_reply(request: Request, answer: Answer) -> dict:
    """A ``message`` body carrying ``answer``.

    When the request forces a tool and the answer text is a JSON object, the
    answer is that tool's input (a ``tool_use`` block), as a real model's would be.
    """
    tokens_in = answer.tokens_in if answer.tokens_in is not None else estimate_prompt_tokens(request)
    text = answer.refusal if answer.refusal is not None else answer.text
    tokens_out = answer.tokens_out if answer.tokens_out is not None else max(1, len(text.split()))
    stop_reason = answer.finish_reason or ("refusal" if answer.refusal is not None else "end_turn")
    content: list[dict] = [{"type": "text", "text": text}]
    tool = forced_tool(request.body) if isinstance(request.body, dict) else None
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


def anthropic_error(status: int, message: str) -> dict:
    """Anthropic's error object for ``status``."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def removed_parameter(request: Request) -> str | None:
    """The 400 message for a sampling parameter that the request's API version no longer accepts, or None."""
    if request.headers.get("anthropic-version", "") > ANTHROPIC_LEGACY_VERSION:
        # Like the real API: versions after 2023-06-01 removed the sampling parameters.
        removed = [name for name in ("temperature", "top_p", "top_k") if name in request.body]
        if removed:
            return f"{removed[0]}: Extra inputs are not permitted"
    return None
