"""Datasets: stream items from JSONL, CSV, Parquet, saved or hub Hugging Face datasets.

Items are produced one at a time; nothing here holds a whole dataset as Python
objects (Parquet and Arrow are read in record batches). The one exception is a JSON
array (`[{...}, {...}]`, as many tools save `.json`), whose text is read whole.
"""

from __future__ import annotations

import codecs
import csv
import functools
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

from harness.config import LoadedTask, resolve
from harness.errors import ConfigError, Problem, not_utf8
from harness.paths import Roots, audio_problem
from harness.segments import SegmentError
from harness.segments import parse_value as parse_segments
from harness.segments import text_of as segment_text
from harness.types import Item

LOGICAL_FIELDS = ("id", "reference", "audio", "input", "source", "choices", "cluster", "subgroup", "segments",
                  "post_edit", "correction_seconds")
MAX_PROBLEMS = 20


class _RowError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def dataset_location(task: LoadedTask) -> Path | None:
    spec = task.config.dataset
    return resolve(task.base_dir, spec.path) if spec.path else None


#: suffixes → reader; `.json` may hold JSON lines or one array of objects
_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv",
            ".parquet": "parquet", ".pq": "parquet"}
_SPREADSHEETS = (".xlsx", ".xls", ".xlsm", ".ods", ".numbers")


def _format(task: LoadedTask, path: Path) -> str:
    declared = task.config.dataset.format
    if declared:
        return declared
    if path.is_dir():
        return "hf-disk"
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:  # read as JSON lines, a spreadsheet failed as "invalid JSON" on line 1
        raise _RowError(Problem(str(task.path), "dataset.path", f"cannot tell the format of {path.name}",
                                task.lines.get(("dataset", "path")),
                                expected="a .jsonl, .json, .csv, .tsv or .parquet file, a saved Hugging Face "
                                         "dataset folder, or dataset.format",
                                hint="save the sheet as 'CSV UTF-8'" if suffix in _SPREADSHEETS else None))
    return _FORMATS[suffix]


_SPACE = re.compile(r"[ \t\r\n]*")


def _after_space(text: str, i: int) -> int:
    match = _SPACE.match(text, i)
    return match.end() if match else i


def _json_array_rows(path: Path, raw: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects of a JSON array, each numbered by the line where it starts."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _RowError(not_utf8(path, exc, whole=True)) from None
    decoder = json.JSONDecoder(parse_constant=_json_constant)
    end = len(text)
    line, counted = 1, 0

    def line_at(i: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, i)
        counted = i
        return line

    i = _after_space(text, text.index("[") + 1)
    if i < end and text[i] == "]":
        return
    while True:
        start = line_at(i)
        try:
            row, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise _RowError(Problem(str(path), "", f"invalid JSON: {exc.msg}", exc.lineno)) from None
        if not isinstance(row, dict):
            raise _RowError(Problem(str(path), "", "each element of the array must be a JSON object", start,
                                    found=type(row).__name__))
        yield start, row
        i = _after_space(text, i)
        if i < end and text[i] == ",":
            i = _after_space(text, i + 1)
            if i < end and text[i] == "]":  # JavaScript allows it, JSON does not
                raise _RowError(Problem(str(path), "", "invalid JSON: a comma before the closing ']'",
                                        line_at(i)))
            continue
        if i < end and text[i] == "]" and _after_space(text, i + 1) == end:
            return
        raise _RowError(Problem(str(path), "", "invalid JSON: expected ',' or ']' after an element of the array",
                                line_at(min(i, end))))


def starts_json_array(head: bytes) -> bool:
    """Whether a JSON file whose first bytes are `head` holds one array (`[{...}, ...]`) rather
    than JSON lines: its first character, after a byte-order mark and blank space, is '['."""
    return head.lstrip(codecs.BOM_UTF8).lstrip().startswith(b"[")


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """JSON lines, or (a file that starts with '[') one JSON array of objects."""
    with path.open("rb") as fh:
        head = fh.read(4096)
        if starts_json_array(head):
            yield from _json_array_rows(path, head + fh.read())
            return
        fh.seek(0)
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):  # as Windows tools write UTF-8
                raw = raw[len(codecs.BOM_UTF8):]
            if not raw.strip():
                continue
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as uexc:
                    raise _RowError(not_utf8(path, uexc, lineno)) from None
                row = _python_json(text)
                if row is None:
                    raise _RowError(Problem(str(path), "", f"invalid JSON: {exc.msg}", lineno)) from None
            if not isinstance(row, dict):
                raise _RowError(Problem(str(path), "", "each line must be a JSON object", lineno,
                                        found=type(row).__name__))
            yield lineno, row


