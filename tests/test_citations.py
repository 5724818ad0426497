"""Issue 6: citation extraction, catalogues, guideline registry, online resolvers against a
local fake server, verdicts, and the bundled example."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from conftest import ROOT, run_cli, write_yaml

from harness.citations.catalogue import Catalogue
from harness.citations.evaluate import evaluate
from harness.citations.extract import extract_citations
from harness.citations.guidelines import Registry
from harness.citations.online import NCBI, Crossref, DoiOrg, HTTPCache
from harness.citations.verify import Verifier
from harness.testing.openai_server import send_endless

EXAMPLE = ROOT / "tasks" / "health-citations-en"


def test_extraction_precision_recall_on_annotated_answers() -> None:
    tp, fp, fn, errors = evaluate()
    assert tp + fn >= 150
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"citation extraction: P {precision:.3f} R {recall:.3f} over {tp + fn} references")
    assert precision >= 0.95 and recall >= 0.95, errors


def test_extraction_of_each_form() -> None:
    text = """Inline: doi 10.1056/NEJMoa1511939, PMID: 26551272 and PMC1234567.
References:
1. Birks JS, Harvey RJ. Donepezil for dementia due to Alzheimer's disease. Cochrane Database Syst Rev. 2018;6:CD001190.
2. Smith A, Jones B (2019). A trial of imaginary drugs in heart failure. Journal of Invented Cardiology, 12(3), 45-52.
3. Haute Autorité de santé. Maladie d'Alzheimer et maladies apparentées : diagnostic et prise en charge. 2011.
4. https://www.has-sante.fr/jcms/c_2836416/fr/some-page"""
    cites = extract_citations(text)
    assert [c.kind for c in cites] == ["doi", "pmid", "pmcid", "reference", "reference", "reference", "url"]
    vancouver, apa, report = cites[3], cites[4], cites[5]
    assert (vancouver.year, vancouver.journal, vancouver.pages) == (2018, "Cochrane Database Syst Rev", "CD001190")
    assert (apa.authors, apa.year, apa.pages) == ("Smith A, Jones B", 2019, "45-52")
    assert report.authors == "Haute Autorité de santé" and report.year == 2011


def _catalogue(tmp_path: Path) -> Catalogue:
    return Catalogue(sorted((EXAMPLE / "catalogue").iterdir()), tmp_path / "cache")


def test_catalogue_formats_and_reuse(tmp_path: Path) -> None:
    cat = _catalogue(tmp_path)
    assert cat.count() == 5  # CSV 2, BibTeX 1, RIS 1, PubMed XML 1
    def found(kind: str, identifier: str) -> dict[str, Any]:
        record = cat.by_identifier(kind, identifier)
        assert record is not None, identifier
        return record

    assert found("doi", "10.1056/nejmoa2021436")["journal"] == "N Engl J Med"  # from BibTeX
    assert found("pmid", "31535829")["title"].startswith("Dapagliflozin")  # from RIS
    assert found("pmid", "26378978")["year"] == 2015  # from PubMed XML
    record, score = cat.by_title("A randomised trial of intensive vs standard blood pressure control")
    assert record is None or score >= 90
    record, score = cat.by_title("Empagliflozin, cardiovascular outcomes and mortality in type 2 diabetes")
    assert record is not None and record["pmid"] == "26378978"
    built = cat.path.stat().st_mtime
    again = _catalogue(tmp_path)
    assert again.path == cat.path and again.path.stat().st_mtime == built


def test_registry_outdated_with_successor() -> None:
    reg = Registry(EXAMPLE / "guidelines.yaml")
    g = reg.match("Maladie d'Alzheimer et maladies apparentées: diagnostic et prise en charge", None, None)
    assert g is not None and g.id == "has-alzheimer-2011"
    reason = reg.outdated_reason(g)
    assert reason is not None
    assert "withdrawn in 2018-05" in reason and "Guide parcours de soins" in reason and "acetylcholinesterase" in reason
    assert reg.outdated_reason(reg.by_id["esc-hf-2021"]) is None


