"""A reopened port checks that the same device answers (issue 23, item 6): the HELLO's device id is part of the
stream's identity, so another device on a reused port is a new segment with a ``device_changed`` event naming
both devices, and its samples never continue the first device's windows (or its steady findings)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.runtime.engine import Classifier
from edge.runtime.serial import RunConfig, Runtime
from firmware_bridge.frames import Hello, Samples, encode_frame
from firmware_bridge.leads import LEADS_12
from firmware_bridge.synthetic import synthesize, to_counts

FS = 500


def _wire(device: str, rhythm: str, seconds: float, seed: int, first: int = 0) -> bytes:
    counts = to_counts(synthesize(rhythm=rhythm, fs=FS, seed=seed, duration_s=seconds), 1000)
    frames = [encode_frame(Hello(FS, LEADS_12, 1000, device_id=device), 0)]
    for k, a in enumerate(range(0, counts.shape[1], 10)):
        frames.append(encode_frame(Samples(first + a, counts[:, a : a + 10].T), (k + 1) & 0xFFFF))
    return b"".join(frames)


@pytest.fixture(scope="module")
def clf():
    with Classifier.from_bundle() as classifier:
        yield classifier


def test_another_device_on_a_reopened_port_is_a_new_segment(clf):
    events, lines = [], []
    rt = Runtime(
        clf,
        RunConfig(port="/dev/pts/9", hop_s=2.0),
        on_result=lambda r, ln: lines.append(ln),
        on_event=events.append,
    )
    rt.device.connected()
    rt.process_bytes(_wire("cart-A", "sinus", 14.0, 1))
    first = len(lines)
    assert first >= 2 and {ln["device"] for ln in lines} == {"cart-A"} and rt.segment == 1
    rt.device.connected()  # the port closed and was opened again: another device answers on it
    rt.process_bytes(_wire("cart-B", "lbbb", 14.0, 2))
    changed = [e for e in events if e["event"] == "device_changed"]
    assert [e["device"] for e in changed] == ["cart-A", "cart-B"]
    assert changed[1]["previous_device"] == "cart-A" and "previous_device" not in changed[0]
    assert rt.segment == 2
    after = lines[first:]
    assert after and all(ln["device"] == "cart-B" and ln["segment"] == 2 for ln in after)
    # cart-B's first window starts at its own sample 0; its stated findings come from cart-B's windows only
    assert after[0]["window_start_sample"] == 0
    assert set(after[0]["findings"]) <= set(after[0]["window_findings"])


def test_the_same_device_reopened_keeps_its_segment(clf):
    events = []
    rt = Runtime(clf, RunConfig(port="/dev/pts/9", hop_s=2.0), on_event=events.append)
    rt.device.connected()
    rt.process_bytes(_wire("cart-A", "sinus", 12.0, 1))
    rt.device.connected()
    rt.process_bytes(
        _wire("cart-A", "sinus", 4.0, 2, first=6000)
    )  # the same HELLO again, its counter going on
    assert rt.segment == 1 and [e["event"] for e in events].count("device_changed") == 1
    assert rt.stats.windows >= 3 and np.isfinite(rt.stats.windows)