def _json_constant(name: str) -> float | None:
    """NaN, Infinity and -Infinity, which Python's json module writes (json.dumps of a record
    with a missing float) and strict JSON refuses: NaN reads as null."""
    return None if name == "NaN" else float(name)


def _python_json(text: str) -> Any:
    """A line as Python's json module writes it (see `_json_constant`); None when it is not
    JSON at all."""
    try:
        return json.loads(text, parse_constant=_json_constant)
    except ValueError:
        return None


def named_twice(names: Sequence[str]) -> str | None:
    """The first name a header gives twice (unnamed columns aside), or None."""
    seen: set[str] = set()
    for name in names:
        if name in seen and name.strip():
            return name
        seen.add(name)
    return None


#: separators a spreadsheet may have written instead of the declared one (French Excel: ';')
_SEPARATORS = (";", ",", "\t", "|")


def other_delimiter(header: Sequence[str], delimiter: str) -> str | None:
    """The separator a one-column header shows the file was written with ("id;question;answer"
    read with ','), or None: every row would otherwise be one field, and each item an error."""
    if len(header) != 1:
        return None
    counts = {sep: header[0].count(sep) for sep in _SEPARATORS if sep != delimiter}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else None


def allow_long_csv_fields() -> None:
    """Lift Python csv's own limit (128 KB a field), which refused a long consultation's
    transcript with a crash; the suite's `max_field_bytes` is the limit that applies."""
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


def _csv_rows(path: Path, delimiter: str = ",", declared_in: str = "the task") -> Iterator[tuple[int, dict[str, Any]]]:
    """RFC 4180 rows (quoted line breaks and quotes, a byte-order mark), numbered by the
    file line where each row starts; `declared_in` names the file where the delimiter is set."""
    allow_long_csv_fields()
    start = 2
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = reader.fieldnames or []
            twice = named_twice(header)
            if twice:  # a row's dict would keep the last of them, silently
                raise _RowError(Problem(str(path), twice, "column named twice in the header", 1,
                                        expected="one column per name"))
            other = other_delimiter(header, delimiter)
            if other is not None:
                raise _RowError(Problem(str(path), "", f"the header is one column, {header[0]!r}: the file is "
                                        f"separated by {other!r}, not {delimiter!r}", 1,
                                        expected=f"delimiter: {other!r} under dataset in {declared_in}"))
            for row in reader:
                if None in row:  # more fields than the header names
                    raise _RowError(Problem(str(path), "", f"row has {len(row) - 1 + len(row[None])} fields, "
                                            f"the header has {len(header)}", start))
                if any(value and value.strip() for value in row.values()):
                    yield start, dict(row)
                # else a row of empty fields (";;;", which spreadsheets write after the data): no item
                start = reader.line_num + 1
    except csv.Error as exc:
        raise _RowError(Problem(str(path), "", f"not a readable CSV row: {exc}", start)) from None
    except UnicodeDecodeError as exc:
        raise _RowError(not_utf8(path, exc, what="CSV")) from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise _RowError(Problem(str(path), "", f"not a readable Parquet file: {exc}")) from None
    n = 0
    for batch in pf.iter_batches(batch_size=2048):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _arrow_rows(ds: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    n = 0
    for batch in ds.iter(batch_size=2048):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys), strict=True):
            n += 1
            yield n, dict(zip(keys, values, strict=True))


