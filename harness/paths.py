"""Which local files a suite may read: the suite's folder tree and the roots it names.

Task files, datasets and adapter profiles often come from others. A path they name
(a dataset, an audio file, a replay export, a catalogue) could otherwise point at
`/etc/passwd` or `~/.ssh` and have it uploaded to a transcription endpoint. Paths are
resolved through symbolic links before the check, so a link inside the tree that points
outside it is refused too.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import Problem


class Roots:
    """The folders a suite's files may read from."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]

    def allows(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return any(real == r or real.is_relative_to(r) for r in self.roots)

    def problem(self, path: Path, file: str, field: str, line: int | None = None) -> Problem | None:
        """A Problem when `path` lies outside every root, else None."""
        if self.allows(path):
            return None
        return Problem(file, field, "path outside the suite's folder tree", line,
                       expected="a file under " + " or ".join(str(r) for r in self.roots)
                       + " (name other folders in the suite's `data_roots`)",
                       found=str(path))


def audio_problem(path: Path) -> str | None:
    """None when the file opens as audio and its first frame decodes, else why not."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return "no audio stream"
            for _ in container.decode(audio=0):
                return None
            return "no audio frame decodes"
    except (av.error.FFmpegError, OSError, ValueError) as exc:  # type: ignore[attr-defined]
        return f"does not decode as audio ({type(exc).__name__}: {exc})"
