"""Issue 13: the committee's page (`harness report RUN... --format html --lang fr|en`): the
bundled examples match the current code, every section is there, it renders in headless
Chromium with no external request and no script, 20,000 items stay small and fast, and
untrusted text stays text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, write_jsonl, write_yaml

EXAMPLES = ROOT / "reports" / "examples"
SECTION_IDS = ("decisions", "results", "forest", "transcripts", "details", "systems", "method")


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    return exe


def _screenshot(page: Path, target: Path) -> float:
    """Seconds Chromium took to load, lay out and paint the page into a PNG."""
    start = time.perf_counter()
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                    f"--screenshot={target}", "--window-size=1280,1600", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return time.perf_counter() - start


def _distinct_colours(png: Path) -> int:
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(str(png))
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


def _dom(page: Path) -> str:
    res = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-1000:]
    return res.stdout


def _no_external_request(html: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(?:https?:)?//", html, re.I)
    assert "<script" not in html.lower()


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_bundled_example_reports_match_the_code_and_render(tmp_path: Path, lang: str) -> None:
    # rendered from the stored record, from the project root, as the script does
    page = tmp_path / f"report.{lang}.html"
    res = run_cli("report", "reports/examples/run", "--format", "html", "--lang", lang, "--out", str(page), cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert page.read_text(encoding="utf-8") == (EXAMPLES / f"report.{lang}.html").read_text(encoding="utf-8"), \
        "run `python scripts/make_example_reports.py --run reports/examples/run`"
    html = page.read_text(encoding="utf-8")
    _no_external_request(html)
    assert f'<html lang="{lang}">' in html and f'content="{lang}"' in html
    dom = _dom(page)
    for section in SECTION_IDS:
        assert f'id="{section}"' in dom, section
    words = {"en": ("Word error rate", "Drug swapped for another", "not declared", "Methodology"),
             "fr": ("Taux d'erreur sur les mots", "Médicament remplacé par un autre", "non déclaré", "Méthode",
                    # the scorers' sections too: titles, error classes, table headers
                    "Erreurs qui comptent en médecine", "négation perdue", "Médicament de référence")}
    for word in words[lang]:
        assert word in dom, word
    # the medical errors, the citation verdicts and the declarations are on the page
    assert "ceftriaxone" in dom and "Alzheimer" in dom  # a drug error and a citation verdict
    # the transcription view: aligned words, critical errors first
    view = dom[dom.index('id="transcripts"'):]
    assert "<del>céfuroxime</del><ins>ceftriaxone</ins>" in view.replace("cefuroxime", "céfuroxime") or \
        "<del>cefuroxime</del><ins>ceftriaxone</ins>" in view
    assert view.index("negation_lost") < view.index("dictation-en")  # the French service's critical errors
    plots = sorted((tmp_path / f"report.{lang}-plots").iterdir())
    assert any(p.suffix == ".png" for p in plots) and any(p.suffix == ".svg" for p in plots)
    # the French service's medical errors by class, as a chart
    assert any(p.name.startswith("errors-dictation-fr-dictee-cloud-critical_terms") for p in plots)
    shot = tmp_path / "shot.png"
    seconds = _screenshot(page, shot)
    assert seconds < 5 and _distinct_colours(shot) > 20  # text, tables and colours, not a blank page


def test_several_runs_are_compared_and_a_bad_language_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(EXAMPLES / "run", run)
    res = run_cli("report", str(run), str(run), "--format", "html", "--out", str(tmp_path / "cmp.html"))
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert "Comparison with the baseline run" in html and "no significant difference" in html
    bad = run_cli("report", str(run), "--format", "html", "--lang", "de")
    assert bad.returncode == 2 and "--lang" in bad.stderr
    two_md = run_cli("report", str(run), str(run), "--format", "md")
    assert two_md.returncode == 2


def _replay_suite(tmp_path: Path, n: int, provider: str = "Vendor", answer: str = "A") -> Path:
    write_jsonl(tmp_path / "items.jsonl", [{"id": f"q{i:05d}", "question": f"Q{i}", "answer": "ABCD"[i % 4]}
                                           for i in range(n)])
    for name, shift in (("sys-a", 0), ("sys-b", 1)):
        write_jsonl(tmp_path / f"{name}.jsonl", [{"id": f"q{i:05d}", "output": answer if answer != "A" else
                                                  "ABCD"[(i + (i % 5 == 0) * shift) % 4]} for i in range(n)])
        write_yaml(tmp_path / f"{name}.yaml", {"name": name, "kind": "replay", "settings": {"path": f"{name}.jsonl"},
                                               "declarations": {"provider": provider}})
    write_yaml(tmp_path / "task.yaml", {"name": "qa", "kind": "qa", "data_class": "public", "prompt": "{{ question }}",
                                        "choices": ["A", "B", "C", "D"],
                                        "dataset": {"path": "items.jsonl", "fields": {"reference": "answer"}}})
    return write_yaml(tmp_path / "suite.yaml", {"name": "big", "tasks": ["task.yaml"],
                                                "adapters": ["sys-a.yaml", "sys-b.yaml"]})


def test_twenty_thousand_items_give_a_small_page_that_renders_fast(tmp_path: Path) -> None:
    suite = _replay_suite(tmp_path, 20_000)
    res = run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    page = tmp_path / "report.html"
    assert run_cli("report", str(tmp_path / "run"), "--format", "html", "--out", str(page)).returncode == 0
    assert page.stat().st_size < 15_000_000
    html = page.read_text(encoding="utf-8")
    assert "n=20000" in html and "★" in html  # sys-a is significantly better on 40,000 paired items
    seconds = _screenshot(page, tmp_path / "shot.png")
    assert seconds < 5 and _distinct_colours(tmp_path / "shot.png") > 20


def test_untrusted_text_stays_text_on_the_committee_page(tmp_path: Path) -> None:
    payload = '<img src=x onerror="document.body.dataset.pwned=1"><script>document.body.dataset.pwned=2</script>'
    suite = _replay_suite(tmp_path, 40, provider=payload, answer=payload)
    assert run_cli("run", str(suite), "--quiet", "--out", str(tmp_path / "run")).returncode == 0
    page = tmp_path / "report.html"
    assert run_cli("report", str(tmp_path / "run"), "--format", "html", "--out", str(page)).returncode == 0
    dom = _dom(page)
    from html.parser import HTMLParser

    found: list[str] = []

    class Elements(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("script", "iframe", "object", "embed", "svg"):
                found.append(tag)
            found.extend(f"{tag} {name}" for name, _ in attrs if name.startswith("on") or name == "data-pwned")

    Elements().feed(dom)
    assert not found, found  # no element, handler or script from the payload exists after rendering
    assert "&lt;script&gt;" in page.read_text(encoding="utf-8")  # shown, escaped
    card = json.loads((tmp_path / "run" / "scorecard.json").read_text())
    assert card["adapters"]["sys-a"]["declarations"]["provider"] == payload


def test_history_and_error_class_plots_appear_where_they_apply(tmp_path: Path) -> None:
    suite = _replay_suite(tmp_path, 50)
    runs = tmp_path / "runs"
    for name in ("r1", "r2"):
        assert run_cli("run", str(suite), "--quiet", "--no-cache", "--out", str(runs / name)).returncode == 0
    page = tmp_path / "plain.html"
    assert run_cli("report", str(runs / "r2"), "--format", "html", "--out", str(page)).returncode == 0
    assert 'id="history"' not in page.read_text(encoding="utf-8")  # no history indexed: no plot invented
    assert run_cli("history", str(runs), "--no-plots").returncode == 0
    assert run_cli("report", str(runs / "r2"), "--format", "html", "--out", str(page)).returncode == 0
    html = page.read_text(encoding="utf-8")
    assert 'id="history"' in html and (tmp_path / "plain-plots" / "history-qa-accuracy.png").is_file()