def test_bundled_example_verdicts_match_its_answers(tmp_path: Path) -> None:
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "citations", "tasks": [str(EXAMPLE / "task.yaml")],
        "adapters": [str(ROOT / "adapters" / "health-assistant-replay.yaml")], "data_roots": [str(ROOT)]})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    expected = json.loads((EXAMPLE / "expected_verdicts.json").read_text(encoding="utf-8"))
    for line in (tmp_path / "run" / "scores.jsonl").read_text().splitlines():
        rec = json.loads(line)
        got = [[_key(v), v["status"], v.get("outdated", False)] for v in rec["details"]["citations"]["verdicts"]]
        assert got == expected[rec["item_id"]], rec["item_id"]
        for v in rec["details"]["citations"]["verdicts"]:
            assert v["reason"]
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    report = (tmp_path / "run" / "scorecard.md").read_text(encoding="utf-8")
    assert "## Cited sources (HAS 2.5) — health-citations-en × health-assistant" in report
    assert "| cit-03 | Hydroxychloroquine in hospitalized patients with Covid-19 | mismatched |" in report
    assert "HAS 2011 guideline withdrawn in 2018-05" in report
    assert rows["fabricated_rate"]["value"] == pytest.approx(2 / 11)
    assert rows["mismatched_rate"]["value"] == pytest.approx(2 / 11)
    assert rows["answers_without_citation"]["value"] == pytest.approx(1 / 8)


def _key(v: dict) -> str:
    for kind in ("doi", "pmid", "pmcid", "url"):
        if v.get(kind):
            return f"{kind}:{v[kind].lower()}"
    return "title:" + v.get("title", "").lower()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hanging up on the endless body is the point


class FakeScholarly:
    """Crossref, E-utilities and doi.org handle API, as far as the resolvers use them."""

    TITLE = "A Randomized Trial of Intensive versus Standard Blood-Pressure Control"
    WORKS: ClassVar[dict[str, dict]] = {"10.1056/nejmoa1511939": {
        "title": [TITLE], "container-title": ["New England Journal of Medicine"],
        "issued": {"date-parts": [[2015, 11, 26]]}}}
    PUBMED: ClassVar[dict[str, dict]] = {"26551272": {
        "title": TITLE + ".", "fulljournalname": "The New England journal of medicine", "pubdate": "2015 Nov 26"}}

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fake.requests.append((self.path, self.headers.get("User-Agent", "")))
                url = urlparse(self.path)
                status, body = 404, dict[str, Any]()
                if url.path.startswith("/crossref/works/"):
                    doi = unquote(url.path.removeprefix("/crossref/works/")).lower()
                    if doi in fake.WORKS:
                        status, body = 200, {"status": "ok", "message": fake.WORKS[doi]}
                elif url.path == "/ncbi/esummary.fcgi":
                    pmid = parse_qs(url.query)["id"][0]
                    status = 200
                    body = {"result": {pmid: fake.PUBMED.get(pmid, {"error": "cannot get document summary"})}}
                elif url.path.startswith("/doi/api/handles/"):
                    doi = unquote(url.path.removeprefix("/doi/api/handles/")).lower()
                    status, body = (200, {"responseCode": 1}) if doi in fake.WORKS else (404, {"responseCode": 100})
                elif url.path.startswith("/odd/"):  # JSON, but not of the shape the services document
                    status, body = 200, {"message": "busy", "result": ["x"], "responseCode": [1]}
                elif url.path.startswith("/portal/"):  # a proxy's or a captive portal's page, with a 200
                    data = b"<html><body>Sign in to continue</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                elif url.path.startswith("/endless/"):
                    send_endless(self, b'{"message": "')
                    return
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def scholarly() -> Iterator[FakeScholarly]:
    fake = FakeScholarly()
    yield fake
    fake.httpd.shutdown()


