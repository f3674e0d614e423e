"""A response cache in SQLite, so re-running a finished run costs nothing.

Keyed by plugin, model id, the options that change an answer, the endpoint that answers
(`Classifier.endpoint`) and the request hash; never a secret. Only deterministic requests are cached
(`Classifier.use_cache`): replaying a sampled answer hides its variance. A cached record keeps the
original call's latency, tokens and cost. The file also holds the prompt memo (`harness.run.prompt_memo`).
Files from before the endpoint was keyed (format 0) lose their answers when first opened.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.run import paths
from harness.errors import HarnessError
from harness.types import Response

#: The cache file's name inside `paths.cache_dir` ($HARNESS_CACHE_DIR).
RESPONSES_FILE = "responses.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    model TEXT,
    response TEXT NOT NULL,
    latency_s REAL,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP,
    endpoint TEXT
);
CREATE TABLE IF NOT EXISTS prepared_samples (
    fingerprint TEXT PRIMARY KEY,
    context TEXT NOT NULL,
    prepared TEXT NOT NULL,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS prepared_samples_context ON prepared_samples (context)
"""


#: ``PRAGMA user_version`` of a cache whose keys hold the endpoint; files from before have 0.
CACHE_FORMAT = 1


def default_path() -> Path:
    """Where runs keep the response cache: ``$HARNESS_CACHE_DIR/responses.sqlite`` (see `harness.run.paths`)."""
    return paths.cache_dir() / RESPONSES_FILE


def cache_key(plugin: str, model_id: str | None, options: dict[str, Any], request_hash: str, *,
              endpoint: dict[str, Any]) -> str:
    """A stable key for one request to one model, with the options that change its answer and the endpoint that answers."""
    material = json.dumps(
        {"plugin": plugin, "model": model_id, "options": options, "endpoint": endpoint, "request": request_hash},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def cache_keyer(plugin: str, model_id: str | None, options: dict[str, Any], *, endpoint: dict[str, Any]):
    """`cache_key` with all but the request hash fixed: request hash -> key, without re-encoding the options."""
    # "request" sorts last, so the JSON of the whole is this prefix, the request hash, and "}".
    head = json.dumps({"plugin": plugin, "model": model_id, "options": options, "endpoint": endpoint},
                      sort_keys=True, default=str)
    prefix = head[:-1] + ', "request": '

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
        try:
            self._db.executescript(SCHEMA)
            self._upgrade()
        except BaseException:
            self._db.close()
            raise
        self.hits = 0
        self.misses = 0

    def _upgrade(self) -> None:
        """Bring an older cache file to `CACHE_FORMAT`, once, even with several processes opening it at once."""
        if self._db.execute("PRAGMA user_version").fetchone()[0] == CACHE_FORMAT:
            return  # the usual case: no write lock taken
        with self._transaction():  # one writer at a time: the check and the change are atomic
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > CACHE_FORMAT:
                raise HarnessError(
                    f"the response cache {self.path} was written by a newer harness (cache format {version}; this "
                    f"one reads {CACHE_FORMAT}); upgrade, or point HARNESS_CACHE_DIR elsewhere"
                )
            if version < CACHE_FORMAT:
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
                if "endpoint" not in columns:
                    self._db.execute("ALTER TABLE responses ADD COLUMN endpoint TEXT")
                # Keyed without the endpoint: no key can match them again, and nothing says which server answered.
                self._db.execute("DELETE FROM responses WHERE endpoint IS NULL")
                self._db.execute(f"PRAGMA user_version = {CACHE_FORMAT}")

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE (one writer at a time) ... COMMIT, or ROLLBACK on any error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def get(self, key: str) -> tuple[Response, float | None] | None:
        with self._lock:
            row = self._db.execute("SELECT response, latency_s FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        data = json.loads(row[0])
        return Response(**data), row[1]

    def put(self, key: str, plugin: str, model_id: str | None, response: Response, latency_s: float | None,
            endpoint: dict[str, Any] | None = None) -> None:
        """Store a successful response under ``key``, with the endpoint that answered (`Classifier.endpoint`)."""
        payload = json.dumps(dataclasses.asdict(response))
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, plugin, model, response, latency_s, endpoint) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                # The endpoint column: compact JSON with sorted keys (`harness cache clear` matches it exactly).
                (key, plugin, model_id, payload, latency_s,
                 json.dumps(endpoint or {}, sort_keys=True, separators=(",", ":"), default=str)),
            )

    def contains(self, key: str) -> bool:
        """Whether a response is stored under ``key`` (does not count as a hit or a miss)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def prepared_in(self, context: str) -> dict[str, Any]:
        """Every memo entry stored under ``context`` (harness.run.prompt_memo): fingerprint -> parsed JSON."""
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

    # -- inventory (harness cache info / clear)

    def entry_counts(self) -> list[tuple[str, str | None, str | None, int]]:
        """Stored responses per (plugin, model, endpoint column): ``[(plugin, model, endpoint, count), ...]``."""
        with self._lock:
            return self._db.execute(
                "SELECT plugin, model, endpoint, COUNT(*) FROM responses GROUP BY plugin, model, endpoint "
                "ORDER BY plugin, model, endpoint"
            ).fetchall()

    def memo_count(self) -> int:
        """Entries of the prompt-key memo (`harness.run.prompt_memo`)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM prepared_samples").fetchone()[0]

    def delete_groups(self, groups: list[tuple[str, str | None, str | None]]) -> int:
        """Delete the responses of each (plugin, model, endpoint column) group; returns how many were deleted."""
        deleted = 0
        with self._lock, self._transaction():
            for plugin, model, endpoint in groups:
                deleted += self._db.execute(
                    "DELETE FROM responses WHERE plugin = ? AND model IS ? AND endpoint IS ?", (plugin, model, endpoint)
                ).rowcount
        return deleted

    def delete_all(self) -> tuple[int, int]:
        """Delete every response and every memo entry; returns (responses, memo entries) deleted."""
        with self._lock, self._transaction():
            responses = self._db.execute("DELETE FROM responses").rowcount
            memo = self._db.execute("DELETE FROM prepared_samples").rowcount
        return responses, memo

    def compact(self) -> None:
        """Give the space of deleted entries back to the file system (VACUUM; takes as long as copying the file)."""
        with self._lock:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._db.close()
