"""Conversions between Python or NumPy values and Arrow arrays, through their buffers.

pyarrow's own conversions (`pa.array(list)`, `Array.to_numpy()`, `take` with NumPy indices)
import pandas on first use, to check for pandas objects: 0.2–0.4 s and ~50 MB on every
`harness run` that reads its record back. These do the same work on the buffers, without it
(a test holds a whole run to that)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_TYPES = {np.dtype(np.int64): pa.int64(), np.dtype(np.int32): pa.int32(), np.dtype(np.float64): pa.float64()}


def string_array(values: Sequence[str]) -> pa.Array:
    """A pyarrow string array holding `values` (no nulls); large_string past 2 GB of text."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    large = offsets[-1] >= 2**31
    return pa.Array.from_buffers(pa.large_string() if large else pa.string(), len(encoded), [
        None, pa.py_buffer(offsets if large else offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))])


def from_numpy(values: np.ndarray) -> pa.Array:
    """An int64, int32 or float64 NumPy array as an Arrow array (no nulls)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def booleans(mask: np.ndarray) -> pa.Array:
    """A NumPy bool array as an Arrow boolean array (one bit a row), for `filter`."""
    packed = np.packbits(np.ascontiguousarray(mask, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(packed)])


def valid(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which entries are not null, as a NumPy bool array."""
    array = _one(array)
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[array.offset:array.offset + len(array)].astype(bool)


def numbers(array: pa.Array | pa.ChunkedArray, dtype: type = np.float64) -> np.ndarray:
    """A numeric Arrow array's values as NumPy `dtype`; nulls are NaN for floats (garbage
    for integers: mask them with `valid`)."""
    array = _one(array)
    width = array.type.bit_width // 8
    raw = np.frombuffer(array.buffers()[1], dtype=f"<{'f' if pa.types.is_floating(array.type) else 'i'}{width}",
                        count=len(array), offset=array.offset * width)
    out: np.ndarray = raw.astype(dtype)  # a copy: the result outlives the Arrow buffer's owner safely
    if array.null_count and np.issubdtype(out.dtype, np.floating):
        out[~valid(array)] = np.nan
    return out


def scalar(value: str | int | float) -> pa.Scalar:
    """A Python value as an Arrow scalar, for compute functions (which convert a Python
    argument the pandas-importing way)."""
    if isinstance(value, str):
        return string_array([value])[0]
    return from_numpy(np.array([value], dtype=np.int64 if isinstance(value, int) else np.float64))[0]


def _one(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
