"""A hostile device cannot flood the output (issue 25, item 7): repeated events coalesced and counted, device ids
cleaned and capped before they reach any line, the terminal or the page.

Was: alternating HELLO formats wrote 48 MB of event lines in 10 s, sample-index restarts 15 MB, and a 65 KB device
id (with control characters and ANSI escapes) was copied raw into every window line and the terminal view.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from edge.runtime.engine import Classifier
from edge.runtime.events import MAX_DEVICE_ID, EventCoalescer, clean_device_id
from edge.runtime.serial import RunConfig, Runtime
from firmware_bridge.frames import Hello, Samples, encode_frame
from firmware_bridge.leads import LEADS_8, LEADS_12
from firmware_bridge.synthetic import synthesize, to_counts

FS = 500


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    with Classifier.from_bundle(tiny_bundle) as classifier:
        yield classifier


@pytest.fixture(scope="module")
def counts():
    return to_counts(synthesize(rhythm="sinus", fs=FS, seed=7, duration_s=12.0), 1000)


def _runtime(clf):  # noqa: ANN001, ANN202
    lines: list[dict] = []
    windows: list[dict] = []
    runtime = Runtime(
        clf, RunConfig(port="hostile"), lambda r, line: windows.append(line), on_event=lines.append
    )
    return runtime, lines, windows


def test_alternating_hello_formats_are_coalesced_and_counted(clf, counts):
    runtime, lines, _ = _runtime(clf)
    seq = 0
    for i in range(400):  # a HELLO of another format, then samples in it, 400 times
        leads = LEADS_12 if i % 2 == 0 else LEADS_8
        data = counts[:12] if leads == LEADS_12 else counts[[0, 1, 6, 7, 8, 9, 10, 11]]
        runtime.process_bytes(encode_frame(Hello(FS, leads, 1000, device_id="flip"), seq))
        runtime.process_bytes(encode_frame(Samples(i * 10, data[:, :10].T), seq + 1))
        seq += 2
    changed = [x for x in lines if x["event"] == "device_changed"]
    assert len(changed) <= runtime.events.burst  # was: 400 lines
    runtime.events.flush()
    summary = [x for x in lines if x.get("coalesced")]
    assert len(summary) == 1 and summary[0]["coalesced"] == 400 - runtime.events.burst
    assert sum(len(json.dumps(x)) for x in lines) < 10_000


def test_sample_counter_restarts_are_coalesced(clf, counts):
    runtime, lines, _ = _runtime(clf)
    runtime.process_bytes(encode_frame(Hello(FS, LEADS_12, 1000, device_id="restarts"), 0))
    for i in range(300):  # the counter jumps far ahead and back, again and again
        first = 0 if i % 2 else 10_000_000
        runtime.process_bytes(encode_frame(Samples(first, counts[:, :20].T), i + 1))
    runtime.events.flush()
    segments = [x for x in lines if x["event"] == "segment"]
    assert len(segments) <= runtime.events.burst + 1
    assert sum(x.get("coalesced", 1) for x in segments) == 299


def test_coalescer_reports_each_period_and_passes_other_events():
    now = [0.0]
    out: list[dict] = []
    c = EventCoalescer(out.append, burst=2, period_s=10.0, clock=lambda: now[0])
    for i in range(5):
        c({"t": f"t{i}", "event": "segment", "i": i})
    c({"t": "x", "event": "disconnected"})  # another name is not held back
    assert [x["event"] for x in out] == ["segment", "segment", "disconnected"]
    now[0] = 11.0
    c.tick()
    assert out[-1] == {"t": "t4", "event": "segment", "i": 4, "coalesced": 3, "since": "t2"}
    c({"t": "t5", "event": "segment"})  # a new period: passed again
    assert out[-1]["t"] == "t5" and "coalesced" not in out[-1]


def test_device_id_is_cleaned_and_capped_everywhere(clf, counts):
    hostile = "\x1b[2J\x1b]0;pwned\x07bed-7\r\n\u202e" + "A" * 65_000
    runtime, lines, windows = _runtime(clf)
    runtime.process_bytes(encode_frame(Hello(FS, LEADS_12, 1000, device_id=hostile), 0))
    for k, a in enumerate(range(0, 5000, 100)):
        runtime.process_bytes(encode_frame(Samples(a, counts[:, a : a + 100].T), k + 1))
    assert windows, "a window was classified"
    for line in [*lines, *windows]:
        text = json.dumps(line, ensure_ascii=False)
        assert "\x1b" not in text and "\u202e" not in text and len(text) < 20_000
    device = windows[0]["device"]
    assert len(device) <= MAX_DEVICE_ID and device.startswith("bed-7 ?") and device.endswith("…")
    from edge.views.terminal import LiveView

    screen = LiveView(io.StringIO(), width=120).render(runtime)
    assert "pwned" not in screen and "\x1b[2J" not in screen and "\u202e" not in screen


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("bed-7", "bed-7"), ("心電計 3", "心電計 3"), ("a\x00b\x7fc", "a?b?c"), ("\x1b[31mred\x1b[0m", "red"),
     ("x" * 100, "x" * 63 + "…"), ("a\u200bb", "a?b")],
)  # fmt: skip
def test_clean_device_id(raw, clean):
    assert clean_device_id(raw) == clean


def test_many_window_lines_with_a_long_id_stay_small(clf, counts):
    runtime, _, windows = _runtime(clf)
    runtime.process_bytes(encode_frame(Hello(FS, LEADS_12, 1000, device_id="Z" * 60_000), 0))
    x = np.tile(counts, (1, 2))
    for k, a in enumerate(range(0, 12_000, 100)):
        runtime.process_bytes(encode_frame(Samples(a, x[:, a : a + 100].T), k + 1))
    assert windows and all(len(w["device"]) <= MAX_DEVICE_ID for w in windows)
