"""Errors the CLI turns into exit codes, and the wording of configuration errors."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Problem:
    """One thing wrong with the user's input: where it is, what was expected, what was found."""

    file: str
    field: str
    message: str
    line: int | None = None
    expected: str | None = None
    found: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        if self.expected is not None:
            text += f"; expected {self.expected}"
        if self.found is not None:
            text += f", found {self.found}"
        if self.hint:
            text += f" ({self.hint})"
        return text


def not_utf8(path: object, exc: UnicodeDecodeError, line: int | None = None, *, whole: bool = False,
             what: str = "text") -> Problem:
    """The problem of a file that is not UTF-8, naming the byte and its line: given, counted
    when `exc` came from decoding the `whole` file, else found by reading the file again line
    by line (a streamed read knows only its chunk; this is the error path)."""
    if line is None and whole:
        line = exc.object.count(b"\n", 0, exc.start) + 1
    elif line is None:
        with contextlib.suppress(OSError), open(str(path), "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    line = number
                    break
    return Problem(str(path), "", "not valid UTF-8", line, expected=f"a UTF-8 {what} file",
                   found=f"byte {exc.object[exc.start]:#04x}",
                   hint="save it as UTF-8: Excel's 'CSV UTF-8'" if what == "CSV" else None)


@dataclass
class ConfigError(Exception):
    """Bad user input. Raised before any model is called; the CLI exits 2."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f"error: {p}" for p in self.problems)


class RunIncomplete(Exception):
    """The run could not complete (adapter could not start, interrupted). The CLI exits 3."""


class RecordError(ValueError):
    """A run record file that does not follow its model, or a format this harness cannot read.
    The CLI exits 2."""


class AdapterError(Exception):
    """A request failed. `retryable` tells the retry policy whether another attempt may help."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean' hint for a typo, or None when nothing is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
