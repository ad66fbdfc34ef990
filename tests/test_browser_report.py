"""The exported HTML report opens in Chromium with its images and numbers (screenshot: test-artifacts/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mia_app.report.html import comparison_report, write_report
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.test_report_html import runs  # noqa: F401  (the fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: apt-get install -y chromium"),
]


def test_the_exported_report_opens_with_its_images_and_numbers(runs, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    out = write_report(comparison_report(runs, references=True), tmp_path / "report.html")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(out.as_uri())
        shown = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert len(shown) == 4 + 2 * 2 * 2 and all(shown)  # 2 runs x 2 images, each with 2 references
        body = page.inner_text("body")
        assert "E acc@1 %" in body and "[95% CI]" in body and "E top-5:" in body and "seed" in body
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        browser.close()