def test_online_resolvers_against_local_fake(scholarly: FakeScholarly, tmp_path: Path) -> None:
    cache = HTTPCache(tmp_path / "http.sqlite")
    crossref = Crossref(f"{scholarly.base}/crossref", "evaluation@example.org", cache, 50)
    ncbi = NCBI(f"{scholarly.base}/ncbi", "evaluation@example.org", cache, 50)
    doi = DoiOrg(f"{scholarly.base}/doi", "evaluation@example.org", cache, 50)
    status, found = crossref.lookup("doi", "10.1056/NEJMoa1511939")
    assert status == "found" and found is not None and found["year"] == 2015
    assert crossref.lookup("doi", "10.9999/invented.1")[0] == "not_found"
    status, found = ncbi.lookup("pmid", "26551272")
    assert status == "found" and found is not None and found["journal"].startswith("The New England")
    assert ncbi.lookup("pmid", "99999999")[0] == "not_found"
    assert doi.lookup("doi", "10.1056/nejmoa1511939")[0] == "found"
    assert doi.lookup("doi", "10.9999/invented.1")[0] == "not_found"
    n = len(scholarly.requests)
    crossref.lookup("doi", "10.1056/NEJMoa1511939")
    assert len(scholarly.requests) == n, "a cached answer was fetched again"
    assert all("avec-harness" in ua and "mailto:evaluation@example.org" in ua for _, ua in scholarly.requests)
    assert any("mailto=evaluation%40example.org" in path for path, _ in scholarly.requests)
    assert any("email=evaluation%40example.org" in path and "tool=avec-harness" in path
               for path, _ in scholarly.requests)

    verifier = Verifier(online=[crossref, ncbi, doi], as_of=dt.date(2026, 11, 1))
    real, fake_title, fabricated, url = extract_citations(
        "References:\n"
        "1. SPRINT Research Group. A randomized trial of intensive versus standard blood-pressure control. "
        "N Engl J Med. 2015;373(22):2103-2116. doi:10.1056/NEJMoa1511939\n"
        "2. Doe J. Statins cure everything. Lancet. 2015;373:1-2. doi:10.1056/NEJMoa1511939\n"
        "3. Roe R. Imaginary trial. BMJ. 2020;370:m1. doi:10.9999/invented.1\n"
        "4. https://www.example.org/page\n")
    assert verifier.verify(real).status == "verified"
    mismatch = verifier.verify(fake_title)
    assert mismatch.status == "mismatched" and "belongs to" in mismatch.reason
    assert verifier.verify(fabricated).status == "not_found"
    assert verifier.verify(url).status == "unverifiable"


def test_an_answer_that_is_not_a_record_is_an_error_and_never_cached(scholarly: FakeScholarly,
                                                                     tmp_path: Path) -> None:
    """A registry's answer is untrusted like a model's: a proxy's HTML page with a 200 raised
    in the scorer and was cached, so that every later run read it again; a body that never
    ended was read until memory ran out."""
    cache = HTTPCache(tmp_path / "http.sqlite")
    for where in ("odd", "portal", "endless"):
        for resolver in (Crossref, NCBI, DoiOrg):
            online = resolver(f"{scholarly.base}/{where}", "x@example.org", cache, 50)
            start, asked = time.perf_counter(), len(scholarly.requests)
            assert online.lookup(resolver.kinds[0], "10.1056/nejmoa1511939") == ("error", None), (where, resolver)
            assert online.lookup(resolver.kinds[0], "10.1056/nejmoa1511939") == ("error", None)
            if where != "odd":  # a JSON object with a 200 is kept, whatever its shape
                assert len(scholarly.requests) == asked + 2, "an answer that is not a record was cached"
            assert time.perf_counter() - start < 10
    assert cache.db.execute("SELECT COUNT(*) FROM http WHERE url NOT LIKE '%/odd/%'").fetchone()[0] == 0


