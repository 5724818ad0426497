"""Per-item values of a run record, held column by column: what every figure, comparison and
report section is computed from.

scores.jsonl is streamed through Arrow's JSON reader, 64 KB blocks gathered into batches of
32,768 lines, and each task × adapter keeps its item ids and clusters (Arrow), repeats, and
one column per value that a metric or a section reads: one byte a line while the value is
0 or 1 (most are), eight from its first other number. The rows are then sorted by (item id,
repeat), so that a seeded bootstrap gives the same interval for the same record however it
was produced (concurrently, resumed, merged from shards). A million-line record reads this
way in about 3 s with a peak of ~45–50 MB above the interpreter (the record read whole into
one table peaked at 150 MB of Arrow memory alone; one pydantic object and a dozen Python
appends per line took 15 s). The columns are the `ScoreLine` model's (a test holds them to
it); a torn last line (a crash mid-write) is cut off before reading, and a file that does
not fit the columns goes through the model line by line, which reads it or names the line
that is wrong. Scorer details (free-form JSON) are read through the model, only for the
scorers whose report sections need them.
"""

from __future__ import annotations

import io
from array import array
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from harness.arrowconv import from_numpy, numbers, scalar, string_array, valid
from harness.record import ScoreLine, iter_lines
from harness.store import SCORES

#: values read by report sections whether or not a metric names them
SECTION_VALUES = ("latency_s", "ttft_s", "cost", "tokens_per_s", "energy_wh", "gwp_g")
#: ScoreLine's fields that every line must have (Arrow reads a missing one as null)
REQUIRED = ("task", "adapter", "item_id", "repeat", "status")
STATUSES = ("ok", "error", "missing")
KEY_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("task", pa.string()), ("adapter", pa.string()), ("item_id", pa.string()), ("repeat", pa.int64()),
    ("cluster", pa.string()), ("status", pa.string()), ("cached", pa.bool_()))
#: the JSON reader's block: its buffers grow with it (reading a million-line record and
#: dropping every batch peaked 85 MB higher with 1 MB blocks than with these, 0.3 s faster)
_BLOCK = 1 << 16
#: the largest block tried for a record with long lines, before the line-by-line read
_MAX_BLOCK = 1 << 26
#: lines gathered from several blocks into one batch: a batch costs ~0.2 ms of grouping and
#: conversions whatever its size (5,000 blocks of a million-line record: +1 s ungathered)
_ROWS = 1 << 15


def _widened(codes: np.ndarray) -> np.ndarray:
    """A 0/1 column held in bytes (-1: not recorded) as floats (NaN: not recorded)."""
    out = codes.astype(np.float64)
    out[codes < 0] = np.nan
    return out


