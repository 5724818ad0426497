"""Run records: an append-only folder from which every report can be recomputed.

runs/<run-id>/manifest.json    what was run (resolved config, hashes, versions, declarations)
runs/<run-id>/responses.jsonl  one line per item × adapter × repeat, flushed as it arrives
runs/<run-id>/scores.jsonl     per-item values, flushed as they arrive
runs/<run-id>/scorecard.json   recomputed from the three files above
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

MANIFEST = "manifest.json"
RESPONSES = "responses.jsonl"
SCORES = "scores.jsonl"


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H-%M-%S") + "-" + secrets.token_hex(3)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a crash never leaves half a manifest or scorecard."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Lines of a JSONL record; a half-written last line (a crash mid-write) is skipped."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return
            try:
                yield orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue


class RunWriter:
    """Appends responses and scores, one flushed line each."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[bytes]] = {}

    def _fh(self, name: str) -> IO[bytes]:
        fh = self._files.get(name)
        if fh is None:
            path = self.dir / name
            self._truncate_partial_line(path)
            fh = self._files[name] = path.open("ab")
        return fh

    @staticmethod
    def _truncate_partial_line(path: Path) -> None:
        if not path.exists() or path.stat().st_size == 0:
            return
        with path.open("rb+") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def append(self, name: str, record: dict[str, Any], *, flush: bool = True) -> None:
        """Append one line. Flush what would cost a request to redo; lines that can be
        recomputed (scores, cache hits) may wait in the buffer."""
        fh = self._fh(name)
        # one write of a whole line: a crash leaves at most a partial last line
        fh.write(orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))
        if flush:
            fh.flush()

    def manifest(self, data: dict[str, Any]) -> None:
        write_json(self.dir / MANIFEST, data)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))  # type: ignore[no-any-return]
