"""A response cache in SQLite, so re-running a finished run costs nothing.

Keyed by the classifier plugin, the model id, the options that change an
answer, and the request hash (prompt text, template and image contents). Only
deterministic requests are cached by default (temperature 0 or no sampling):
replaying a sampled answer would hide the model's variance.

A cached record keeps the latency, tokens and cost of the call that produced
it and says ``cached: true``, so a leaderboard still compares models by what
they cost, not by how warm the cache was.
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
)
"""


def cache_key(plugin: str, model_id: str | None, options: dict[str, Any], request_hash: str) -> str:
    """A stable key for one request to one model with the given answer-affecting options."""
    material = json.dumps(
        {"plugin": plugin, "model": model_id, "options": options, "request": request_hash},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


class ResponseCache:
    """A thread-safe SQLite store of successful responses; failures are never cached."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
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
            }
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, plugin, model, response, latency_s) VALUES (?, ?, ?, ?, ?)",
                (key, plugin, model_id, payload, latency_s),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