@dataclass
class PairValues:
    """The values of one task × adapter, rows sorted by (item id, repeat); a value an item did
    not record (None, NaN, or absent) is NaN in what `column` and `metric` return. A column
    whose values are all 0 or 1 is held in one byte a row (-1 where not recorded)."""

    ids: pa.Array
    repeats: np.ndarray
    clusters: pa.Array | None
    columns: dict[str, np.ndarray]
    cached: int = 0
    #: scorer → (item id, repeat, details), for the scorers whose `summarize` reads them
    details: dict[str, list[tuple[str, int, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def empty(cls) -> PairValues:
        return cls(string_array([]), np.empty(0, dtype=np.int64), None, {})

    def __len__(self) -> int:
        return len(self.repeats)

    @cached_property
    def keys(self) -> list[tuple[str, int]]:
        """(item id, repeat) of every row; built on demand (a million tuples cost 100 MB)."""
        return list(zip(self.ids.to_pylist(), self.repeats.tolist(), strict=True))

    def column(self, name: str) -> np.ndarray:
        """Values of `name` for every row, NaN where an item did not record it."""
        col = self.columns.get(name)
        if col is None:
            return np.full(len(self), np.nan)
        return _widened(col) if col.dtype == np.int8 else col

    def stored(self, name: str) -> np.ndarray | None:
        """Values of `name` as held: one byte a row (-1: not recorded) for a 0/1 value, else
        float64 with NaN; None when no item recorded it (not a column of NaN: 8 bytes a row)."""
        return self.columns.get(name)

    def values_of(self, name: str) -> np.ndarray:
        """The values of `name` that items recorded, in key order, as a new float64 array (no
        array of their rows: 8 bytes a row more)."""
        col = self.columns.get(name)
        return np.empty(0) if col is None else col[recorded(col)].astype(np.float64, copy=False)

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Values of `name` that items recorded, and their rows, in key order."""
        col = self.columns.get(name)
        if col is None:
            return np.empty(0), np.empty(0, dtype=np.int64)
        rows = np.flatnonzero(recorded(col))
        return col[rows].astype(np.float64, copy=False), rows

    def cluster_ids(self, repeated: bool | None = None, rows: np.ndarray | None = None) -> np.ndarray | None:
        """Resampling unit of every row (of `rows`, when given): its cluster (else its item)
        when any of them has one; the item when repeats share it (`repeated`, by default
        whether any of these rows is a repeat); None when every row is its own unit."""
        if repeated is None:
            repeated = bool((self.repeats if rows is None else self.repeats[rows]).any())
        ids, clusters = self.ids, self.clusters
        if rows is not None:
            ids = ids.take(from_numpy(rows))
            clusters = clusters.take(from_numpy(rows)) if clusters is not None else None
        if clusters is not None and clusters.null_count < len(clusters):
            return np.array(pc.coalesce(clusters, ids).to_pylist(), dtype=object)
        if repeated:
            return np.array(ids.to_pylist(), dtype=object)
        return None

    def metric(self, spec: dict[str, Any]) -> np.ndarray:
        """One metric's per-row figures: (value, denominator) columns, the denominator 1 unless
        it is a ratio of two values; a corpus metric's k statistics. NaN where missing."""
        names = spec_values(spec)
        if spec["aggregation"] == "corpus":
            return np.column_stack([self.column(n) for n in names]) if names else np.empty((len(self), 0))
        den = self.column(names[1]) if len(names) > 1 else np.ones(len(self))
        return np.column_stack([self.column(names[0]), den])

    def recorded(self, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """A metric's figures (`metric`) on the rows that recorded every one of them, and those
        rows, in key order."""
        figures = self.metric(spec)
        rows = np.flatnonzero(~np.isnan(figures).any(axis=1)) if figures.shape[1] else np.empty(0, dtype=np.int64)
        return figures[rows], rows

    def key_array(self, with_repeat: bool) -> pa.Array:
        """One string per row naming its item (and repeat): the join key between two runs."""
        if not with_repeat:
            return self.ids
        repeats = pc.cast(from_numpy(self.repeats.astype(np.int64)), pa.string())
        return pc.binary_join_element_wise(self.ids, repeats, scalar("\x1f"))

    def label(self, row: int) -> str:
        """The item as reports name it: `id`, or `id#repeat` for a later repeat."""
        item, repeat = self.ids[row].as_py(), int(self.repeats[row])
        return f"{item}#{repeat}" if repeat else item


def recorded(column: np.ndarray) -> np.ndarray:
    """Which rows of a stored column (`PairValues.stored`) hold a value: -1 marks the others
    in a column of bytes, NaN in a float64 one."""
    return column >= 0 if column.dtype == np.int8 else ~np.isnan(column)


@dataclass
class Paired:
    """One metric on the items two systems (or runs) both scored: rows in each, and the
    per-row figures of each (`PairValues.metric`), aligned."""

    rows_a: np.ndarray
    rows_b: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def __len__(self) -> int:
        return len(self.rows_a)


def shared_rows(a: PairValues, b: PairValues) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the items (id and repeat) both hold, in key order: a hash join in Arrow, unless
    both hold the same items (two runs of one suite), which needs none."""
    if len(a) == len(b) and a.ids.equals(b.ids) and np.array_equal(a.repeats, b.repeats):
        every = np.arange(len(a))
        return every, every
    with_repeat = bool(a.repeats.any() or b.repeats.any())
    position = pc.index_in(a.key_array(with_repeat), value_set=b.key_array(with_repeat))
    return np.flatnonzero(valid(position)), numbers(position.drop_null(), np.int64)


def paired(a: PairValues, b: PairValues, spec: dict[str, Any],
           shared: tuple[np.ndarray, np.ndarray] | None = None) -> Paired:
    """A metric's figures on the items both `a` and `b` recorded it for."""
    rows_a, rows_b = shared if shared is not None else shared_rows(a, b)
    fa, fb = _rows(a.metric(spec), rows_a), _rows(b.metric(spec), rows_b)
    keep = ~(np.isnan(fa).any(axis=1) | np.isnan(fb).any(axis=1))
    if keep.all():  # the usual case, without copying a million-row array again
        return Paired(rows_a, rows_b, fa, fb)
    return Paired(rows_a[keep], rows_b[keep], fa[keep], fb[keep])


def _rows(figures: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """figures[rows], without a copy when `rows` is every row in order."""
    n = len(figures)
    if len(rows) == n and (n == 0 or (rows[0] == 0 and rows[-1] == n - 1 and bool(np.all(np.diff(rows) == 1)))):
        return figures
    return figures[rows]


def spec_values(spec: dict[str, Any]) -> list[str]:
    """The values a metric reads: a corpus metric's statistics; else its value, and its
    denominator when it is a ratio of two values."""
    if spec["aggregation"] == "corpus":
        return [f"{spec['value']}#{i}" for i in range(int(spec.get("statistics") or 0))]
    with_den = spec["aggregation"] == "ratio" and spec.get("denominator")
    return [spec["value"], *([spec["denominator"]] if with_den else [])]


def value_names(manifest: dict[str, Any]) -> list[str]:
    """Every value a metric of the run reads, and those the report sections read."""
    names = dict.fromkeys(SECTION_VALUES)
    for task in manifest["tasks"].values():
        for spec in task["metrics"]:
            names.update(dict.fromkeys(spec_values(spec)))
    return list(names)


class _Upto(io.RawIOBase):
    """The first `limit` bytes of a file: the record without a torn last line."""

    def __init__(self, fh: BinaryIO, limit: int) -> None:
        self.fh, self.left = fh, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        if n <= 0:
            return 0
        got = cast(io.BufferedReader, self.fh).readinto(memoryview(buffer)[:n]) or 0
        self.left -= got
        return got


def _complete_length(fh: BinaryIO) -> int:
    """Bytes up to and including the last newline."""
    end = fh.seek(0, io.SEEK_END)
    pos = end
    while pos > 0:
        step = min(pos, 1 << 16)
        fh.seek(pos - step)
        chunk = fh.read(step)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return pos - step + newline + 1
        pos -= step
    return 0


def _schema(names: list[str]) -> pa.Schema:
    fields = [pa.field(n, t) for n, t in KEY_COLUMNS]
    if names:
        fields.append(pa.field("values", pa.struct([pa.field(n, pa.float64()) for n in names])))
    return pa.schema(fields)


class _Unfit(Exception):
    """A line does not fit the columns: read the file through the model instead."""


def _gathered(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The batches, concatenated into batches of at least `rows` lines (the last one fewer)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += len(batch)
        if count >= rows:
            yield pa.concat_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.concat_batches(pending)


class _LongLine(Exception):
    """A line longer than the reader's block: read again with larger blocks."""


def _read_arrow(path: Path, names: list[str], block: int = _BLOCK) -> Iterator[pa.RecordBatch]:
    """The record's lines as batches of its columns, one block at a time; _Unfit when a line
    does not fit them. One thread, the file streamed: the whole record as one table peaked at
    150 MB for a million lines, most of it text columns and values nobody recorded."""
    schema = _schema(names)
    with path.open("rb") as fh:
        length = _complete_length(fh)
        if length == 0:
            return
        fh.seek(0)
        try:
            reader = pajson.open_json(
                io.BufferedReader(_Upto(fh, length), block),
                read_options=pajson.ReadOptions(block_size=block, use_threads=False),
                parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
            for batch in _gathered(reader, _ROWS):
                if any(batch[name].null_count for name in REQUIRED) or not set(
                        pc.unique(batch["status"]).to_pylist()) <= set(STATUSES):
                    raise _Unfit
                yield batch
        except pa.ArrowInvalid as exc:
            raise (_LongLine if "straddl" in str(exc) else _Unfit) from None
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise _Unfit from None


def _read_models(path: Path, names: list[str]) -> Iterator[pa.RecordBatch]:
    """The same columns, line by line through ScoreLine (which raises on a line that is wrong)."""
    cols: dict[str, list[Any]] = {n: [] for n, _ in KEY_COLUMNS}
    values: list[dict[str, Any]] = []
    for rec in iter_lines(path, ScoreLine):
        for n, _ in KEY_COLUMNS:
            cols[n].append(getattr(rec, n))
        values.append({n: rec.values.get(n) for n in names})
    data: dict[str, Any] = dict(cols)
    if names:
        data["values"] = values
    yield from pa.Table.from_pydict(data, schema=_schema(names)).to_batches()


class _Group:
    """One task × adapter's columns as the batches come: ids and clusters in Arrow chunks, the
    repeats and each value appended to one growing buffer (realloc'd in place, where a NumPy
    chunk per batch left a million-line record's heap fragmented: +80 MB of resident memory)."""

    def __init__(self, names: list[str]) -> None:
        self.ids: list[pa.Array] = []
        self.clusters: list[pa.Array] = []
        #: one byte a row while every repeat's number fits it (the usual: a few repeats, or one),
        #: four from the first that does not
        self.repeats = array("b")
        #: a value's buffer, None while no line recorded it (its NaNs are written when one does);
        #: one byte a row while every value is 0 or 1 (-1: not recorded), eight from the first other
        self.values: dict[str, array[Any] | None] = dict.fromkeys(names)
        self.cached = 0

    def add(self, batch: pa.RecordBatch) -> None:
        """Take the key columns and the flattened `values.*` of a batch of this group."""
        before = len(self.repeats)
        self.ids.append(batch["item_id"])
        cluster = batch["cluster"]
        if self.clusters or cluster.null_count < len(cluster):  # a column of nulls (4 bytes a row): only with a value
            if not self.clusters and before:  # the rows before had none
                self.clusters.append(pa.nulls(before, pa.string()))
            self.clusters.append(cluster)
        repeats = numbers(batch["repeat"], np.int32)
        if self.repeats.typecode == "b" and len(repeats) and int(repeats.max()) > np.iinfo(np.int8).max:
            self.repeats = array("i", np.frombuffer(self.repeats, dtype=np.int8).astype(np.int32).tobytes())
        self.repeats.frombytes(repeats.astype(np.int8 if self.repeats.typecode == "b" else np.int32).tobytes())
        self.cached += int(pc.sum(batch["cached"]).as_py() or 0)
        for name, buffer in self.values.items():
            child = batch[f"values.{name}"]
            if child.null_count == len(child) and buffer is None:
                continue
            # Arrow nulls become NaN, like a NaN recorded as such: both mean "not recorded"
            values = numbers(child)
            if buffer is None:
                buffer = self.values[name] = array("b", b"\xff" * before)
            if buffer.typecode == "b":
                missing = np.isnan(values)
                if bool(np.all(missing | (values == 0) | (values == 1))):
                    buffer.frombytes(np.where(missing, -1, values).astype(np.int8).tobytes())
                    continue
                buffer = self.values[name] = array("d", _widened(np.frombuffer(buffer, dtype=np.int8)).tobytes())
            buffer.frombytes(values.tobytes())

    def finish(self) -> PairValues:
        """The columns sorted by (item id, repeat); each buffer released once copied in that
        order, so that a million-item record never holds two copies of its values. Repeats
        are kept in the narrowest integer that holds them, and sorted on only when some item
        has several; the sort order is held in 32 bits (Arrow's 64-bit indices cost 4 bytes a
        row more while the ids are copied in order); a value that is the same on every row
        is held in no bytes at all (a read-only view of one)."""
        ids = pa.chunked_array(self.ids, pa.string()).combine_chunks()
        self.ids = []
        repeats = _narrowest(np.frombuffer(self.repeats, dtype=np.int8 if self.repeats.typecode == "b" else np.int32))
        self.repeats = array("b")
        if repeats.any():
            order = pc.sort_indices(pa.table({"item_id": ids, "repeat": from_numpy(repeats.astype(np.int64))}),
                                    sort_keys=[("item_id", "ascending"), ("repeat", "ascending")])
        else:
            order = pc.sort_indices(ids)
        # a row's number fits 32 bits (a record of 2**31 lines would not fit in memory anyway)
        rows = np.frombuffer(order.buffers()[1], dtype=np.int64, count=len(order),
                             offset=order.offset * 8).astype(np.int32)
        del order
        take = from_numpy(rows)
        sorted_ids = ids.take(take)
        del ids
        clusters = pa.chunked_array(self.clusters, pa.string()).combine_chunks() if self.clusters else None
        self.clusters = []
        columns = {}
        for name in list(self.values):
            buffer = self.values.pop(name)
            if buffer is not None:
                held = np.frombuffer(buffer, dtype=np.int8 if buffer.typecode == "b" else np.float64)
                columns[name] = _in_order(held, rows)
                del held
            del buffer
        return PairValues(ids=sorted_ids, repeats=_in_order(repeats, rows),
                          clusters=clusters.take(take) if clusters is not None else None,
                          columns=columns, cached=self.cached)


def _in_order(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """values[rows]; a read-only view of one value when every row holds the same (a million-row
    record's columns of 0: an error rate, a scoring-error rate)."""
    if len(values) and not (values != values[0]).any():  # (a NaN differs from itself: copied)
        return np.broadcast_to(values[:1].copy(), values.shape)
    return values[rows]


def _narrowest(values: np.ndarray) -> np.ndarray:
    """`values` (small non-negative integers) in the narrowest signed type that holds them (the
    same array when it is already)."""
    top = int(values.max()) if len(values) else 0
    for kind in (np.int8, np.int16):
        if top <= np.iinfo(kind).max:
            return values.astype(kind, copy=False)
    return values


def _collect(batches: Iterator[pa.RecordBatch], names: list[str]) -> dict[tuple[str, str], PairValues]:
    """Each task × adapter's sorted columns, from batches of record lines."""
    groups: dict[tuple[str, str], _Group] = {}
    for batch in batches:
        flat = batch.drop_columns(["status"])
        if names:
            flat = flat.drop_columns(["values"])
            for name, child in zip(names, batch["values"].flatten(), strict=True):
                flat = flat.append_column(f"values.{name}", child)
        task, adapter = batch["task"], batch["adapter"]
        if pc.count_distinct(task).as_py() == 1 and pc.count_distinct(adapter).as_py() == 1:
            parts = [((task[0].as_py(), adapter[0].as_py()), flat)]  # the usual batch: one group, no copy
        else:
            key = pc.binary_join_element_wise(task, adapter, scalar("\x1f"))
            parts = []
            for value in pc.unique(key):
                first = pc.index(key, value).as_py()
                parts.append(((task[first].as_py(), adapter[first].as_py()), flat.filter(pc.equal(key, value))))
        for group, part in parts:
            if group not in groups:
                groups[group] = _Group(names)
            groups[group].add(part)
    from harness.heap import release_freed_memory

    release_freed_memory(sum(len(g.repeats) for g in groups.values()))  # the reader's blocks, before the sorts
    out = {}
    while groups:
        group = next(iter(groups))
        out[group] = groups.pop(group).finish()
    return out


def load_values(run_dir: Path, names: list[str], summarizing: frozenset[str] = frozenset()
                ) -> dict[tuple[str, str], PairValues]:
    """Every task × adapter's values `names`, in one read of scores.jsonl; the details of the
    `summarizing` scorers are kept for their report sections."""
    path = Path(run_dir) / SCORES
    if not path.exists():
        return {}
    names = list(dict.fromkeys(names))
    block = _BLOCK
    while True:
        try:
            out = _collect(_read_arrow(path, names, block), names)
            break
        except _LongLine:  # a long line (a consultation's findings): blocks that hold it
            block *= 16
            if block <= _MAX_BLOCK:
                continue
            out = _collect(_read_models(path, names), names)
            break
        except _Unfit:
            out = _collect(_read_models(path, names), names)
            break
    if summarizing:
        _add_details(path, out, summarizing)
    return out


def warm_reader() -> None:
    """Make the reader's first Arrow calls (JSON reader, sort, join: ~30 ms the first time) on a
    two-line record in memory, so that the scorecard after a run does not wait for them."""
    lines = b'{"task":"t","adapter":"a","item_id":"i","repeat":0,"status":"ok","values":{"v":1}}\n' * 2
    # in a buffer of Arrow's own, not a Python object: the reader's read-ahead is released on
    # Arrow's I/O thread, and one releasing a Python buffer while the interpreter exits aborts
    # the process ("terminate called without an active exception": a run stopped by SIGTERM)
    buffer = pa.allocate_buffer(len(lines))
    np.frombuffer(buffer, dtype=np.uint8)[:] = np.frombuffer(lines, dtype=np.uint8)
    reader = pajson.open_json(pa.BufferReader(buffer), read_options=pajson.ReadOptions(use_threads=False),
                              parse_options=pajson.ParseOptions(explicit_schema=_schema(["v"]),
                                                                unexpected_field_behavior="ignore"))
    for pv in _collect(iter(reader), ["v"]).values():
        shared_rows(pv, PairValues(pv.ids, pv.repeats + 1, None, {}))


def _add_details(path: Path, pairs: dict[tuple[str, str], PairValues], summarizing: frozenset[str]) -> None:
    for rec in iter_lines(path, ScoreLine):
        pv = pairs.get((rec.task, rec.adapter))
        if pv is None:
            continue
        for scorer in summarizing.intersection(rec.details):
            d = rec.details[scorer]
            if isinstance(d, dict) and "error" not in d:
                pv.details[scorer].append((rec.item_id, rec.repeat, d))
