"""Outputs collected elsewhere (vendor exports, earlier runs), scored like live ones."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.adapters.base import Adapter, Settings, register_adapter
from harness.config import resolve
from harness.data import allow_long_csv_fields, named_twice, other_delimiter, starts_json_array
from harness.errors import AdapterError, Problem
from harness.segments import SegmentError, UnknownRecording
from harness.segments import parse_value as parse_segments
from harness.segments import read_file as read_segments
from harness.types import Request, Response


class ReplaySettings(Settings):
    path: str
    id_column: str = "id"
    output_column: str = "output"
    where: dict[str, Any] = Field(default_factory=dict, description="keep rows whose columns equal these")
    task_column: str | None = Field(default=None, description="column naming the task, when one file holds several")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV field separator, e.g. ';'")
    latency_column: str | None = None
    cost_column: str | None = None
    decimal: Literal[".", ","] = Field(default=".", description="decimal mark of the latency, cost and token "
                                                                "columns: ',' in French exports")
    model_column: str | None = None
    error_column: str | None = Field(default=None, description="a value here makes the item an error with "
                                                               "it as message (an OpenAI batch output's "
                                                               "`error.message`)")
    tokens_in_column: str | None = None
    tokens_out_column: str | None = None
    segments_column: str | None = Field(
        default=None, description="column holding the answer's timed segments as a JSON list of "
                                  "{text, speaker, start, end}")
    segments_file: str | None = Field(
        default=None, description="timed, speaker-labelled transcripts: one STM / CTM / RTTM / JSON / TextGrid "
                                  "file for every recording (matched on the item id), or a pattern such as "
                                  "'hyp/{id}.TextGrid'")
    speakers_file: str | None = Field(default=None, description="RTTM whose turns give speakers to a CTM's words")


_key_hash = hash  # a module name, so that a test can make every key collide


def take_rows(column: Any, rows: Any) -> list[Any]:
    """The Python values of a chunked Arrow column at `rows` (a NumPy int array). Rows close
    together (an export in the dataset's order) are read as one slice of their chunk; scattered
    ones one by one. Not Arrow's `take`: on a chunked column it joins the chunks first
    (milliseconds a call at thirty chunks), and its first call sets up Arrow's compute
    functions (+40 MB)."""
    import numpy as np
    import pyarrow as pa

    if not len(rows):
        return []
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    starts = np.cumsum([0] + [len(c) for c in chunks])
    chunk_of = np.searchsorted(starts, rows, side="right") - 1
    out: list[Any] = [None] * len(rows)
    for k in np.unique(chunk_of).tolist():
        at = np.flatnonzero(chunk_of == k)
        local = (rows[at] - starts[k]).tolist()
        low, high = min(local), max(local) + 1
        chunk = chunks[k]
        if high - low <= 4 * len(local) + 64:
            span = chunk.slice(low, high - low).to_pylist()
            values = [span[j - low] for j in local]
        else:
            values = [chunk[j].as_py() for j in local]
        for i, value in zip(at.tolist(), values, strict=True):
            out[i] = value
    return out


def key_hashes(ids: Any, tasks: Any | None = None) -> Any:
    """A NumPy int64 hash of each row's id (or (task, id)), computed by chunks: never a million
    str at once."""
    import numpy as np

    chunk = 1 << 16
    hashes = np.empty(len(ids), dtype=np.int64)
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk].to_pylist()
        keys = zip(tasks[start:start + chunk].to_pylist(), part, strict=True) if tasks is not None else part
        hashes[start:start + len(part)] = [_key_hash(k) for k in keys]
    return hashes


class _RowIndex:
    """(task, id) → the last row holding it, as sorted 64-bit hashes and 32-bit rows (12 bytes a
    row) over the Arrow columns, where a dict of a million tuples took 200 MB. A hash match is
    checked against the row's id and task, so a collision never returns another item's answer."""

    def __init__(self, ids: Any, tasks: Any | None) -> None:
        import numpy as np

        self.ids, self.tasks = ids, tasks
        hashes = key_hashes(ids, tasks)
        order = np.argsort(hashes, kind="stable")  # equal hashes keep row order: the last row wins
        # an export of 2**31 rows would not be read into this process anyway
        self.rows = order.astype(np.int32 if len(order) < 2**31 else np.int64)
        del order
        hashes.sort()  # in place: the same array as hashes[order], without a copy
        self.hashes = hashes

    def get(self, item_id: str, task: str | None = None) -> int | None:
        key = (task, item_id) if self.tasks is not None else item_id
        h = _key_hash(key)
        i = int(self.hashes.searchsorted(h))
        found = None
        while i < len(self.hashes) and self.hashes[i] == h:
            row = int(self.rows[i])
            if self.ids[row].as_py() == item_id and (self.tasks is None or self.tasks[row].as_py() == task):
                found = row
            i += 1
        return found

    def get_many(self, item_ids: list[str], tasks: list[str] | None) -> list[int | None]:
        """`get` for many keys at once: one search and one id check for the whole batch, where
        `get` costs a few microseconds a key in Arrow and NumPy scalars. A key whose hash is
        held by several rows (an id repeated in the export, a collision) goes through `get`."""
        import numpy as np

        keys: Any = list(zip(tasks, item_ids, strict=True)) if self.tasks is not None and tasks is not None \
            else item_ids
        size = len(self.hashes)
        if not size or not keys:
            return [None] * len(item_ids)
        wanted = np.fromiter((_key_hash(k) for k in keys), dtype=np.int64, count=len(keys))
        at = self.hashes.searchsorted(wanted)
        first = np.minimum(at, size - 1)
        held = self.hashes[first] == wanted
        alone = held & ((at + 1 >= size) | (self.hashes[np.minimum(at + 1, size - 1)] != wanted))
        rows = self.rows[first[alone]]
        ids = take_rows(self.ids, rows)
        row_tasks = take_rows(self.tasks, rows) if self.tasks is not None else None
        out: list[int | None] = []
        checked = 0
        for i, item_id in enumerate(item_ids):
            task = tasks[i] if tasks is not None else None
            if alone[i]:
                same = ids[checked] == item_id and (row_tasks is None or row_tasks[checked] == task)
                out.append(int(rows[checked]) if same else None)
                checked += 1
            else:
                out.append(self.get(item_id, task) if held[i] else None)
        return out


class TableError(ValueError):
    """A replay file that cannot be read, with the line where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_table(path: Path, delimiter: str = ",") -> Spilled:
    """The export as a pyarrow Table kept out of the process's memory (`Spilled`), read once for
    validation, the item check and the run (keyed on the file's size and modification time,
    so an edited file is read again).

    CSV as exports write it (RFC 4180): quoted fields may hold line breaks, quotes doubled,
    a UTF-8 byte-order mark, an unnamed index column (pandas), another delimiter when
    declared. A malformed row raises TableError with its line."""
    st = path.stat()
    return _read_table(str(path), delimiter, st.st_size, st.st_mtime_ns)


class Spilled:
    """A table written to an unlinked temporary file (Arrow IPC) and memory-mapped: its columns
    are read where they lie, and the pages a pass touched are handed back (`drop_pages`), so a
    million-row export costs the process its index, not its 40 MB of text, and does so in any
    order of look-ups. The file has no name (no other process can open it) and disappears with
    the process, however it ends; it lies in the temporary folder (TMPDIR). Where it cannot be
    written (a full disk), the table is read again into memory, as it was before."""

    def __init__(self, batches: Callable[[], Iterator[Any]], schema: Any) -> None:
        import pyarrow as pa

        self._map: Any = None
        try:
            self.table = self._spill(batches(), schema)
        except OSError:
            self.table = pa.Table.from_batches(list(batches()), schema)

    def _spill(self, batches: Iterator[Any], schema: Any) -> Any:
        import mmap
        import tempfile

        import pyarrow as pa

        with tempfile.TemporaryFile() as file:  # the map holds the file open once it is closed here
            with pa.ipc.new_file(pa.PythonFile(file, mode="w"), schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            file.flush()
            self._map = mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ)
        return pa.ipc.open_file(pa.py_buffer(self._map)).read_all()

    def drop_pages(self) -> None:
        """Hand back the pages read so far (they stay in the system's file cache)."""
        import mmap

        if self._map is not None:
            with contextlib.suppress(AttributeError, OSError, ValueError):  # no madvise: the pages stay
                self._map.madvise(mmap.MADV_DONTNEED)


#: the first block size tried by Arrow's readers (theirs)
_FIRST_BLOCK = 1 << 20
#: suffixes read as Parquet and as JSON lines; any other file is CSV
_PARQUET = (".parquet", ".pq")
_JSON = (".jsonl", ".ndjson", ".json")


def _straddles(exc: Exception, block: int, size: int) -> bool:
    """Whether Arrow refused a line (a long transcript) over two blocks of `block` bytes, in a
    file that larger blocks (16x) could still hold it in."""
    return "straddl" in str(exc) and block < size


def _in_blocks_that_hold_a_line(read: Callable[[int], Any], size: int) -> Any:
    """read(block_size) in Arrow's 1 MB blocks, again in blocks 16x larger while a line
    straddles two of them (`_straddles`)."""
    import pyarrow as pa

    block = _FIRST_BLOCK
    while True:
        try:
            return read(block)
        except pa.ArrowInvalid as exc:
            if not _straddles(exc, block, size):
                raise
            block *= 16


class _Reshaped(Exception):
    """A later block of a JSON-lines export does not fit the columns its first block gave (a
    column null at first and text later, integers then a decimal, a field first seen later):
    the file is read whole, as Arrow unifies the types of all its blocks."""


@lru_cache(maxsize=2)
def _read_table(name: str, delimiter: str, size: int, mtime_ns: int) -> Spilled:
    path = Path(name)
    try:
        first, schema = _batches(path, delimiter, size)
        given = [first]

        def batches() -> Iterator[Any]:  # the file is read again only when the spill failed
            source = given.pop() if given else _batches(path, delimiter, size)[0]
            return (_without_empty_rows(batch) for batch in source)

        return Spilled(batches, schema)
    except _Reshaped:  # (or a first block that does not read: the whole read says why)
        table = _json_lines_whole(path, size)
        return Spilled(lambda: (_without_empty_rows(batch) for batch in table.to_batches()), table.schema)


def _growing_blocks(open_reader: Callable[[int], Any], size: int, failed: Callable[[Exception], Exception]
                    ) -> Iterator[Any]:
    """The batches of open_reader(block_size), Arrow's 1 MB blocks first, read again in blocks
    16x larger while a line (a long transcript) straddles two of them, which Arrow refuses;
    the rows already given are skipped. Any other Arrow error raises failed(error)."""
    import pyarrow as pa

    block, done = _FIRST_BLOCK, 0
    while True:
        try:
            seen = 0
            for batch in open_reader(block):
                seen += len(batch)
                if seen > done:
                    yield batch.slice(max(0, len(batch) - (seen - done)))
                    done = seen
            return
        except pa.ArrowInvalid as exc:
            if _straddles(exc, block, size):
                block *= 16
                continue
            raise failed(exc) from None


def _json_lines_whole(path: Path, size: int) -> Any:
    """A JSON-lines export read whole; a line that is not a JSON object raises TableError with
    its line number (Arrow counts its "row N" from the start of a block, not of the file)."""
    import pyarrow as pa
    import pyarrow.json as pajson

    try:
        return _in_blocks_that_hold_a_line(lambda block: pajson.read_json(
            path, read_options=pajson.ReadOptions(block_size=block)), size)
    except pa.ArrowInvalid:
        bad = _first_line_not_an_object(path)
        if bad is None:  # every line is an object: a trouble of columns, which Arrow's message names
            raise
        raise TableError(*bad) from None


def _first_line_not_an_object(path: Path) -> tuple[str, int] | None:
    """(what is wrong, line number) of the first non-blank line that is not a JSON object."""
    import orjson

    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            text = (line.removeprefix(b"\xef\xbb\xbf") if number == 1 else line).strip()
            if not text:
                continue
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                return f"invalid JSON: {exc.msg}", number
            if not isinstance(value, dict):
                return f"the line is not a JSON object (found {type(value).__name__})", number
    return None


def _json_lines(path: Path, size: int) -> tuple[Iterator[Any], Any]:
    """A JSON-lines export streamed a block at a time, in the columns its first block gives
    (`_Reshaped` when a later block does not fit them): a million-line export read whole
    peaked 45 MB higher, the text of its answers."""
    import pyarrow as pa
    import pyarrow.json as pajson

    def open_lines(block: int) -> Any:
        return pajson.open_json(path, read_options=pajson.ReadOptions(block_size=block, use_threads=False))

    try:  # opening reads the first block; whatever its trouble, the whole read names it
        schema = _in_blocks_that_hold_a_line(open_lines, size).schema
    except pa.ArrowException:
        raise _Reshaped from None

    def batches() -> Iterator[Any]:
        try:
            for batch in _growing_blocks(open_lines, size, lambda exc: _Reshaped()):
                if not batch.schema.equals(schema):  # a larger block, after a long line, inferred other types
                    raise _Reshaped
                yield batch
        except pa.ArrowException:
            raise _Reshaped from None

    return batches(), schema


def _batches(path: Path, delimiter: str, size: int) -> tuple[Iterator[Any], Any]:
    """The file's record batches, streamed for CSV, Parquet and JSON lines (a JSON array is
    read whole), and their schema."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        parquet = pq.ParquetFile(path)
        return parquet.iter_batches(), parquet.schema_arrow
    if suffix in _JSON:
        with path.open("rb") as head:
            if not starts_json_array(head.read(4096)):
                return _json_lines(path, size)
        table = _json_array(path)
        return iter(table.to_batches()), table.schema
    # Every column as text, named from the header: left to Arrow's type inference, id "007"
    # became "7", a `where` on version "2.10" matched nothing, an answer "1.50" read "1.5".
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh, delimiter=delimiter), [])
    except UnicodeDecodeError as exc:
        raise TableError(f"not valid UTF-8 (byte {exc.object[exc.start]:#04x}): save the export as UTF-8") from None
    twice = named_twice(header)
    if twice:  # which of the two would be the output?
        raise TableError(f"column {twice!r} named twice in the header", 1)
    other = other_delimiter(header, delimiter)
    if other is not None:  # else each row is one field, or split at its decimal commas
        raise TableError(f"the header is one column, {header[0]!r}: the file is separated by {other!r}, "
                         f"not {delimiter!r} (delimiter: {other!r} in the adapter's settings)", 1)
    convert = pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False,
                                   column_types={name: pa.string() for name in header}, auto_dict_encode=False)
    bad: list[Any] = []

    def invalid(row: Any) -> str:
        bad.append(row)
        return "error"

    # newlines_in_values: without it Arrow splits the file into blocks at raw line breaks and a
    # multi-line answer that straddles a block boundary reads as a row of the wrong width
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=invalid)
    schema = pa.schema([(name, pa.string()) for name in header])

    def failed(exc: Exception) -> TableError:
        if bad:
            row = bad[0]
            line = _line_of_row(path, row.number, delimiter) if row.number is not None else None
            return TableError(f"row has {row.actual_columns} fields, the header has {row.expected_columns}"
                              + (f" (delimiter {delimiter!r})" if row.actual_columns == 1 else ""), line)
        return TableError(str(exc))

    return _growing_blocks(lambda block: pacsv.open_csv(
        path, parse_options=parse, convert_options=convert,
        read_options=pacsv.ReadOptions(use_threads=False, block_size=block)), size, failed), schema


def _json_array(path: Path) -> Any:
    """A `.json` export holding one array of objects (`[{...}, ...]`), which Arrow's reader of
    JSON lines refuses ("changed from object to array")."""
    import orjson
    import pyarrow as pa

    try:
        rows = orjson.loads(path.read_bytes().removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise TableError(f"invalid JSON: {exc.msg}", exc.lineno) from None
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        raise TableError(f"element {bad + 1} of the array is not an object (found {type(rows[bad]).__name__})")
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TableError(f"the objects' values do not make columns: {exc}") from None


def _mended_ids(ids: Any, how: str) -> Any:
    import pyarrow.compute as pc

    if how == "spaces":
        return pc.utf8_trim_whitespace(ids)
    if how == "case":
        return pc.utf8_lower(ids)
    return pc.replace_substring_regex(pc.replace_substring_regex(ids, r"^0+(\d)", r"\1"), r"\.0+$", "")


#: why an export's ids may not be the dataset's, each with the mending (_mended_ids) that tells
_ID_MISMATCHES = (
    ("spaces", "once the spaces around them are trimmed"),
    ("case", "ignoring case"),
    ("numbers", "once leading zeros and a trailing '.0' are dropped: a spreadsheet read them as numbers; "
                "save them as text"),
)


def _id_mismatch(ids: Any, known: Any) -> str | None:
    """How the export's `ids` (a sample) relate to the dataset's: the first mending of
    _ID_MISMATCHES under which some of them become dataset ids, applied to both sides; or None."""
    import pyarrow.compute as pc

    sample = ids.slice(0, 1000)
    for how, why in _ID_MISMATCHES:
        if pc.any(pc.is_in(_mended_ids(sample, how), value_set=_mended_ids(known, how))).as_py():
            return why
    return None


def _without_empty_rows(table: Any) -> Any:
    """The table less its rows of empty fields (";;;", which spreadsheets write after the
    data): they answer no item, and read as an unknown id repeated. Bitmaps only: the first
    column's empty cells are looked for, the others only where there are some."""
    import pyarrow.compute as pc

    if not table.num_columns:
        return table
    empty = pc.is_null(table.column(0))
    if not pc.any(empty).as_py():
        return table
    for column in table.columns[1:]:
        empty = pc.and_(empty, pc.is_null(column))
    return table.filter(pc.invert(empty))


def _as_number(value: Any, decimal: str) -> float | None:
    """A replay cell as a number (None when empty); `decimal` ',' reads "0,8" as 0.8."""
    if value is None or value == "":
        return None
    return float(value.replace(",", ".") if decimal == "," and isinstance(value, str) else value)


def _first_bad_amount(column: Any, decimal: str) -> tuple[int, str, str] | None:
    """(row, text, what is wrong) of the first cell of `column` that is not a number, or is
    negative or infinite (a latency, a cost or a token count cannot be: a cost of -1 made a
    cost gate pass), or None. NaN reads as not measured, like an empty cell. Arrow's cast
    first, cell by cell only when it fails (it refuses some texts Python reads, e.g. " 0.8")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = None
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.replace_substring(column, ",", ".") if decimal == "," else column
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            numbers = pc.cast(text, pa.float64())
    elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
        numbers = pc.cast(column, pa.float64())
    if numbers is not None:
        # the extremes first (an aggregate: a comparison kernel here imported numpy, 40 MB and
        # 0.3 s of a million-item validation); the cells only when one is out of range
        extremes = pc.min_max(numbers).as_py()
        low, high = extremes["min"], extremes["max"]
        if low is None or math.isnan(low) or (low >= 0 and not math.isinf(high)):
            return None
    row = 0
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        for value in chunk.to_pylist():
            try:
                number = _as_number(value, decimal)
            except (TypeError, ValueError):
                return row, str(value), "not a number"
            if number is not None and (number < 0 or math.isinf(number)):
                return row, str(value), "infinite" if math.isinf(number) else "negative"
            row += 1
    return None


def column_at(table: Any, name: str) -> Any | None:
    """The column `name`, or the field a dotted path reaches in nested JSON: an OpenAI batch
    output's `response.body.choices.0.message.content` (a number is a list index; a list too
    short gives null); None when there is neither."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if name in table.column_names:
        return table[name]
    head, *path = name.split(".")
    if head not in table.column_names or not path:
        return None
    column = table[head]
    for part in path:
        kind = column.type
        if pa.types.is_struct(kind) and kind.get_field_index(part) >= 0:
            column = pc.struct_field(column, part)
        elif (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and part.isdigit():
            index = int(part)
            long_enough = pc.greater(pc.list_value_length(column), index)
            column = pc.list_element(pc.if_else(long_enough, column, pa.scalar(None, kind)), index)
        else:
            return None
    return column


def _kept_rows(table: Any, settings: ReplaySettings, task: str | None) -> Any:
    """The rows `where` keeps (and, for one task, `task_column`), compared as text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keep = [(column, str(value)) for column, value in settings.where.items()]
    if task is not None and settings.task_column:
        keep.append((settings.task_column, task))
    for column, value in keep:
        table = table.filter(pc.equal(pc.cast(column_at(table, column), pa.string()), value))
    return table


def _line_of_row(path: Path, row_number: int, delimiter: str = ",", skip_empty: bool = False) -> int:
    """The file line where CSV row `row_number` (1 = the header) starts, counting the line
    breaks inside quoted fields; blank lines are not rows (Arrow skips them), nor, with
    `skip_empty`, rows of empty fields (`_without_empty_rows` dropped them from the table)."""
    import csv

    allow_long_csv_fields()  # a long transcript before the bad row
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        start, number = 1, 0
        for fields in reader:
            if any(fields) or (fields and not skip_empty) or not number:
                number += 1
                if number == row_number:
                    return start
            start = reader.line_num + 1
    return start


@register_adapter("replay")
class Replay(Adapter):
    Settings = ReplaySettings
    settings: ReplaySettings
    modalities = frozenset({"text", "audio"})
    default_concurrency = 64
    cacheable = False
    sends_requests = False
    checks_items = True
    stored_answers = True
    batch_size = 256

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._index = _RowIndex([], None)
        self._columns: dict[str, Any] = {}
        self._spilled: Spilled | None = None
        self._batches = 0

    @classmethod
    def read_paths(cls, settings: Any, base_dir: Path) -> dict[str, Path]:
        paths = {"settings.path": resolve(base_dir, settings.path)}
        if settings.segments_file:  # a pattern is confined by its folder (each file must stay in it)
            pattern = resolve(base_dir, settings.segments_file)
            paths["settings.segments_file"] = pattern.parent if "{id}" in settings.segments_file else pattern
        if settings.speakers_file:
            paths["settings.speakers_file"] = resolve(base_dir, settings.speakers_file)
        return paths

    @classmethod
    def check(cls, settings: Any, base_dir: Path, file: str) -> list[Problem]:
        import pyarrow as pa

        path = resolve(base_dir, settings.path)
        if not path.is_file():
            return [Problem(file, "settings.path", "replay file not found", found=str(path))]
        try:
            spilled = read_table(path, settings.delimiter)
        except TableError as exc:
            return [Problem(str(path), "", f"cannot read replay file: {exc}", exc.line)]
        except Exception as exc:  # pyarrow's errors for JSONL and Parquet have several types
            return [Problem(str(path), "", f"cannot read replay file: {exc}")]
        table = spilled.table
        names = ", ".join(sorted(table.column_names))
        expected = f"one of: {names}" + (" (or a dotted path into their fields)" if any(
            pa.types.is_nested(f.type) for f in table.schema) else "")
        problems = cls._check_segment_files(settings, base_dir, file)
        for key in ("id_column", "output_column", "task_column", "latency_column", "cost_column",
                    "model_column", "tokens_in_column", "tokens_out_column", "segments_column",
                    "error_column"):
            column = getattr(settings, key)
            if column is not None and column_at(table, column) is None:
                problems.append(Problem(file, f"settings.{key}", "column not in the replay file",
                                        expected=expected, found=repr(column)))
        for column in settings.where:
            if column_at(table, column) is None:
                problems.append(Problem(file, f"settings.where.{column}", "column not in the replay file",
                                        expected=expected))
        for key in ("latency_column", "cost_column", "tokens_in_column", "tokens_out_column"):
            column = getattr(settings, key)
            values = column_at(table, column) if column is not None else None
            bad = _first_bad_amount(values, settings.decimal) if values is not None else None
            if bad is not None:  # found now, not as an error on every item of the run
                row, value, what = bad
                line = (_line_of_row(path, row + 2, settings.delimiter, skip_empty=True)
                        if path.suffix.lower() not in _PARQUET + _JSON else None)
                comma = settings.decimal == "." and "," in value
                problems.append(Problem(str(path), column, f"{what}: {value!r}", line,
                                        expected="a number, zero or more, such as " + (
                                            "0,8" if settings.decimal == "," else "0.8"),
                                        hint=f"decimal: ',' in {file}" if comma else None))
        spilled.drop_pages()
        return problems

    @classmethod
    def _check_segment_files(cls, settings: Any, base_dir: Path, file: str) -> list[Problem]:
        problems = []
        if settings.speakers_file and not settings.segments_file:
            problems.append(Problem(file, "settings.speakers_file", "speakers_file gives speakers to the words "
                                    "of a segments_file", expected="segments_file: words.ctm"))
        for key in ("segments_file", "speakers_file"):
            name = getattr(settings, key)
            if not name or "{id}" in name:
                continue
            path = resolve(base_dir, name)
            if not path.is_file():
                problems.append(Problem(file, f"settings.{key}", "file not found", found=str(path)))
                continue
            try:
                read_segments(path, None)
            except UnknownRecording:
                pass  # a file of several recordings: each item picks its own
            except SegmentError as exc:
                problems.append(Problem(str(path), "", f"cannot read {key}: {exc}", exc.line))
        return problems

    @classmethod
    def check_items(cls, settings: Any, base_dir: Path, file: str, task: str,
                    ids: Any) -> tuple[list[Problem], list[str]]:
        """Duplicated ids with different outputs are an error (which answer would count?);
        ids the dataset lacks, and items the file does not answer, are reported with counts.
        Computed on hashes and Arrow columns: a million-row export costs no Python object per row."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        from harness.arrowconv import booleans, string_array

        spilled = read_table(resolve(base_dir, settings.path), settings.delimiter)
        table = _kept_rows(spilled.table, settings, task)
        # The ids are compared as sorted 64-bit hashes (8 bytes a row, where Arrow's hash tables
        # over a million ids were the validation's peak). Repeats are confirmed on the ids
        # themselves; a missing or unknown count could only be off when two different ids share
        # a hash (odds below 1 in 10^7 at a million ids), and the run looks each id up exactly.
        id_col = pc.cast(column_at(table, settings.id_column), pa.string())
        hashes = key_hashes(id_col)
        spilled.drop_pages()
        hashes.sort()  # in place (np.unique's copy and hash table cost 40 MB at a million rows)
        first = np.empty(len(hashes), dtype=bool)
        first[:1] = True
        np.not_equal(hashes[1:], hashes[:-1], out=first[1:])
        distinct_hashes = hashes[first]
        shared = np.unique(hashes[1:][~first[1:]])  # the hashes of repeated rows: few
        del first, hashes
        distinct = len(distinct_hashes)
        conflicts = string_array([])
        if len(shared):  # repeated ids are few: whether their outputs differ is worked out in Python
            hashes = key_hashes(id_col)  # again, in row order: not held beside the sorted ones for a rare case
            rows = np.flatnonzero(np.isin(hashes, shared))
            outputs: dict[str, set[Any]] = {}
            for key, out in zip(take_rows(id_col, rows),
                                take_rows(pc.cast(column_at(table, settings.output_column), pa.string()), rows),
                                strict=True):
                outputs.setdefault(key, set()).add(out)
            distinct += len(outputs) - len(shared)  # two ids sharing a hash are two ids
            conflicts = string_array(sorted(k for k, v in outputs.items() if len(v) > 1))
            del hashes
        known = ids
        known_hashes = key_hashes(known)
        at = np.minimum(np.searchsorted(distinct_hashes, known_hashes), max(len(distinct_hashes) - 1, 0))
        answered_mask = distinct_hashes[at] == known_hashes if len(distinct_hashes) else np.zeros(len(known), bool)
        del at
        missing = known.filter(booleans(~answered_mask))
        # The dataset's ids are unique (validated), so the answered ids it holds number
        # len(known) - len(missing): the ids it lacks are sought only when there are some.
        unknown = answered = string_array([])
        if len(missing) == len(known):
            answered = pc.unique(id_col)
            unknown = answered.filter(pc.invert(pc.is_in(answered, value_set=known)))
        elif distinct > len(known) - len(missing):
            known_hashes.sort()
            at = np.minimum(np.searchsorted(known_hashes, distinct_hashes), len(known_hashes) - 1)
            strangers = distinct_hashes[known_hashes[at] != distinct_hashes]
            rows = np.flatnonzero(np.isin(key_hashes(id_col), strangers))
            unknown = pc.unique(string_array(take_rows(id_col, rows)))
        del known_hashes, distinct_hashes

        def examples(values: Any) -> str:
            shown = pc.sort_indices(values)[:5]
            return ", ".join(repr(v) for v in values.take(shown).to_pylist()) + (" …" if len(values) > 5 else "")

        problems, notes = [], []
        if len(missing) == len(known) and len(known):  # a run would only count every item missing
            found = (f"ids such as {examples(answered)}" if len(answered) else "no row"
                     + (f" whose {settings.task_column} is {task!r}" if settings.task_column else "")
                     + (" that `where` keeps" if settings.where else ""))
            problems.append(Problem(
                str(resolve(base_dir, settings.path)), settings.id_column,
                f"no item of task '{task}' has a row in the replay file", expected=f"ids such as {examples(known)}",
                found=found, hint=(f"the ids match {why}" if (why := _id_mismatch(answered, known)) else
                                   f"is {settings.id_column!r} the column of ids? The file's columns: "
                                   + ", ".join(table.column_names) + "; or, if the file answers other tasks, "
                                   f"pair {file} only with them (`tasks:` under it in the suite)")
                if len(answered) else None))
        elif len(unknown) and (why := _id_mismatch(unknown, known)) is not None:
            notes.append(f"some ids in the replay file match the dataset's only {why}")
        if len(conflicts):
            problems.append(Problem(
                str(resolve(base_dir, settings.path)), settings.id_column,
                f"{len(conflicts)} id(s) appear more than once with different outputs for task '{task}' "
                f"(e.g. {examples(conflicts)})",
                expected="one row per id, or `where` / `task_column` in " + file + " to tell the rows apart"))
        repeated = len(id_col) - distinct
        if repeated and not len(conflicts):
            notes.append(f"{repeated} repeated row(s) with identical outputs")
        if len(unknown):
            notes.append(f"{len(unknown)} id(s) in the replay file are not in the dataset (e.g. {examples(unknown)})")
        if len(missing):
            notes.append(f"{len(missing)} of {len(ids)} item(s) have no row in the replay file and will count as "
                         f"missing (e.g. {examples(missing)})")
        spilled.drop_pages()
        return problems, notes

    async def setup(self) -> None:
        """Index the export by (task, id) → row; the rows stay in Arrow columns, so a million
        answers cost their text once, not a Python object each. The last row of an id wins
        (validation refuses ids repeated with different outputs)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        s = self.settings
        self._spilled = read_table(resolve(self.base_dir, s.path), s.delimiter)
        table = _kept_rows(self._spilled.table, s, None)
        # chunked as read, not combined: a copy of every column (~35 MB at a million rows) for
        # look-ups that cost the same in the chunks
        ids = pc.cast(column_at(table, s.id_column), pa.string())
        tasks = pc.cast(column_at(table, s.task_column), pa.string()) if s.task_column else None
        self._index = _RowIndex(ids, tasks)
        self._columns = {name: column_at(table, column) for name, column in (
            ("output", s.output_column), ("latency", s.latency_column), ("cost", s.cost_column),
            ("model", s.model_column), ("tokens_in", s.tokens_in_column), ("tokens_out", s.tokens_out_column),
            ("segments", s.segments_column), ("error", s.error_column))
            if column is not None}
        self._spilled.drop_pages()

    async def close(self) -> None:
        """Let the export go before the scorecard reads the record back (at a million rows
        the table is ~100 MB)."""
        self._index = _RowIndex([], None)
        self._columns = {}
        self._spilled = None
        _read_table.cache_clear()

    def _task_of(self, request: Request) -> str | None:
        return request.task if self.settings.task_column else None

    async def generate(self, request: Request) -> Response:
        row = self._index.get(request.item_id, self._task_of(request))
        cells = {} if row is None else {name: column[row].as_py() for name, column in self._columns.items()}
        return self._response(request.item_id, row is not None, cells)

    async def generate_batch(self, requests: list[Request]) -> list[Response]:
        """The batch's rows found at once and their cells read column by column: a million-item
        run spent a third of its time in `generate`'s per-item look-ups."""
        import numpy as np

        rows = self._index.get_many([r.item_id for r in requests],
                                    [r.task for r in requests] if self.settings.task_column else None)
        found = np.array([row for row in rows if row is not None], np.int64)
        columns = {name: take_rows(column, found) for name, column in self._columns.items()}
        self._batches += 1
        if self._spilled is not None and self._batches % 64 == 0:  # the export's pages read since
            self._spilled.drop_pages()
        out, at = [], 0
        for request, row in zip(requests, rows, strict=True):
            if row is None:
                out.append(self._response(request.item_id, False, {}))
                continue
            out.append(self._response(request.item_id, True, {name: cells[at] for name, cells in columns.items()}))
            at += 1
        return out

    def _number(self, value: Any, cast: type) -> Any:
        number = _as_number(value, self.settings.decimal)
        return None if number is None else cast(number)

    def _response(self, item_id: str, found: bool, cells: dict[str, Any]) -> Response:
        """The answer from the cells of the item's row (`found` False: no row)."""
        error = cells.get("error")
        if error not in (None, ""):  # the system failed on this item: an error, not a missing answer
            return Response(error=f"{self.settings.error_column}: {error}")
        output = cells.get("output")
        if not found or output is None:
            return Response(missing=True)
        model = cells.get("model")
        return Response(output=str(output), latency_s=self._number(cells.get("latency"), float),
                        cost=self._number(cells.get("cost"), float), model_id=None if model is None else str(model),
                        tokens_in=self._number(cells.get("tokens_in"), int),
                        tokens_out=self._number(cells.get("tokens_out"), int),
                        segments=self._segments(item_id, cells.get("segments")))

    def _segments(self, item_id: str, value: Any) -> list[dict[str, Any]] | None:
        """The answer's segments from its column (`value`) or the segment file; an unreadable
        value is this item's error (raised), not the run's."""
        s = self.settings
        if value not in (None, ""):
            if isinstance(value, str) and not value.lstrip().startswith("["):
                raise AdapterError(f"{s.segments_column} of item {item_id!r} is not a JSON list of segments "
                                   "(files go in segments_file)", retryable=False)
            try:
                return [seg.to_dict() for seg in parse_segments(value, self.base_dir, item_id)]
            except SegmentError as exc:
                raise AdapterError(f"{s.segments_column} of item {item_id!r}: {exc}", retryable=False) from None
        if not s.segments_file:
            return None
        pattern = resolve(self.base_dir, s.segments_file)
        path = Path(str(pattern).replace("{id}", item_id)).resolve()
        if "{id}" in s.segments_file:
            if not path.is_relative_to(pattern.parent.resolve()):  # an id like "../x" must not leave the folder
                raise AdapterError(f"segment file for item {item_id!r} leaves {pattern.parent}", retryable=False)
            if not path.is_file():
                return None
        speakers = resolve(self.base_dir, s.speakers_file) if s.speakers_file else None
        try:
            return [seg.to_dict() for seg in read_segments(path, item_id, speakers)]
        except UnknownRecording:
            return None  # the file holds other recordings only
        except SegmentError as exc:
            raise AdapterError(f"segments of item {item_id!r}: {exc}", retryable=False) from None
