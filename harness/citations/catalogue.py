"""A local catalogue of works: CSV, JSONL, BibTeX, RIS and PubMed/MEDLINE XML files indexed
once into SQLite (FTS5 on titles) and reused while the files do not change."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

from harness.store import private_file

FIELDS = ("doi", "pmid", "pmcid", "url", "title", "journal", "year", "authors")
TITLE_MATCH = 90.0   # rapidfuzz token_sort_ratio on normalized titles


def norm_title(title: str | None) -> str:
    return re.sub(r"[^\w]+", " ", (title or "").lower()).strip()


def _record(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {k: (str(kw[k]).strip() if kw.get(k) not in (None, "") else None) for k in FIELDS}
    # identifiers stored in the form look-ups use, so that plain indexes serve them
    if rec["doi"]:
        rec["doi"] = rec["doi"].lower().removeprefix("https://doi.org/")
    if rec["url"]:
        rec["url"] = rec["url"].lower().rstrip("/")
    if rec["pmcid"]:
        rec["pmcid"] = rec["pmcid"].upper()
    if rec["year"]:
        m = re.search(r"(19|20)\d{2}", rec["year"])
        rec["year"] = int(m.group()) if m else None
    return rec


def _csv(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            yield _record(**row)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield _record(**json.loads(line))


@dataclass
class Unreadable:
    """An entry of a catalogue file that could not be read (its line, 1-based, and why)."""

    line: int
    reason: str


def _bibtex(path: Path) -> Iterator[dict[str, Any] | Unreadable]:
    """BibTeX through bibtexparser (nested braces, one-line entries, @string macros, LaTeX
    accents decoded); every block it cannot parse is reported with its line."""
    import bibtexparser
    from bibtexparser import middlewares

    library = bibtexparser.parse_string(path.read_text(encoding="utf-8"),
                                        append_middleware=[middlewares.LatexDecodingMiddleware()])
    for block in library.failed_blocks:
        first = (block.raw or "").strip().splitlines()[0][:60] if (block.raw or "").strip() else ""
        yield Unreadable((block.start_line or 0) + 1, f"BibTeX entry not parsed: {first!r}")
    for entry in library.entries:
        fields = {f.key.lower(): re.sub(r"[{}\s]+", " ", str(f.value)).strip() for f in entry.fields}
        yield _record(doi=fields.get("doi"), pmid=fields.get("pmid"), url=fields.get("url"),
                      title=fields.get("title"), journal=fields.get("journal") or fields.get("booktitle"),
                      year=fields.get("year"), authors=fields.get("author"))


_RIS_START = re.compile(r"^TY  -")


def _ris(path: Path) -> Iterator[dict[str, Any] | Unreadable]:
    """RIS through rispy, one entry at a time so that a damaged entry is reported with its line
    and the others are still read."""
    import rispy

    chunks: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if _RIS_START.match(line):
            chunks.append((lineno, []))
        if chunks:
            chunks[-1][1].append(line)
        elif line.strip():
            yield Unreadable(lineno, f"text outside any RIS entry: {line[:60]!r}")
    for lineno, lines in chunks:
        if not any(line.startswith("ER  -") for line in lines):
            yield Unreadable(lineno, "RIS entry without its closing 'ER  -' line")
            continue
        try:
            (entry,) = rispy.loads("\n".join(lines) + "\n", skip_unknown_tags=True, enforce_list_tags=False)
        except Exception as exc:  # rispy raises several types on a damaged entry
            yield Unreadable(lineno, f"RIS entry not parsed: {exc}")
            continue

        def get(*keys: str, e: dict[str, Any] = entry) -> Any:
            for key in keys:
                value = e.get(key)
                if isinstance(value, list):
                    value = value[0] if value else None
                if value not in (None, ""):
                    return value
            return None

        authors = entry.get("authors") or entry.get("first_authors") or []
        accession = str(get("accession_number") or "")
        yield _record(doi=get("doi"), url=get("urls", "url"), title=get("title", "primary_title"),
                      journal=get("journal_name", "alternate_title3", "secondary_title", "alternate_title1"),
                      year=get("year", "publication_year", "date"),
                      authors="; ".join(authors) if isinstance(authors, list) else authors,
                      pmid=accession if accession.isdigit() else None)


def _pubmed_xml(path: Path) -> Iterator[dict[str, Any]]:
    for _, elem in ET.iterparse(path, events=("end",)):
        if elem.tag != "PubmedArticle":
            continue
        ids = {a.get("IdType"): (a.text or "") for a in elem.iter("ArticleId")}
        year = elem.findtext(".//PubDate/Year") or elem.findtext(".//PubDate/MedlineDate")
        authors = "; ".join(f"{a.findtext('LastName') or ''} {a.findtext('Initials') or ''}".strip()
                            for a in elem.iter("Author"))
        yield _record(pmid=elem.findtext(".//PMID"), doi=ids.get("doi"), pmcid=ids.get("pmc"),
                      title="".join(elem.find(".//ArticleTitle").itertext()) if elem.find(".//ArticleTitle")
                      is not None else None, journal=elem.findtext(".//Journal/Title"), year=year, authors=authors)
        elem.clear()


READERS = {".csv": _csv, ".jsonl": _jsonl, ".bib": _bibtex, ".ris": _ris, ".xml": _pubmed_xml}


def read_entries(path: Path) -> Iterator[dict[str, Any] | Unreadable]:
    """Records of a catalogue file, and an `Unreadable` for each entry that could not be read."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{path}: unknown catalogue format (expected {', '.join(READERS)})")
    yield from reader(path)  # type: ignore[operator]


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records that could be read (see `read_entries` for the others)."""
    for entry in read_entries(path):
        if not isinstance(entry, Unreadable):
            yield entry


def survey(path: Path) -> tuple[int, list[Unreadable]]:
    """(entries read, entries that could not be read) of one catalogue file, for validation."""
    read, unreadable = 0, []
    try:
        for entry in read_entries(path):
            if isinstance(entry, Unreadable):
                unreadable.append(entry)
            else:
                read += 1
    except (ValueError, OSError, ET.ParseError) as exc:
        unreadable.append(Unreadable(getattr(exc, "lineno", None) or 1, f"file not readable: {exc}"))
    return read, unreadable


class Catalogue:
    """Indexed works from one or more files; rebuilt only when a file's content changes."""

    def __init__(self, files: list[Path], cache_dir: Path) -> None:
        digest = hashlib.sha256()
        for f in sorted(files):
            digest.update(f.name.encode())
            digest.update(hashlib.sha256(f.read_bytes()).digest())
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.path = cache_dir / f"catalogue-{digest.hexdigest()[:16]}.sqlite"
        fresh = not self.path.exists()
        self.db = sqlite3.connect(private_file(self.path), check_same_thread=False)
        if fresh:
            self._build(files)

    def _build(self, files: list[Path]) -> None:
        db = self.db
        db.executescript("""
            CREATE TABLE works (id INTEGER PRIMARY KEY, doi TEXT, pmid TEXT, pmcid TEXT, url TEXT, title TEXT,
                                journal TEXT, year INTEGER, authors TEXT, source TEXT);
            CREATE VIRTUAL TABLE works_fts USING fts5(title, content='works', content_rowid='id');
        """)
        for f in files:
            rows = ((r["doi"], r["pmid"], r["pmcid"], r["url"], r["title"], r["journal"], r["year"], r["authors"],
                     f.name) for r in read_records(f))
            db.executemany("INSERT INTO works (doi, pmid, pmcid, url, title, journal, year, authors, source) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.executescript("""
            INSERT INTO works_fts (rowid, title) SELECT id, title FROM works;
            CREATE INDEX works_doi ON works (doi); CREATE INDEX works_pmid ON works (pmid);
            CREATE INDEX works_pmcid ON works (pmcid); CREATE INDEX works_url ON works (url);
        """)
        db.commit()

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM works").fetchone()[0])

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        cur = self.db.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def by_identifier(self, kind: str, value: str) -> dict[str, Any] | None:
        value = value.lower().rstrip("/") if kind in ("doi", "url") else value.upper() if kind == "pmcid" else value
        if kind not in ("doi", "pmid", "pmcid", "url"):
            raise ValueError(kind)
        rows = self._rows(f"SELECT * FROM works WHERE {kind} = ? LIMIT 1", (value,))
        return rows[0] if rows else None

    def by_title(self, title: str) -> tuple[dict[str, Any] | None, float]:
        """The closest title (token_sort_ratio ≥ 90), via FTS5 candidates."""
        words = [w for w in norm_title(title).split() if len(w) > 3][:12]
        if not words:
            return None, 0.0
        sql = "SELECT works.* FROM works JOIN (SELECT rowid FROM works_fts WHERE works_fts MATCH ? {}) m " \
              "ON works.id = m.rowid"
        # every word first: few rows, no ranking needed (ranking costs ms per query); any word,
        # best-ranked first, when a title was misquoted
        rows = self._rows(sql.format("LIMIT 50"), (" ".join(f'"{w}"' for w in words),)) or \
            self._rows(sql.format("ORDER BY rank LIMIT 20"), (" OR ".join(f'"{w}"' for w in words),))
        target = norm_title(title)
        best, score = None, 0.0
        for r in rows:
            s = fuzz.token_sort_ratio(target, norm_title(r["title"]))
            if s > score:
                best, score = r, s
        return (best, score) if score >= TITLE_MATCH else (None, score)