def _hf_disk_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise _RowError(Problem(str(path), "dataset.path", f"not a saved Hugging Face dataset: {exc}")) from None
    if isinstance(ds, datasets.DatasetDict):
        raise _RowError(Problem(str(path), "dataset.path", "a DatasetDict holds several splits",
                                expected="the directory of one split", found=", ".join(ds)))
    yield from _arrow_rows(ds)


def _hf_hub_rows(task: LoadedTask) -> Iterator[tuple[int, dict[str, Any]]]:
    spec = task.config.dataset.hf
    assert spec is not None
    # Offline unless the user opts in: a run must not reach a hub it did not name on purpose.
    if os.environ.get("HARNESS_HF_ONLINE") != "1":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    try:
        ds = datasets.load_dataset(spec.name, spec.config, split=spec.split, revision=spec.revision)
    except Exception as exc:
        raise _RowError(Problem(str(task.path), "dataset.hf",
                                f"Hugging Face dataset '{spec.name}' is not available offline "
                                f"({type(exc).__name__}); download it into the local cache first "
                                "or set HARNESS_HF_ONLINE=1")) from None
    yield from _arrow_rows(ds)


def iter_rows(task: LoadedTask) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) pairs in dataset order."""
    spec = task.config.dataset
    if spec.hf is not None:
        yield from _hf_hub_rows(task)
        return
    path = dataset_location(task)
    assert path is not None
    if not path.exists():
        raise _RowError(Problem(str(task.path), "dataset.path", "dataset file not found",
                                task.lines.get(("dataset", "path")), found=str(path)))
    fmt = _format(task, path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" and "delimiter" not in spec.model_fields_set else spec.delimiter
    readers: dict[str, Any] = {"jsonl": _jsonl_rows, "csv": lambda p: _csv_rows(p, delimiter, str(task.path)),
                               "parquet": _parquet_rows, "hf-disk": _hf_disk_rows}
    for count, (lineno, row) in enumerate(readers[fmt](path), 1):
        yield lineno, row
        if spec.limit and count >= spec.limit:
            return


def _column(task: LoadedTask, logical: str) -> str:
    return task.config.dataset.fields.get(logical, logical)


class ItemMaker:
    """Maps rows to Items through the task's `fields` (logical name → column); the
    mapping and the audio base directory are worked out once per task, not per row."""

    def __init__(self, task: LoadedTask, roots: Roots | None = None) -> None:
        fields = task.config.dataset.fields
        self.col = {logical: fields.get(logical, logical) for logical in LOGICAL_FIELDS}
        # every mapped name, not only the built-in ones: `question: Question` lets a template
        # read {{ question }}, as validation (which looks the field up through the mapping) assumes
        self.aliases = list(fields.items())
        base = dataset_location(task)
        self.audio_dir = (base if base.is_dir() else base.parent) if base else task.base_dir
        # a transcription row may carry timed speaker turns (and then needs no reference text)
        self.with_segments = "segments" in fields or task.config.kind == "transcription"
        self.allows = roots.allows if roots is not None else None

    def audio_path(self, row: dict[str, Any]) -> Path | None:
        audio = row.get(self.col["audio"])
        if isinstance(audio, dict):  # Hugging Face Audio feature
            audio = audio.get("path")
        if not audio:
            return None
        path = resolve(self.audio_dir, str(audio))
        if "\\" in str(audio) and not path.exists():  # audio\d1.wav, as a sheet made on Windows writes it
            path = resolve(self.audio_dir, str(audio).replace("\\", "/"))
        return path

    def __call__(self, row: dict[str, Any]) -> Item:
        """Raises SegmentError when the row's segments cannot be read."""
        col = self.col
        data = dict(row)
        for logical, column in self.aliases:
            data[logical] = row.get(column)
        cluster, subgroup = row.get(col["cluster"]), row.get(col["subgroup"])
        item_id, reference = str(row.get(col["id"])), row.get(col["reference"])
        segments = None
        if self.with_segments and row.get(col["segments"]) not in (None, ""):
            segments = parse_segments(row[col["segments"]], self.audio_dir, item_id, self.allows)
            if reference in (None, ""):  # a corpus that ships only timed turns: the transcript they make
                reference = segment_text(segments)
        return Item(id=item_id, data=data, reference=reference,
                    audio=self.audio_path(row),
                    cluster=None if cluster is None else str(cluster),
                    subgroup=None if subgroup is None else str(subgroup), segments=segments)


