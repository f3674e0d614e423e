"""What tells one model's runs apart on the leaderboard, and which of them a table shows.

A row stands for (benchmark, manifest hash, gate and its options, model, prompt, answer options, seed, answer mode);
``options_hash`` covers the answer options and the endpoint, so other options or another server make
another row, never a replacement. Among a key's runs, those failing at most `FAILED_SHARE_LIMIT` of
their calls come first, then the newest (`preference`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from harness.run.redact import redact_value

#: Hex digits of the options hash shown and recorded.
HASH_CHARS = 8
#: A run failing more than this share of its calls never replaces one that does not.
FAILED_SHARE_LIMIT = 0.05
#: Error kinds (outcomes) of a call that produced no answer.
CALL_ERRORS = ("backend_error", "timeout")


def options_hash(options: dict[str, Any]) -> str:
    """The short hash of answer options as run.json records them."""
    text = json.dumps(options, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


#: Endpoint entries that say which files answered, not which model: left out of the options hash so that a
#: re-saved or copied checkpoint keeps its leaderboard row (the response cache still keys on them).
VOLATILE_ENDPOINT_ENTRIES = frozenset({"files"})


def answer_identity(classifier: Any) -> dict[str, Any]:
    """``answer_options`` (redacted) and their ``options_hash`` (with the endpoint: another server, another row)."""
    options = json.loads(json.dumps(redact_value(classifier.answer_options()), default=str))
    endpoint = {k: v for k, v in classifier.endpoint().items() if k not in VOLATILE_ENDPOINT_ENTRIES}
    material = options if not endpoint else {**options, "endpoint": json.loads(json.dumps(endpoint, default=str))}
    return {"answer_options": options, "options_hash": options_hash(material)}


def options_label(run: dict[str, Any], model: str) -> str:
    """The seed, the answer options the run set for ``model``, and their hash: how a table tells its rows apart."""
    provenance = (run.get("provenance") or {}).get("classifiers") or {}
    identity = provenance.get(model) or {}
    answer_options = identity.get("answer_options") or {}
    given = ((run.get("config") or {}).get("model_options") or {}).get(model) or {}
    chosen = ", ".join(f"{name}={json.dumps(value, default=str)}" for name, value in sorted(given.items())
                       if name in answer_options)
    config = run.get("config") or {}
    strict = ", strict answers" if config.get("answers") == "strict" else ""
    label = f"seed {config.get('seed', 0)}" + strict + (f", {chosen}" if chosen else "")
    return label + (f" ({identity['options_hash']})" if identity.get("options_hash") else "")


def gate_label(config: dict[str, Any]) -> str:
    """The gate and the options the run set for it: another coreset or threshold flags other images, so it is
    another row (and shows which), never a replacement of this one."""
    given = config.get("gate_options") or {}
    chosen = ", ".join(f"{name}={json.dumps(value, default=str)}" for name, value in sorted(given.items()))
    return f"{config['gate']} ({chosen})" if chosen else config["gate"]


def failed_calls(outcomes: dict[str, int]) -> int:
    """Calls that produced no answer, from a model's outcome counts."""
    return sum(int(outcomes.get(kind, 0)) for kind in CALL_ERRORS)


def failed_share(failed: int, calls: int | None) -> float:
    """Failed calls over calls; 0 when no call was made (every image passed by the gate, or imported)."""
    return failed / calls if calls else 0.0


def preference(row: Any) -> tuple[bool, str]:
    """Sort key of a key's rows, best last: within the failure limit first, then the newest."""
    return (row.failed_share <= FAILED_SHARE_LIMIT, row.created_at)
