"""A persistent request cache: SQLite, keyed by everything that determines a response.

The key is the SHA-256 of the canonical JSON of (endpoint, model id, request kind, messages or
prompt, sampling parameters, sample index, parse attempt); the API key is never part of it and
never stored. Only successful responses are written, so an error is retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from paperlab.core.artifacts import default_cache_dir


def default_cache_path() -> Path | None:
    """``llm-cache.sqlite`` in the disk cache folder; None when ``$PAPERLAB_CACHE_DIR`` is
    ``off`` (the request cache then lives in memory for the process)."""
    root = default_cache_dir()
    return None if root is None else root / "llm-cache.sqlite"


def request_key(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    """`get(key)` / `put(key, value)` of JSON-able dicts; safe to share between threads.

    ``path`` None: the default file (:func:`default_cache_path`), or an in-memory database when
    the disk cache is off."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self._lock = threading.Lock()
        if self.path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                (key, blob, time.time()),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
