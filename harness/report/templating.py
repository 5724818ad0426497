"""The Jinja environment of the HTML reports (scorecard and committee), with each template's
compiled code kept between runs.

Compiling the scorecard's template costs 20-70 ms (by the day's machine speed) in every run,
cached or not, for a page the user is waiting for; loading its compiled code back costs
under 1 ms. Jinja's own `FileSystemBytecodeCache` keeps it, in the per-user folder Jinja
creates in the temporary directory and refuses to use unless it belongs to this user with
mode 0700 (no other account can plant code there). A template whose text changes is compiled
again (Jinja checks a checksum of the source); the file names also carry a key of what else
shapes the compiled code: the Jinja and harness versions and the source of this module and of
`inert_html` (the `finalize` applied to constant output at compile time). A cache that
cannot be used (no safe folder, a full or read-only disk) only costs the compile."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import jinja2

from harness import __version__
from harness.report import text
from harness.report.text import inert_html


class _BestEffortCache(jinja2.FileSystemBytecodeCache):
    """A bytecode file that cannot be read or written is compiled instead, never an error."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().load_bytecode(bucket)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _key() -> str:
    shaping = hashlib.sha256(f"{jinja2.__version__}|{__version__}|".encode())
    for source in (Path(__file__), Path(text.__file__)):
        with contextlib.suppress(OSError):
            shaping.update(source.read_bytes())
    return shaping.hexdigest()[:16]


def bytecode_cache() -> jinja2.BytecodeCache | None:
    """The cache of compiled templates, or None where no safe folder can hold it."""
    try:
        return _BestEffortCache(pattern=f"avec-harness-{_key()}-%s.cache")
    except (OSError, RuntimeError):  # Jinja raises RuntimeError for a folder it deems unsafe
        return None


#: both HTML reports: autoescaped, and every value written through `inert_html`
ENV = jinja2.Environment(loader=jinja2.PackageLoader("harness.report", "templates"),
                         autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True,
                         finalize=inert_html, bytecode_cache=bytecode_cache())