def iter_items(task: LoadedTask) -> Iterator[Item]:
    """Stream the task's items. Assumes `scan_dataset` passed."""
    make = ItemMaker(task)
    for _, row in iter_rows(task):
        yield make(row)


@dataclass
class DatasetSummary:
    count: int = 0
    problems: list[Problem] = field(default_factory=list)
    ids: Any = None  # a pyarrow string array, kept only when asked for (replay files are checked against them)


class _SeenIds:
    """The ids a scan has met, in 8 bytes each: their hashes, sorted at the end to find
    duplicates (a million-item dataset held as a set of str cost 100 MB); and, when kept, the
    ids themselves in Arrow chunks."""

    _CHUNK = 1 << 16

    def __init__(self, keep: bool) -> None:
        from array import array

        self.hashes = array("q")
        self.keep = keep
        self._chunks: list[Any] = []
        self._pending: list[str] = []

    def add(self, item_id: str) -> None:
        self.hashes.append(hash(item_id))
        if self.keep:
            self._pending.append(item_id)
            if len(self._pending) >= self._CHUNK:
                self._flush()

    def _flush(self) -> None:
        from harness.arrowconv import string_array

        self._chunks.append(string_array(self._pending))
        self._pending = []

    def repeated_hashes(self) -> set[int]:
        """Hashes met more than once: the duplicated ids, and (rarely) two ids that collide."""
        if len(self.hashes) < 200_000:  # sorted() beats importing numpy (~0.1 s) on the validation path
            ordered = sorted(self.hashes)
            return {a for a, b in pairwise(ordered) if a == b}
        import numpy as np

        hashes = np.sort(np.frombuffer(self.hashes, dtype=np.int64))
        return set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())

    def ids(self) -> Any:
        import pyarrow as pa

        self._flush()
        return pa.chunked_array(self._chunks, pa.string()).combine_chunks()


def _field(task: LoadedTask, row: dict[str, Any], name: str) -> Any:
    """A row's field by its name in the task (`dataset.fields` maps names to columns)."""
    return row.get(_column(task, name))


