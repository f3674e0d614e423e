"""A response cache in SQLite, so re-running a finished run costs nothing.

Keyed by the classifier plugin, the model id, the options that change an
answer, and the request hash (prompt text, template and image contents). Only
deterministic requests are cached by default (temperature 0 or no sampling):
replaying a sampled answer would hide the model's variance.

A cached record keeps the latency, tokens and cost of the call that produced
it and says ``cached: true``, so a leaderboard still compares models by what
they cost, not by how warm the cache was.

The same file holds the prompt-key memo (`harness.prompt_memo`): which request
hashes a sample's prompts had, keyed by the identity of every input file, so a
re-run can find its cached answers without decoding images again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from harness.types import Response

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    model TEXT,
    response TEXT NOT NULL,
    latency_s REAL,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS prepared_samples (
    fingerprint TEXT PRIMARY KEY,
    context TEXT NOT NULL,
    prepared TEXT NOT NULL,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS prepared_samples_context ON prepared_samples (context)
"""


def cache_key(plugin: str, model_id: str | None, options: dict[str, Any], request_hash: str) -> str:
    """A stable key for one request to one model with the given answer-affecting options."""
    material = json.dumps(
        {"plugin": plugin, "model": model_id, "options": options, "request": request_hash},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def cache_keyer(plugin: str, model_id: str | None, options: dict[str, Any]):
    """`cache_key` with the first three arguments fixed: request hash -> key, without re-encoding the options."""
    # "request" sorts last, so the JSON of the whole is this prefix, the request hash, and "}".
    head = json.dumps({"plugin": plugin, "model": model_id, "options": options}, sort_keys=True, default=str)
    prefix = head[:-1] + (', "request": ' if head != "{}" else '"request": ')

    def key(request_hash: str) -> str:
        return hashlib.sha256((prefix + json.dumps(request_hash) + "}").encode()).hexdigest()

    return key


class ResponseCache:
    """A thread-safe SQLite store of successful responses; failures are never cached."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A cache: a commit need not wait for the disk (WAL stays consistent; power loss may drop the last entries).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[Response, float | None] | None:
        with self._lock:
            row = self._db.execute("SELECT response, latency_s FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        data = json.loads(row[0])
        return Response(**data), row[1]

    def put(self, key: str, plugin: str, model_id: str | None, response: Response, latency_s: float | None) -> None:
        payload = json.dumps(
            {
                "text": response.text,
                "tokens_in": response.tokens_in,
                "tokens_out": response.tokens_out,
                "cost_usd": response.cost_usd,
                "option_scores": response.option_scores,
                "refused": response.refused,
                "structured": response.structured,
            }
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, plugin, model, response, latency_s) VALUES (?, ?, ?, ?, ?)",
                (key, plugin, model_id, payload, latency_s),
            )

    def contains(self, key: str) -> bool:
        """Whether a response is stored under ``key`` (does not count as a hit or a miss)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def prepared_in(self, context: str) -> dict[str, Any]:
        """Every memo entry stored under ``context`` (harness.prompt_memo): fingerprint -> parsed JSON."""
        with self._lock:
            rows = self._db.execute(
                "SELECT fingerprint, prepared FROM prepared_samples WHERE context = ?", (context,)
            ).fetchall()
        return {fingerprint: json.loads(prepared) for fingerprint, prepared in rows}

    def put_prepared(self, fingerprint: str, context: str, prepared: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO prepared_samples (fingerprint, context, prepared) VALUES (?, ?, ?)",
                (fingerprint, context, json.dumps(prepared)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
