"""Online resolvers: Crossref, NCBI E-utilities and doi.org. Off unless a task enables them;
every answer is cached on disk, requests are paced, and each carries a contact string as
these services ask. Base URLs are settings, so tests point them at a local fake server."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from harness import __version__
from harness.store import private_file

DEFAULT_BASES = {"crossref": "https://api.crossref.org", "ncbi": "https://eutils.ncbi.nlm.nih.gov/entrez/eutils",
                 "doi": "https://doi.org"}


class HTTPCache:
    """URL → (status, body), on disk, shared by the resolvers of a run."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(private_file(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS http (url TEXT PRIMARY KEY, status INTEGER, body TEXT, "
                        "fetched REAL)")
        self.lock = threading.Lock()

    def get(self, url: str) -> tuple[int, str] | None:
        with self.lock:
            row = self.db.execute("SELECT status, body FROM http WHERE url = ?", (url,)).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def put(self, url: str, status: int, body: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO http VALUES (?, ?, ?, ?)", (url, status, body, time.time()))


#: a registry's record is a few kilobytes; a body that goes on is not one
MAX_ANSWER_BYTES = 16 << 20


def record(body: str) -> dict[str, Any] | None:
    """The JSON object a service answered, or None when the body is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class OnlineResolver:
    name = ""
    kinds: tuple[str, ...] = ()

    def __init__(self, base_url: str | None, contact: str, cache: HTTPCache, requests_per_second: float) -> None:
        self.base = (base_url or DEFAULT_BASES[self.name]).rstrip("/")
        self.contact = contact
        self.cache = cache
        self.interval = 1.0 / requests_per_second
        self._last = 0.0
        self._lock = threading.Lock()
        self.requests = 0

    def fetch(self, url: str) -> tuple[int, dict[str, Any]]:
        """(status, the JSON object a 200 answered; empty otherwise). Answers of 200 and 404
        are cached on disk; status 0 is a network failure or an answer that is not a record."""
        cached = self.cache.get(url)
        if cached is not None:
            status, body = cached
            return status, (record(body) or {}) if status == 200 else {}
        with self._lock:  # pace requests: the services ask for a few per second at most
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last = time.monotonic()
        request = urllib.request.Request(url, headers={
            "User-Agent": f"avec-harness/{__version__} (mailto:{self.contact})", "Accept": "application/json"})
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=20) as resp:
                status, data = resp.status, resp.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            status, data = exc.code, b""
        except (urllib.error.URLError, TimeoutError):
            return 0, {}  # not cached: a network failure says nothing about the work
        # not cached either: an answer that is not a record (a proxy's sign-in page with a 200,
        # a body that does not end) says nothing about the work, and the next run asks again
        if len(data) > MAX_ANSWER_BYTES:
            return 0, {}
        body = data.decode("utf-8", "replace")
        answer = record(body) if status == 200 else {}
        if answer is None:
            return 0, {}
        if status in (200, 404):
            self.cache.put(url, status, body)
        return status, answer

    def lookup(self, kind: str, value: str) -> tuple[str, dict[str, Any] | None]:
        """('found', record) | ('not_found', None) | ('error', None): an error, too, for an
        answer of another shape than the service documents, never a verdict."""
        try:
            return self._lookup(kind, value)
        except (AttributeError, TypeError, IndexError, KeyError, ValueError):
            return "error", None

    def _lookup(self, kind: str, value: str) -> tuple[str, dict[str, Any] | None]:
        raise NotImplementedError


class Crossref(OnlineResolver):
    name, kinds = "crossref", ("doi",)

    def _lookup(self, kind: str, value: str) -> tuple[str, dict[str, Any] | None]:
        status, answer = self.fetch(f"{self.base}/works/{urllib.parse.quote(value)}?mailto="
                                  f"{urllib.parse.quote(self.contact)}")
        if status == 404:
            return "not_found", None
        if status != 200:
            return "error", None
        msg = answer.get("message") or {}
        parts = (msg.get("issued") or {}).get("date-parts") or [[None]]
        return "found", {"doi": value, "title": (msg.get("title") or [None])[0],
                         "journal": (msg.get("container-title") or [None])[0], "year": parts[0][0]}


class NCBI(OnlineResolver):
    name, kinds = "ncbi", ("pmid",)

    def _lookup(self, kind: str, value: str) -> tuple[str, dict[str, Any] | None]:
        query = urllib.parse.urlencode({"db": "pubmed", "id": value, "retmode": "json", "tool": "avec-harness",
                                        "email": self.contact})
        status, answer = self.fetch(f"{self.base}/esummary.fcgi?{query}")
        if status != 200:
            return "error", None
        result = (answer.get("result") or {}).get(value)
        if not result or "error" in result:
            return "not_found", None
        year = (result.get("pubdate") or "")[:4]
        return "found", {"pmid": value, "title": result.get("title"), "journal": result.get("fulljournalname"),
                         "year": int(year) if year.isdigit() else None}


class DoiOrg(OnlineResolver):
    name, kinds = "doi", ("doi",)

    def _lookup(self, kind: str, value: str) -> tuple[str, dict[str, Any] | None]:
        status, answer = self.fetch(f"{self.base}/api/handles/{urllib.parse.quote(value)}")
        if status == 404:
            return "not_found", None
        if status != 200:
            return "error", None
        # the handle API's codes: 1 success, 100 handle not found, 200 the handle exists
        # without values of the asked type (we ask for none), 2 its own error
        code = answer.get("responseCode")
        if code in (1, 200):
            return "found", {"doi": value}
        return ("not_found", None) if code == 100 else ("error", None)


ONLINE = {"crossref": Crossref, "ncbi": NCBI, "doi": DoiOrg}
