"""Response cache in SQLite: an unchanged rerun sends no request.

The key is a hash of the adapter's identity (kind, adapter version, every setting
that can change an output: endpoint, model, sampling, headers that select a deployment,
hashed; not timeouts) and the exact request (messages or audio content, language,
repeat seed). Only successful responses are
kept. WAL mode and a busy timeout make it safe for several runs at once: two
processes writing the same key write the same value, and nothing is lost.

The cache lives next to the suite (`.harness-cache/`), not in a shared home folder:
it holds model outputs on the task's data and inherits that data's class.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from harness.store import private_file
from harness.types import Response

CACHE_DIR_ENV = "HARNESS_CACHE_DIR"
CACHE_FILE = "responses.sqlite"
_CACHED_FIELDS = ("output", "latency_s", "ttft_s", "tokens_in", "tokens_out", "cost", "energy_wh", "gwp_g", "model_id",
                  "system_fingerprint", "audio_seconds", "segments")


def default_cache_dir(base: Path) -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else base / ".harness-cache"


def cache_keys(identity: dict[str, Any]) -> Callable[[str], str]:
    """The key of a request (by its hash) to one adapter identity (see `Adapter.cache_identity`):
    sha256 of the JSON `[identity, request_hash]`, keys sorted. The identity is serialised once,
    not for every item (`request_hash` is hexadecimal: nothing in it to escape)."""
    prefix = orjson.dumps([identity, ""], option=orjson.OPT_SORT_KEYS, default=str)[:-2]

    def key(request_hash: str) -> str:
        return hashlib.sha256(prefix + request_hash.encode() + b'"]').hexdigest()

    return key


def _retry_locked(statement: Any, seconds: float = 30.0) -> None:
    """Run a statement, retrying while another process holds the lock. Switching a new
    database to WAL takes an exclusive lock without calling the busy handler, so two runs
    opening a new cache at the same moment would otherwise fail with "database is locked"."""
    deadline = time.monotonic() + seconds
    delay = 0.01
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class ResponseCache:
    def __init__(self, directory: Path) -> None:
        # model outputs on health data: the owner alone reads them (SQLite gives its WAL
        # and shared-memory files the database file's permissions)
        self.path = private_file(directory / CACHE_FILE)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=60000")
        _retry_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._db.execute("PRAGMA synchronous=NORMAL")
        _retry_locked(lambda: self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, "
                                               "adapter_kind TEXT, value BLOB, created REAL)"))
        self.hits = 0
        self.misses = 0
        self.writes = 0
        # Writes are batched into one transaction per FLUSH_EVERY entries or FLUSH_SECONDS:
        # one commit per response cost ~80 µs each. A crash loses at most the unflushed tail
        # of the cache, never a response: the run record is written and flushed per response,
        # and `--resume` reads it, not the cache.
        self._pending: dict[str, tuple[str, str, bytes, float]] = {}
        self._last_flush = time.monotonic()

    FLUSH_EVERY = 256
    FLUSH_SECONDS = 1.0

    def get(self, key: str) -> Response | None:
        with self._lock:
            pending = self._pending.get(key)
            row = (pending[2],) if pending else self._db.execute(
                "SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        data = orjson.loads(row[0])
        return Response(**{k: data.get(k) for k in _CACHED_FIELDS}, cache_hit=True)

    def get_many(self, keys: list[str]) -> dict[str, Response]:
        """Cached responses for the keys present, in one query per 500 keys."""
        found: dict[str, Response] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk).fetchall()
                rows += [(k, self._pending[k][2]) for k in chunk if k in self._pending]
            for key, value in rows:
                data = orjson.loads(value)
                found[key] = Response(**{k: data.get(k) for k in _CACHED_FIELDS}, cache_hit=True)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put(self, key: str, adapter_kind: str, response: Response) -> None:
        if response.status != "ok":
            return
        value = orjson.dumps({k: getattr(response, k) for k in _CACHED_FIELDS})
        with self._lock:
            self._pending[key] = (key, adapter_kind, value, time.time())
            self.writes += 1
            if len(self._pending) >= self.FLUSH_EVERY or time.monotonic() - self._last_flush > self.FLUSH_SECONDS:
                self._flush()

    def _flush(self) -> None:
        """Write the pending entries in one transaction (caller holds the lock)."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        rows = list(self._pending.values())
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._pending.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._flush()
            rows = self._db.execute("SELECT adapter_kind, COUNT(*), SUM(LENGTH(value)) FROM responses "
                                    "GROUP BY adapter_kind").fetchall()
        return {"path": str(self.path), "entries": sum(r[1] for r in rows),
                "bytes": self.path.stat().st_size if self.path.exists() else 0,
                "by_adapter_kind": {r[0]: r[1] for r in rows}}

    def clear(self) -> int:
        with self._lock:
            self._pending.clear()
            n = self._db.execute("DELETE FROM responses").rowcount
            self._db.execute("VACUUM")
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._flush()
            if self.writes:
                # fold the write-ahead log into the database so the next run reads one file;
                # PASSIVE never waits for another process still using the cache
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._db.close()
