"""Timed, speaker-labelled pieces of a transcript, read from the files corpora ship.

Formats: Praat TextGrid (one interval tier per speaker, read with `praatio`), NIST STM
(reference segments with speakers), CTM (timed words, speakers from an RTTM file when given),
RTTM (speaker turns, no words) and JSON ({start, end, text, speaker} lists, or an object with
`segments` as Whisper writes it). STM, CTM and RTTM hold many recordings, told apart by their
first column: a recording is picked by the item's id, or by `file.stm#recording`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SEGMENT_SUFFIXES = {".textgrid": "textgrid", ".stm": "stm", ".ctm": "ctm", ".rttm": "rttm", ".json": "json"}
#: NIST convention: an STM segment with this text is not scored
_IGNORED = "ignore_time_segment_in_scoring"


class SegmentError(ValueError):
    """A segment file or value that cannot be read; `line` where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class UnknownRecording(SegmentError):
    """A multi-recording file without the recording asked for."""


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    speaker: str | None = None
    start: float | None = None
    end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "speaker": self.speaker}


def from_dicts(values: Iterable[Any], where: str = "segments") -> list[Segment]:
    """Segments from JSON-like dicts ({text, speaker?, start?, end?}); raises SegmentError."""
    out = []
    for i, value in enumerate(values):
        if not isinstance(value, dict) or not isinstance(value.get("text", None), str):
            raise SegmentError(f"{where}[{i}]: expected an object with a 'text' string, found {value!r:.80}")
        speaker = value.get("speaker")
        out.append(Segment(value["text"], None if speaker is None else str(speaker),
                           _time(value.get("start"), where, i), _time(value.get("end"), where, i)))
    return out


def _time(value: Any, where: str, i: int) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SegmentError(f"{where}[{i}]: time {value!r} is not a number") from None


def in_order(segments: list[Segment]) -> list[Segment]:
    """Segments by start time (untimed ones keep their place at the end); stable."""
    if all(s.start is not None for s in segments):
        return sorted(segments, key=lambda s: s.start or 0.0)
    return segments


def text_of(segments: list[Segment]) -> str:
    """The transcript the segments make, in time order."""
    return " ".join(s.text for s in in_order(segments) if s.text)


def read_file(path: Path, recording: str | None = None, speakers: Path | None = None) -> list[Segment]:
    """The segments of one recording in `path` (any format above). `recording` picks a
    recording of a multi-recording file; it may be omitted when the file holds only one.
    `speakers`: an RTTM file whose turns give speakers to the words of a CTM file."""
    recordings = _read_cached(str(path), _stamp(path))
    if speakers is not None:
        turns = _read_cached(str(speakers), _stamp(speakers))
        recordings = {key: _assign_speakers(words, turns.get(key, [])) for key, words in recordings.items()}
    if recording is not None and recording in recordings:
        return recordings[recording]
    if recording is not None and len(recordings) != 1:
        raise UnknownRecording(f"recording {recording!r} not in {path.name}"
                           f" (it holds {', '.join(sorted(recordings)[:5])}{' …' if len(recordings) > 5 else ''})")
    if not recordings:
        return []
    return next(iter(recordings.values()))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@lru_cache(maxsize=8)
def _read_cached(name: str, stamp: tuple[int, int]) -> dict[str, list[Segment]]:
    path = Path(name)
    fmt = SEGMENT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise SegmentError(f"unknown segment format {path.suffix!r}; expected one of "
                           + ", ".join(sorted(SEGMENT_SUFFIXES)))
    if fmt == "textgrid":
        return {"": _textgrid(path)}
    if fmt == "json":
        return {"": _json(path)}
    return _columns(path, fmt)


def _textgrid(path: Path) -> list[Segment]:
    from praatio import textgrid
    from praatio.utilities.errors import PraatioException

    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except (PraatioException, ValueError, IndexError) as exc:
        raise SegmentError(f"not a readable TextGrid: {exc}") from None
    out: list[Segment] = []
    for name in grid.tierNames:
        tier = grid.getTier(name)
        if tier.tierType != textgrid.INTERVAL_TIER:
            continue  # point tiers mark events, not speech
        out.extend(Segment(label.strip(), name, float(start), float(end))
                   for start, end, label in tier.entries if label.strip())
    return in_order(out)