def scan_dataset(task: LoadedTask, required: tuple[str, ...], roots: Roots | None = None,
                 max_field_bytes: int | None = None, decode_audio: bool = False,
                 keep_ids: bool = False,
                 reference_checks: Sequence[tuple[str, Callable[[Any], str | None]]] = (),
                 item_checks: Sequence[tuple[str, Callable[[Any, Callable[[str], Any]], str | None]]] = (),
                 ) -> DatasetSummary:
    """One streaming pass that checks what a run needs before any model is called:
    required fields present, ids unique, audio files present, inside the suite's roots
    and decodable, no field larger than `max_field_bytes`, dataset not empty, and each
    reference scorable by the scorers that give a check (scorer name, check): alone
    (`reference_checks`) or beside the row's other fields (`item_checks`)."""
    summary = DatasetSummary()
    where = str(dataset_location(task) or task.path)
    seen = _SeenIds(keep_ids)
    columns = {logical: _column(task, logical) for logical in required}
    make = ItemMaker(task, roots)
    reference_column = _column(task, "reference")  # checked where given, required or not (generation)

    dropped = 0
    #: a field missing from many rows is one problem, at its first line, with a count
    missing: dict[str, list[Any]] = {}

    def add(problem: Problem) -> None:
        nonlocal dropped
        if len(summary.problems) < MAX_PROBLEMS:
            summary.problems.append(problem)
        else:
            dropped += 1

    try:
        for lineno, row in iter_rows(task):
            summary.count += 1
            for logical, column in columns.items():
                if row.get(column) in (None, "") and not (
                        logical == "reference" and make.with_segments and row.get(make.col["segments"])):
                    if column in missing:
                        missing[column][1] += 1
                        continue
                    mapped = f" (mapped from '{logical}' in {task.path} dataset.fields)" if column != logical else ""
                    near = next((k for k in row if isinstance(k, str) and k != column
                                 and k.strip().casefold() == column.casefold()), None)
                    problem = Problem(where, column, f"required field missing or empty{mapped}", lineno,
                                      expected=f"a value for '{column}'",
                                      found="fields " + ", ".join(sorted(map(str, row))),
                                      hint=None if near is None else (
                                          f"did you mean {near!r}? Field names are case-sensitive: "
                                          f"dataset.fields: {{{logical}: {near!r}}} in {task.path}"))
                    missing[column] = [problem, 1]
                    add(problem)
            if (reference_checks or item_checks) and (reference := row.get(reference_column)) not in (None, ""):
                for scorer, check in reference_checks:
                    if (why := check(reference)) is not None:
                        add(Problem(where, reference_column, why, lineno, hint=f"scorer {scorer}"))
                        break
                else:
                    for scorer, item_check in item_checks:
                        if (why := item_check(reference, functools.partial(_field, task, row))) is not None:
                            add(Problem(where, reference_column, why, lineno, hint=f"scorer {scorer}"))
                            break
            raw_id = row.get(_column(task, "id"))
            item_id = str(raw_id)
            if raw_id not in (None, ""):  # a missing id is reported above, not also as a duplicate
                seen.add(item_id)
            if max_field_bytes is not None:
                for column, value in row.items():
                    size = len(value.encode("utf-8", "replace")) if isinstance(value, str) else 0
                    if size > max_field_bytes:
                        add(Problem(where, str(column), f"field of {size:,} bytes in item {item_id!r}", lineno,
                                    expected=f"at most {max_field_bytes:,} bytes (suite `max_field_bytes`)"))
            if make.with_segments and row.get(make.col["segments"]) not in (None, ""):
                try:
                    make(row)
                except SegmentError as exc:
                    add(Problem(where, make.col["segments"], f"item {item_id!r}: {exc}", lineno,
                                expected="a list of {text, speaker, start, end}, or a TextGrid, STM, CTM, "
                                         "RTTM or JSON file inside the suite's folders"))
            if "audio" in required and row.get(columns["audio"]):
                audio = make.audio_path(row)  # not make(row): its segments may be the row's problem
                if audio is None:
                    continue
                outside = roots.problem(audio, where, columns["audio"], lineno) if roots is not None else None
                if outside is not None:
                    add(outside)
                elif not audio.is_file():
                    add(Problem(where, columns["audio"], "audio file not found", lineno, found=str(audio)))
                elif decode_audio and (why := audio_problem(audio)) is not None:
                    add(Problem(where, columns["audio"], f"audio file {why}", lineno, found=str(audio)))
    except _RowError as exc:
        add(exc.problem)
        if keep_ids:
            summary.ids = seen.ids()
        return summary
    for problem, rows in missing.values():
        if rows > 1:
            problem.message += f" (and in {rows - 1:,} more row{'s' if rows > 2 else ''})"
    if summary.count == 0:
        add(Problem(where, "", "dataset is empty", expected="at least one item"))
    repeated = seen.repeated_hashes()
    if repeated:  # a second pass, over the rows whose id hash was met twice, names the lines
        first: set[str] = set()
        for lineno, row in iter_rows(task):
            item_id = str(row.get(_column(task, "id")))
            if hash(item_id) in repeated:
                if item_id in first:
                    add(Problem(where, _column(task, "id"), "duplicate id", lineno, expected="unique ids",
                                found=repr(item_id)))
                first.add(item_id)
    if dropped:
        summary.problems.append(Problem(where, "", f"and {dropped:,} more problem{'s' if dropped > 1 else ''} "
                                        f"not shown (the first {MAX_PROBLEMS} are above)"))
    if keep_ids:
        summary.ids = seen.ids()
    return summary


def dataset_files(task: LoadedTask) -> list[Path]:
    """Files whose content defines the dataset, for the run manifest's hashes."""
    path = dataset_location(task)
    if path is None or not path.exists():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def raise_if(problems: list[Problem]) -> None:
    if problems:
        raise ConfigError(problems)
