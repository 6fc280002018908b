"""`snakemake --report`: the ecosystem's HTML report of the tiny workflow (the session's `project` build) shows
the PDF and each of its figures, and opens in a browser without script errors."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from workflow_helpers import snakemake


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def html(project, tmp_path_factory):
    out = tmp_path_factory.mktemp("snakemake_report") / "report.html"
    snakemake(project, "--report", str(out))
    return out


def test_the_html_report_holds_the_pdf_and_every_figure_by_section(project, html):
    text = html.read_text(errors="replace")
    assert "final.pdf" in text
    figures = sorted((project / "reports" / "figures").glob("*/*.svg"))
    assert figures
    for f in figures:
        assert f.stem in text, f.name
        assert f.parent.name in text, f.parent.name  # the section is the figure's category


@pytest.mark.skipif(_chromium() is None, reason="no chromium to open the HTML report (apt-get install chromium)")
def test_the_html_report_renders_in_headless_chromium_without_script_errors(project, html, tmp_path):
    browser = _chromium()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
              "--window-size=1400,1000"]
    dom = subprocess.run([*common, "--enable-logging=stderr", "--v=0", "--dump-dom", html.as_uri()],
                         capture_output=True, text=True, timeout=300)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not [c for c in console if re.search(r"Uncaught|Failed to load|Error", c)], console
    # the page is built by its scripts: the app's elements, and a menu entry per figure section, exist only if
    # they ran
    assert re.search(r'<div id="app"><div', dom.stdout)
    for section in sorted({f.parent.name for f in (project / "reports" / "figures").glob("*/*.svg")}):
        assert f"<span>{section}</span>" in dom.stdout, section
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", html.as_uri()], capture_output=True, timeout=300, check=True)
    from PIL import Image

    with Image.open(shot) as im:
        colours = im.convert("L").getextrema()
    assert colours[1] - colours[0] > 50  # not a blank page
