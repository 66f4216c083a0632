"""The 12-lead web page's paper scales (issue 24): 25 or 50 mm/s and 5, 10 or 20 mm/mV, from the buttons or the
address (?speed=50&gain=5), marked on the page and drawn at that scale (the 1 mV calibration pulse)."""

from __future__ import annotations

import time

import pytest
from test_webview_browser import CHROMIUM, Browser

from edge.views.webview import WebView

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)"),
]

# Where the second lead's 1 mV calibration pulse has its top edge (base - gain mm), on the 3-lead page.
PULSE = """(() => { const c = document.getElementById('ecg'), g = c.getContext('2d'), mm = view.pxPerMm;
  const rowH = 25 * mm, base = Math.round(1.6 * rowH), x = Math.round(4.5 * mm);  // second row, 3-lead page
  const d = g.getImageData(x, 0, 1, base).data;
  for (let y = base - Math.round(2 * mm); y > base - 25 * mm && y >= 0; y--)
    if (d[4 * y + 3] > 0 && d[4 * y] < 90) return { top: y, base: base, mm: mm };
  return { top: -1, base: base, mm: mm }; })()"""


def _pulse(browser, gain: float, timeout: float = 10.0) -> dict:
    """The pulse once drawn at ``gain`` (the page redraws every animation frame)."""
    deadline = time.monotonic() + timeout
    while True:
        p = browser.js(PULSE)
        if (
            p["top"] >= 0
            and abs((p["base"] - p["top"]) / p["mm"] - gain) < 1.5
            or time.monotonic() > deadline
        ):
            return p
        time.sleep(0.1)


@pytest.fixture
def page():
    web = WebView("127.0.0.1", 0, labels=[], bundle="test@0")
    url = web.start()
    browser = Browser()
    yield browser, url
    browser.close()
    web.close()


def test_speed_and_gain_buttons_and_address(page):
    browser, url = page
    browser.goto(url + "?leads=3")
    browser.wait_for("document.getElementById('scale').textContent.includes('mm/s')")
    assert browser.js("document.getElementById('scale').textContent") == "25 mm/s  10 mm/mV"
    standard = _pulse(browser, 10)
    browser.js("document.getElementById('gain-toggle').click()")  # 10 -> 20 mm/mV
    browser.js("document.getElementById('speed-toggle').click()")  # 25 -> 50 mm/s
    scale = browser.js("document.getElementById('scale').textContent")
    assert scale.startswith("50 mm/s  20 mm/mV") and "標準と異なる" in scale
    double = _pulse(browser, 20)
    height = lambda p: (p["base"] - p["top"]) / p["mm"]  # noqa: E731 - mm above the baseline
    assert abs(height(standard) - 10) < 1.5 and abs(height(double) - 20) < 1.5, (standard, double)
    browser.js("document.getElementById('gain-toggle').click()")  # 20 -> 5 (half)
    assert browser.js("document.getElementById('gain-toggle').textContent") == "5 mm/mV"
    browser.goto(url + "?leads=12&speed=50&gain=5")
    browser.wait_for("document.getElementById('scale').textContent.startsWith('50 mm/s  5 mm/mV')")
    browser.goto(url + "?speed=33&gain=7")  # not a scale: the standard one, never a guess
    browser.wait_for("document.getElementById('scale').textContent.startsWith('25 mm/s  10 mm/mV')")
