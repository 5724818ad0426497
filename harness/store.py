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
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

MANIFEST = "manifest.json"
RESPONSES = "responses.jsonl"
SCORES = "scores.jsonl"
REQUESTS = "requests.jsonl"


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H-%M-%S") + "-" + secrets.token_hex(3)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


PRIVATE_DIR = 0o700


def file_mode(directory: Path) -> int:
    """Files take their folder's permissions, less execute: a run folder created 0700 holds
    0600 files (health outputs are readable by their owner only unless the suite says otherwise)."""
    try:
        return directory.stat().st_mode & 0o666
    except OSError:
        return 0o600


def write_text(path: Path, text: str) -> None:
    """Write atomically, with the folder's permissions: a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode(path.parent))
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write atomically: a crash never leaves half a manifest or scorecard."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def private_file(path: Path) -> Path:
    """Create `path` (and its folders) readable by the owner alone if it does not exist yet:
    caches and indexes beside health data (SQLite gives its journal files the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return path


def make_run_dir(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create a new run folder. An existing empty folder is taken; anything else is refused,
    so two runs never share a record and no user file is overwritten."""
    from harness.errors import ConfigError, Problem

    if path.exists() or path.is_symlink():
        if not path.is_dir() or path.is_symlink():
            raise ConfigError([Problem(str(path), "--out", "not a folder", expected="a new or empty folder")])
        if any(path.iterdir()):
            what = "a run record" if (path / MANIFEST).exists() else "files that are not a run record"
            raise ConfigError([Problem(str(path), "--out", f"folder is not empty (it holds {what})",
                                       expected="a new or empty folder; to finish that run, --resume it",
                                       hint="nothing was written")])
        path.chmod(mode)
        return
    try:
        path.mkdir(parents=True, mode=mode)
    except OSError as exc:
        raise ConfigError([Problem(str(path), "--out", f"cannot create the run folder: {exc.strerror}")]) from None
    path.chmod(mode)  # mkdir's mode is filtered by the umask


def count_lines(path: Path) -> int:
    """Complete lines of a JSONL file (0 when absent)."""
    if not path.exists():
        return 0
    count = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


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


class _Clock:
    """`datetime.now(UTC).isoformat()` for every line of the record at a third of its cost: the
    date and time to the second are formatted once a second, the microseconds appended (taken,
    as datetime takes them, by flooring the system clock's nanoseconds)."""

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self) -> str:
        second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
        if second != self.second:
            self.second, self.prefix = second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        micro = nanoseconds // 1000
        return f"{self.prefix}.{micro:06d}+00:00" if micro else f"{self.prefix}+00:00"


#: the current time, as the record writes it
now_iso = _Clock()


class RunWriter:
    """Appends responses and scores, one line each. Lines wait in memory until one that must
    reach the disk at once (`flush`) or 64 KB of them; then every waiting line is written,
    attempts first, then answers, then scores: a score is never on disk without its answer
    (a resume takes a scored item as done)."""

    #: the order waiting lines are written in
    ORDER = (REQUESTS, RESPONSES, SCORES)
    SPILL_BYTES = 1 << 16

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        if not run_dir.is_dir():
            make_run_dir(run_dir)
        self._files: dict[str, IO[bytes]] = {}
        self._waiting: dict[str, list[bytes]] = {}
        self._waiting_bytes = 0

    def _fh(self, name: str) -> IO[bytes]:
        fh = self._files.get(name)
        if fh is None:
            path = self.dir / name
            self._truncate_partial_line(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, file_mode(self.dir))
            fh = self._files[name] = os.fdopen(fd, "ab", buffering=0)
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
        recomputed (scores, cache hits, stored answers) may wait."""
        line = orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)
        self._waiting.setdefault(name, []).append(line)
        self._waiting_bytes += len(line)
        if self._waiting_bytes >= self.SPILL_BYTES:
            self.flush()
        elif flush:
            self.flush(upto=name)

    def _rank(self, name: str) -> int:
        return self.ORDER.index(name) if name in self.ORDER else len(self.ORDER)

    def flush(self, upto: str | None = None) -> None:
        """Write the waiting lines, file by file in `ORDER`; with `upto`, only those of the files
        up to that one (an answer flushed alone leaves the scores waiting: that breaks nothing).
        A crash leaves at most a partial last line, which the next writer cuts off."""
        last = self._rank(upto) if upto is not None else len(self.ORDER)
        for name in sorted((n for n in self._waiting if self._rank(n) <= last), key=self._rank):
            lines = self._waiting.pop(name)
            self._waiting_bytes -= sum(map(len, lines))
            fh, data = self._fh(name), memoryview(b"".join(lines))
            while data:  # an unbuffered write may take part of the data
                written = fh.write(data)
                if not written:
                    raise OSError(f"could not write {self.dir / name}")
                data = data[written:]

    def manifest(self, data: dict[str, Any]) -> None:
        write_json(self.dir / MANIFEST, data)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for fh in self._files.values():
                fh.close()
            self._files.clear()


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run; ConfigError (exit 2) when the folder is not a run or the
    manifest is damaged, never a traceback."""
    from harness.errors import ConfigError, Problem

    path = run_dir / MANIFEST
    if not path.is_file():
        raise ConfigError([Problem(str(run_dir), "", "not a run record (no manifest.json)")])
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), "", "damaged run manifest: not UTF-8 text")]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([Problem(str(path), "", f"damaged run manifest: {exc.msg}", exc.lineno,
                                   hint="the responses and scores are kept; restore the manifest from a "
                                        "backup or rerun")]) from None
    from harness.record import RecordError, parse_manifest

    try:
        manifest = parse_manifest(data, str(path))
    except RecordError as exc:
        raise ConfigError([Problem(str(path), "", f"damaged run manifest: {exc}")]) from None
    return manifest.model_dump(mode="json")
