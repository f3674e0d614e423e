"""The report renders in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

The driver is `harness.testing.browser` (benchmarks/report_demo.py uses it too).
``.ci/run`` installs Debian's ``chromium`` where it can; where there is none,
these tests skip and say so. Set ``HARNESS_REPORT_SCREENSHOT=path.png`` to keep
this test's screenshot; the README's docs/report.png comes from benchmarks/report_demo.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from harness_report.report import build_report
from harness.testing.browser import Browser, find_chromium
from test_report import make_runs

websocket = pytest.importorskip("websocket", reason="websocket-client is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium on PATH (CI installs Debian's `chromium`; `apt-get install chromium`)"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory, small_tree) -> Path:
    base = tmp_path_factory.mktemp("browser")
    root = base / "tree"
    shutil.copytree(small_tree, root)
    make_runs(base / "results", root)
    return build_report(["oracle-run", "none-run"], base / "results", base / "report.html", per_model=8)


@pytest.fixture(scope="module")
def browser(report, tmp_path_factory):
    browser = Browser(tmp_path_factory.mktemp("profile"))
    try:
        browser.load(report)
        yield browser
    finally:
        browser.close()


def test_the_report_renders_without_errors_and_every_image_loads(browser):
    images = browser.evaluate(
        "Array.from(document.images).map(i => ({src: i.src.slice(0, 22), done: i.complete, w: i.naturalWidth}))"
    )
    assert len(images) >= 20
    broken = [i for i in images if not i["done"] or i["w"] == 0]
    assert not broken, f"{len(broken)} images did not load: {broken[:3]}"
    assert all(i["src"].startswith("data:image/jpeg") for i in images)
    # The hostile answer in the gallery must not have run as script.
    assert browser.evaluate("window.__pwned === undefined")
    assert browser.problems() == []


def test_the_leaderboard_has_the_expected_rows_and_sorts_on_click(browser):
    rows = browser.evaluate(
        "Array.from(document.querySelectorAll('table.leaderboard tbody tr')).map(r => r.dataset.model + '@' + r.dataset.run)"
    )
    assert sorted(rows) == ["random@none-run", "random@oracle-run", "scripted@oracle-run"]

    def column(name):
        return browser.evaluate(
            "(() => { const t = document.querySelector('table.leaderboard');"
            " const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.trim() === %s);"
            " return Array.from(t.tBodies[0].rows).map(r => r.cells[i].textContent.trim()); })()" % json.dumps(name)
        )

    def click(name):
        browser.evaluate(
            "Array.from(document.querySelectorAll('table.leaderboard th')).find(c => c.textContent.trim() === %s).click()"
            % json.dumps(name)
        )

    click("model")
    assert column("model") == sorted(column("model"))
    click("model")
    assert column("model") == sorted(column("model"), reverse=True)
    click("errors")
    errors = [int(x) for x in column("errors")]
    assert errors == sorted(errors)


def test_gallery_filters_hide_and_show_cards(browser):
    total = browser.evaluate("document.querySelectorAll('.card').length")
    assert total > 0
    visible = browser.evaluate(
        "(() => { const s = document.getElementById('filter-outcome'); s.value = 'refused';"
        " s.dispatchEvent(new Event('change'));"
        " return Array.from(document.querySelectorAll('.card')).filter(c => !c.hidden).map(c => c.dataset.outcome); })()"
    )
    assert visible and set(visible) == {"refused"} and len(visible) < total
    assert browser.evaluate("document.getElementById('gallery-count').textContent") == f"{len(visible)} of {total} cards"
    browser.evaluate("(() => { const s = document.getElementById('filter-outcome'); s.value = '';"
                     " s.dispatchEvent(new Event('change')); })()")
    assert browser.evaluate("document.querySelectorAll('.card:not([hidden])').length") == total


def test_a_screenshot_shows_the_rendered_page(browser):
    png = browser.screenshot(max_height=2400)
    image = Image.open(io.BytesIO(png)).convert("L")
    width, height = image.size
    assert width == 1360 and 1000 < height <= 2400
    # A rendered page has text and pictures: many distinct grey levels, not a blank canvas.
    assert len(image.getcolors(256) or []) > 50
    target = os.environ.get("HARNESS_REPORT_SCREENSHOT")
    if target:
        Path(target).write_bytes(png)


def test_the_checks_catch_a_broken_page(tmp_path):
    """The same checks, on a page with a broken picture and failing scripts, do fail."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!doctype html><title>broken</title>"
        '<img id="bad" src="data:image/png;base64,AAAA">'
        "<script>console.error('boom'); undefinedFunction();</script>"
    )
    browser = Browser(tmp_path / "profile")
    try:
        browser.load(page)
        assert browser.evaluate("document.getElementById('bad').naturalWidth") == 0
        problems = browser.problems()
        assert any("boom" in p for p in problems)
        assert any(p.startswith("exception:") for p in problems)
    finally:
        browser.close()
