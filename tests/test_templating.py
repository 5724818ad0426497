"""The HTML reports' compiled templates are kept between processes (harness.report.templating):
the same page, without compiling again; a cache folder that cannot be trusted is not used."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import replay_run

RENDER = textwrap.dedent("""
    import json, sys
    import jinja2
    compiled = []
    real = jinja2.Environment._compile
    def counted(self, source, filename):
        compiled.append(filename)
        return real(self, source, filename)
    jinja2.Environment._compile = counted
    from harness.report.html import render_html
    from harness.report.templating import ENV
    from harness.metrics import build_scorecard
    page = render_html(build_scorecard(sys.argv[1]))
    print(json.dumps({"compiled": len(compiled), "cached": ENV.bytecode_cache is not None, "page": page}))
""")


def _render(run: Path, tmpdir: Path) -> dict[str, object]:
    import json

    res = subprocess.run([sys.executable, "-c", RENDER, str(run)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TMPDIR": str(tmpdir)})
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def test_the_second_process_renders_the_same_page_without_compiling(tmp_path: Path) -> None:
    run = replay_run(tmp_path)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    first, second = _render(run, tmpdir), _render(run, tmpdir)
    assert first["cached"] and first["compiled"] == 1
    assert second["compiled"] == 0
    assert second["page"] == first["page"]
    (cache_dir,) = tmpdir.iterdir()
    assert cache_dir.stat().st_mode & 0o777 == 0o700  # no other account can plant code there
    assert [p.name.startswith("avec-harness-") for p in cache_dir.iterdir()] == [True]


def test_a_cache_folder_that_is_not_a_private_folder_is_not_used(tmp_path: Path) -> None:
    run = replay_run(tmp_path)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    (tmpdir / f"_jinja2-cache-{os.getuid()}").write_text("not a folder")
    out = _render(run, tmpdir)
    assert out["cached"] is False and out["compiled"] == 1
    assert "<html" in str(out["page"])
