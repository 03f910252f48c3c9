"""The uptime and capacity reports in a real browser (Debian's Chromium through Playwright): a
realistic month (outages, maintenance, a major incident, a dependency's outage) at desktop and
phone width, and printed to A4.

Set DCOPS_SCREENSHOTS=1 to also write the screenshots and the PDFs to /tmp/report-screenshots/
for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dcops.reports.render import render

from browsers import browser  # noqa: F401 - a fixture
from report_month import as_before_the_second_wave, capacity_month, uptime_month

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
SCREENSHOTS_ENV = "DCOPS_SCREENSHOTS"
SCREENSHOTS_DIR = Path("/tmp/report-screenshots")

# Every chart row's name and figure, as boxes: [name box, figure box, row's text] per row.
ROW_BOXES = """() => [...document.querySelectorAll('.row')].map(row => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return [box(row.querySelector('.row-name')), box(row.querySelector('.row-value')), row.innerText.split('\\n')[0],
          row.closest('.chart-days') ? 'days' : 'availability'];
})"""


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _page_count(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def test_a_realistic_month_reads_at_desktop_and_phone_width_and_prints_on_a4(browser, tmp_path):
    targets = [tmp_path]
    if os.environ.get(SCREENSHOTS_ENV):
        SCREENSHOTS_DIR.mkdir(exist_ok=True)
        targets.append(SCREENSHOTS_DIR)
    reports = {
        "uptime": render(uptime_month(), "html"),
        "uptime-frozen-before": render(as_before_the_second_wave(uptime_month()), "html"),
        "capacity": render(capacity_month(), "html"),
    }
    written = []

    def keep(name: str, data: bytes | None = None, source: Path | None = None) -> None:
        first = targets[0] / name
        if data is not None:
            first.write_bytes(data)
        for target in targets[1:]:
            shutil.copyfile(first, target / name)
        written.extend(target / name for target in targets)

    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        for name, html in reports.items():
            source = tmp_path / f"{name}.html"
            source.write_text(html, encoding="utf-8")
            for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                page.set_viewport_size(viewport)
                page.emulate_media(media="screen")
                page.goto(source.as_uri())
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{name} is {overflow} px wider than a {viewport['width']} px window"
                rows = page.evaluate(ROW_BOXES)
                assert len(rows) >= (2 * 11 if name.startswith("uptime") else 0)
                for name_box, value_box, text, chart in rows:
                    assert not _overlap(name_box, value_box), f"{name} at {label}: {text!r} overprints its figure"
                    if label == "phone" and chart == "days":
                        # On a phone the summary has a line of its own, under the name.
                        assert value_box[1] >= name_box[3] - 1, f"{name}: {text!r} summary beside its name"
                shot = f"{label}-{name}.png"
                page.screenshot(path=str(tmp_path / shot), full_page=True)
                keep(shot)
            page.set_viewport_size(DESKTOP)
            page.emulate_media(media="print")
            pdf = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
            assert pdf.startswith(b"%PDF")
            pages = _page_count(pdf)
            assert pages >= 2, f"{name}: {pages} pages"
            keep(f"{name}.pdf", pdf)
            if shutil.which("pdftotext"):
                text = subprocess.run(["pdftotext", "-layout", str(tmp_path / f"{name}.pdf"), "-"],
                                      capture_output=True, text=True, check=True).stdout
                assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
            else:
                # No text extractor here: the page boxes that print the numbers and the running title.
                assert re.search(r'@bottom-right\{content:"Page " counter\(page\) " of " counter\(pages\)', html)
                assert "@top-left{content:" in html
    finally:
        context.close()
    for path in written:
        assert path.stat().st_size > 10_000, path