def test_requests_are_paced(scholarly: FakeScholarly, tmp_path: Path) -> None:
    crossref = Crossref(f"{scholarly.base}/crossref", "x@example.org", HTTPCache(tmp_path / "h.sqlite"), 10)
    start = time.perf_counter()
    for i in range(5):
        crossref.lookup("doi", f"10.1/{i}")
    assert time.perf_counter() - start >= 0.4 * 0.95


def test_online_resolvers_through_a_suite(scholarly: FakeScholarly, tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text('{"id": "1", "q": "SPRINT?", "ref": "x"}\n', encoding="utf-8")
    (tmp_path / "out.jsonl").write_text(json.dumps({"id": "1", "answer": "Yes. doi:10.1056/NEJMoa1511939 and "
                                                    "doi:10.9999/invented.2"}) + "\n", encoding="utf-8")
    write_yaml(tmp_path / "task.yaml", {
        "name": "c", "kind": "qa", "data_class": "public", "prompt": "{{ q }}", "scorers": ["citations"],
        "dataset": {"path": "items.jsonl", "fields": {"reference": "ref"}},
        "citations": {"online": {"resolvers": ["crossref"], "contact": "x@example.org",
                                 "base_urls": {"crossref": f"{scholarly.base}/crossref"}}}})
    write_yaml(tmp_path / "r.yaml", {"name": "r", "kind": "replay", "settings": {"path": "out.jsonl",
                                                                                 "output_column": "answer"}})
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"], "adapters": ["r.yaml"]})
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    rows = {r["metric"]: r for r in json.loads((tmp_path / "run" / "scorecard.json").read_text())["rows"]}
    assert rows["verified_rate"]["value"] == 0.5 and rows["fabricated_rate"]["value"] == 0.5


def test_missing_catalogue_is_a_config_error(tmp_path: Path) -> None:
    task = (EXAMPLE / "task.yaml").read_text(encoding="utf-8").replace("catalogue/works.csv", "catalogue/nope.csv")
    (tmp_path / "task.yaml").write_text(task.replace("path: items.jsonl", f"path: {EXAMPLE}/items.jsonl")
                                        .replace("registry: guidelines.yaml", f"registry: {EXAMPLE}/guidelines.yaml"),
                                        encoding="utf-8")
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"],
                                                 "adapters": [str(ROOT / "adapters/health-assistant-replay.yaml")],
                                                 "data_roots": [str(ROOT)]})
    res = run_cli("validate", str(suite))
    assert res.returncode == 2 and "citations.catalogue[0]" in res.stderr and "nope.csv" in res.stderr


def test_a_bad_guideline_registry_is_found_by_validate(tmp_path: Path) -> None:
    """The registry was read only when the run built the scorer: `harness validate` passed a
    date that is not one, and the run crashed (exit 3). Validation names the file, the entry's
    field and its line."""
    task = (EXAMPLE / "task.yaml").read_text(encoding="utf-8")
    (tmp_path / "task.yaml").write_text(task.replace("path: items.jsonl", f"path: {EXAMPLE}/items.jsonl")
                                        .replace("catalogue/", f"{EXAMPLE}/catalogue/")
                                        .replace("registry: guidelines.yaml", "registry: bad.yaml"), encoding="utf-8")
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "s", "tasks": ["task.yaml"],
                                                 "adapters": [str(ROOT / "adapters/health-assistant-replay.yaml")],
                                                 "data_roots": [str(ROOT)]})
    for date in ("2019-13-45", "soon"):  # YAML reads the first as a date that is none, the model the second
        (tmp_path / "bad.yaml").write_text("guidelines:\n  - id: g1\n    title: Sepsis\n    issuer: HAS\n"
                                           f"    date: {date}\n", encoding="utf-8")
        for command in ("validate", "run"):
            res = run_cli(command, str(suite), "--quiet") if command == "run" else run_cli(command, str(suite))
            assert res.returncode == 2, res.stderr
            assert "bad.yaml:5: guidelines.0.date:" in res.stderr and "Traceback" not in res.stderr, res.stderr
            assert not (tmp_path / "runs").exists()