def _json(path: Path) -> list[Segment]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegmentError(f"not valid JSON: {exc}", getattr(exc, "lineno", None)) from None
    if isinstance(data, dict):
        data = data.get("segments")
    if not isinstance(data, list):
        raise SegmentError("expected a list of segments, or an object with a 'segments' list")
    return in_order(from_dicts(data, path.name))


def _columns(path: Path, fmt: str) -> dict[str, list[Segment]]:
    """STM, CTM and RTTM: whitespace-separated columns, `;;` comments."""
    out: dict[str, list[Segment]] = {}
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # an export from a tool set to latin-1
        raise SegmentError(f"not valid UTF-8 (byte {exc.object[exc.start]:#04x}): save the file as UTF-8",
                           exc.object[:exc.start].count(b"\n") + 1) from None
    for lineno, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue
        try:
            key, segment = _parse(fmt, fields)
        except (ValueError, IndexError):
            raise SegmentError(f"malformed {fmt.upper()} line: {line.strip()!r:.120}", lineno) from None
        if segment is not None:
            out.setdefault(key, []).append(segment)
    return {key: in_order(segments) for key, segments in out.items()}


def _parse(fmt: str, f: list[str]) -> tuple[str, Segment | None]:
    if fmt == "stm":  # file channel speaker start end [<labels>] words...
        words = f[5:]
        if words and words[0].startswith("<"):
            words = words[1:]
        text = " ".join(words)
        if text.lower() == _IGNORED:
            return f[0], None
        return f[0], Segment(text, f[2], float(f[3]), float(f[4]))
    if fmt == "ctm":  # file channel start duration word [confidence]
        start = float(f[2])
        return f[0], Segment(f[4], None, start, round(start + float(f[3]), 3))
    # RTTM: SPEAKER file channel start duration <NA> <NA> speaker <NA> <NA>
    if f[0] != "SPEAKER":
        return f[1], None
    start = float(f[3])
    return f[1], Segment("", f[7], start, round(start + float(f[4]), 3))


def _assign_speakers(words: list[Segment], turns: list[Segment]) -> list[Segment]:
    """Each CTM word gets the speaker of the RTTM turn that holds its midpoint (the nearest
    turn when none does); consecutive words of one speaker make one segment."""
    import bisect

    turns = sorted(turns, key=lambda t: t.start or 0.0)
    starts = [t.start or 0.0 for t in turns]
    out: list[Segment] = []
    for word in words:
        mid = ((word.start or 0.0) + (word.end or 0.0)) / 2
        speaker = None
        if turns:
            i = bisect.bisect_right(starts, mid)
            near = turns[max(0, i - 2):i + 1]  # the turn starting before the midpoint, and its neighbours
            turn = min(near, key=lambda t: 0.0 if (t.start or 0) <= mid <= (t.end or 0)
                       else min(abs(mid - (t.start or 0)), abs(mid - (t.end or 0))))
            speaker = turn.speaker
        if out and out[-1].speaker == speaker:
            last = out[-1]
            out[-1] = Segment(f"{last.text} {word.text}", speaker, last.start, word.end)
        else:
            out.append(Segment(word.text, speaker, word.start, word.end))
    return out


def parse_value(value: Any, base_dir: Path, item_id: str,
                allows: Callable[[Path], bool] | None = None) -> list[Segment]:
    """An item's or an export row's segments: a list of dicts, a JSON string of one (CSV
    exports), or a file path relative to `base_dir` (`file.stm#recording`, `{id}` replaced by
    the item id). A path that `allows` refuses is an error before anything is read."""
    if isinstance(value, list):
        return from_dicts(value)
    if not isinstance(value, str) or not value.strip():
        raise SegmentError(f"expected a list of segments or a file path, found {value!r:.80}")
    text = value.strip()
    if text.startswith("["):
        try:
            return from_dicts(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SegmentError(f"segments are not valid JSON: {exc}") from None
    name, _, recording = text.replace("{id}", item_id).partition("#")
    path = (base_dir / name).resolve()
    if allows is not None and not allows(path):
        raise SegmentError(f"segment file {path} lies outside the suite's folder tree "
                           "(name other folders in the suite's `data_roots`)")
    if not path.is_file():
        raise SegmentError(f"segment file not found: {path}")
    return read_file(path, recording or item_id)
