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
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz

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


_BIB_ENTRY = re.compile(r"@\w+\s*\{\s*[^,]*,(?P<body>.*?)\n\}", re.DOTALL)
_BIB_FIELD = re.compile(r"(\w+)\s*=\s*(\{(?:[^{}]|\{[^{}]*\})*\}|\"[^\"]*\"|\d+)", re.DOTALL)


def _bibtex(path: Path) -> Iterator[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    for entry in _BIB_ENTRY.finditer(text):
        fields = {k.lower(): re.sub(r"[{}\s]+", " ", v.strip('{}"')).strip()
                  for k, v in _BIB_FIELD.findall(entry.group("body"))}
        yield _record(doi=fields.get("doi"), pmid=fields.get("pmid"), url=fields.get("url"),
                      title=fields.get("title"), journal=fields.get("journal") or fields.get("booktitle"),
                      year=fields.get("year"), authors=fields.get("author"))


def _ris(path: Path) -> Iterator[dict[str, Any]]:
    current: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Z][A-Z0-9])  - ?(.*)$", line)
        if not m:
            continue
        tag, value = m.group(1), m.group(2).strip()
        if tag == "ER":
            def get(*tags: str, fields: dict[str, list[str]] = current) -> str | None:
                return next((fields[t][0] for t in tags if t in fields), None)

            yield _record(doi=get("DO"), url=get("UR"), title=get("TI", "T1"), journal=get("JO", "JF", "T2"),
                          year=get("PY", "Y1", "DA"), authors="; ".join(current.get("AU", [])),
                          pmid=get("AN") if (get("AN") or "").isdigit() else None)
            current = {}
        else:
            current.setdefault(tag, []).append(value)


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


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{path}: unknown catalogue format (expected {', '.join(READERS)})")
    yield from reader(path)


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
        self.db = sqlite3.connect(self.path, check_same_thread=False)
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
