"""The terminal live view in Japanese: connection state from the data, heart rate in large digits, the legend,
lines fitted by whole items (never cut inside a word), and redraws while the runtime calls no hook."""

from __future__ import annotations

import io
import re
import time

import pytest

import edge.views.terminal as liveview
from edge.runtime.engine import Classifier
from edge.runtime.serial import RunConfig, Runtime
from edge.views.present import describe_quality
from edge.views.terminal import LEGEND, LiveView, big_number, display_width, fit
from firmware_bridge.frames import Hello, Samples, encode_frame
from firmware_bridge.leads import LEADS_12
from firmware_bridge.synthetic import synthesize, to_counts


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    with Classifier.from_bundle(tiny_bundle) as classifier:
        yield classifier


def _runtime(clf) -> Runtime:
    counts = to_counts(synthesize(rhythm="sinus", fs=500, seed=10, duration_s=10.0), 1000)
    runtime = Runtime(clf, RunConfig(port="/dev/ttyUSB0"))
    runtime.process_bytes(encode_frame(Hello(500, LEADS_12, 1000, device_id="bed-7"), 0))
    for i, a in enumerate(range(0, 5000, 100)):
        runtime.process_bytes(encode_frame(Samples(a, counts[:, a : a + 100].T), i + 1))
    return runtime


def test_fit_breaks_between_items_only():
    items = ["所見: 完全左脚ブロック", "I度房室ブロック", "心房細動 (未検証)", "洞調律", "非特異的ST-T変化"]
    for width in (24, 30, 44, 80):  # the longest item takes 22 columns
        lines = fit(items, width, sep="、")
        assert all(display_width(line) <= width for line in lines)
        joined = "、".join(line.strip() for line in lines)
        assert joined == "、".join(items)  # every item whole and in order
    assert fit(["a" * 50], 10) == ["a" * 9 + "…"]  # longer than a line: shortened, not wrapped


def test_big_digits_and_japanese_quality():
    rows = big_number(72)
    assert rows == [" _   _  ", "  |  _| ", "  | |_  "]
    assert big_number(None)[1] == " _   _   _  "
    assert describe_quality({"ok": True}) == "OK"
    text = describe_quality({"ok": False, "missing_samples": 80, "lead_off": ["V2"], "saturated": ["V5"]})
    assert text == "不良 (欠損 80 サンプル; 電極外れ: V2; 飽和 (ノイズ): V5)"


def test_screen_states_heart_rate_and_legend(clf, monkeypatch):
    runtime = _runtime(clf)
    result = runtime.last_result
    view = LiveView(io.StringIO(), width=80)
    assert "接続待ち" in view.render(Runtime(clf, RunConfig(port="x")))
    runtime.connected = True
    screen = view.render(runtime)
    assert "● 接続" in screen and "bed-7" in screen and "信号品質" in screen
    hr = (result.measurements or {}).get("hr_bpm")
    assert hr is not None and 60 <= hr <= 85  # synthetic sinus at 72 bpm
    assert all(row in screen for row in big_number(hr)) and "心拍数" in screen and "bpm" in screen
    for line in LEGEND:
        assert line.split(":")[0] in screen.replace("\n", "  ")
    assert all(display_width(line) <= 80 for line in screen.splitlines())
    assert f"{result.top[0]['score']:+.3f}" in screen and "所見:" in screen
    monkeypatch.setattr(liveview, "STALE_S", 0.05)
    time.sleep(0.1)  # no sample since: the device is gone
    screen = view.render(runtime)
    assert (
        "✖ 切断" in screen and "最後の判定 (切断前)" in screen and "接続" not in screen.replace("再接続", "")
    )


def test_follow_redraws_without_runtime_hooks(clf):
    runtime = _runtime(clf)
    out = io.StringIO()
    view = LiveView(out, min_interval_s=0.05, width=100)
    view.follow(runtime, interval_s=0.02)
    time.sleep(0.3)
    view.unfollow()
    assert out.getvalue().count("\x1b[H\x1b[2J") >= 3


def test_zero_shot_label_is_marked_unverified(clf):
    runtime = _runtime(clf)
    runtime.connected = True
    result = runtime.last_result
    result.top[1] = {**result.top[1], "zero_shot": True}
    screen = LiveView(io.StringIO(), width=100).render(runtime)
    rows = {
        m.group(1): ln for ln in screen.splitlines() if (m := re.match(r"(?:\x1b\[2m)?[ *]{2}(\d\.) ", ln))
    }
    assert "未検証" in rows["2."] and result.top[1]["ja"] in rows["2."] and "未検証" not in rows["1."]
