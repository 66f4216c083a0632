"""The classifier API (edge.runtime.engine): one window, batches, and the stream's windows and missing samples."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp.ring import SampleRing
from edge.dsp.signal import EIGHT_CHANNEL_LEADS, LEADS, preprocess, select_leads
from edge.runtime.engine import Classifier
from edge.runtime.result import Quality, Result
from edge.runtime.stream import StreamClassifier
from firmware_bridge.synthetic import synthesize

FS = 500


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    with Classifier.from_bundle(tiny_bundle) as classifier:
        yield classifier


@pytest.fixture(scope="module")
def record() -> np.ndarray:
    """31 s of synthetic 12-lead ECG at 500 Hz, mV."""
    return synthesize(rhythm="rbbb", fs=FS, seed=7, duration_s=31.0)


def test_classify_window_equals_manual_steps(clf, record):
    x = record[:, :5000]
    result = clf.classify_window(x, FS)
    manual = clf.backend(preprocess(x, FS, clf.bundle.signal)[None])[0]
    manual /= np.linalg.norm(manual)
    scores = clf.bundle.embeddings @ manual
    np.testing.assert_allclose(result.scores, scores, atol=1e-6)
    # the ranking: cosine moved by the bundle's criteria weight where a measurement meets/contradicts a label
    rank = clf.rules.adjust(scores, result.measurements, clf.criteria_weight)
    order = np.argsort(-rank, kind="stable")[:5]
    assert [t["id"] for t in result.top] == [clf.bundle.labels[i]["id"] for i in order]
    assert all(set(t) == {"id", "ja", "en", "score", "zero_shot"} for t in result.top)
    # the score shown is the cosine, unmodified (contract 5 v3), whatever moved the ranking
    for t, i in zip(result.top, order, strict=True):
        assert t["score"] == pytest.approx(float(scores[i]), abs=1e-6)
    assert result.top[0]["ja"] == clf.bundle.labels[order[0]]["ja"]
    # the findings are the decision's (edge.interpret.decide: rhythm, criteria, model, rules), each with its why:
    # a model finding at or above its threshold, a criterion with the values it read, the rhythm analysis
    stated = [*result.findings, *result.zero_shot_findings]
    assert stated and stated == [*clf.last_decision.findings, *clf.last_decision.zero_shot_findings]
    assert set(result.why) == set(stated) and not clf.rules.contradictions(result.findings)
    for lid in stated:
        why, i = result.why[lid], clf.label_ids.index(lid)
        if why.by == "model":
            assert scores[i] >= clf.bundle.thresholds[i] - 1e-6 and why.score == pytest.approx(float(scores[i]), abs=1e-5)
        elif why.by == "criteria":
            assert why.rule and why.values
        else:
            assert why.by == "rhythm" and result.rhythm is not None
    assert not result.skipped and result.quality["ok"] and result.latency_ms > 0


def test_eight_channels_and_extra_channels_give_the_same_scores(clf, record):
    x = record[:, :5000]
    full = clf.classify_window(x, FS)
    eight = clf.classify_window(x[[0, 1, 6, 7, 8, 9, 10, 11]], FS)
    np.testing.assert_allclose(eight.scores, full.scores, atol=1e-5)
    # A record with a flat marker channel and odd-case names: the marker is ignored by quality and model.
    names = ["i", "II", "STIM", *[n.upper() for n in LEADS[2:]]]
    with_marker = np.concatenate([x[:2], np.zeros((1, 5000), np.float32), x[2:]])
    r = clf.classify_window(with_marker, FS, leads=names)
    assert r.quality["ok"]
    np.testing.assert_allclose(r.scores, full.scores, atol=1e-6)
    kept, canon = select_leads(with_marker, names)
    assert canon == list(LEADS) and kept.shape == (12, 5000)


def test_any_sampling_rate(clf):
    x = synthesize(rhythm="sinus", fs=360, seed=3, duration_s=10.0)
    r = clf.classify_window(x, 360)
    assert r.quality["ok"] and len(r.top) == 5


def test_bad_quality_is_skipped_without_findings(clf, record):
    x = record[:, :5000].copy()
    x[4, 10:20] = np.nan
    r = clf.classify_window(x, FS)
    assert r.skipped and r.top == [] and r.findings == [] and r.quality["missing_samples"] == 10
    flat = record[:, :5000].copy()
    flat[7] = 0.0
    r = clf.classify_window(flat, FS, lead_off=0)  # partial leads (contract 5 v3): read from the other eleven
    assert not r.skipped and r.quality["flat"] == ["V2"] and "V2" not in r.quality["usable_leads"]
    r = clf.classify_window(record[:, :5000], FS, lead_off=["V1"])
    assert not r.skipped and r.quality["lead_off"] == ["V1"] and "V1" not in r.quality["usable_leads"]
    r = clf.classify_window(np.zeros_like(flat), FS)  # no usable lead: skipped
    assert r.skipped and r.quality["usable_leads"] == [] and r.findings == []
    short = clf.classify_window(record[:, :3000], FS)  # too short for the signal contract
    assert short.skipped and "needs 10 s" in short.quality["error"]


def test_classify_windows_batch_equals_single(clf, record):
    windows = [record[:, i : i + 5000] for i in (0, 2500, 5000)]
    windows[1] = windows[1].copy()
    windows[1][0, 0] = np.nan
    batch = clf.classify_windows(windows, FS)
    assert [r.skipped for r in batch] == [False, True, False]
    for w, r in zip(windows, batch, strict=True):
        single = clf.classify_window(w, FS)
        if r.skipped:
            assert single.skipped
        else:
            np.testing.assert_allclose(r.scores, single.scores, atol=1e-5)


def test_json_line_is_contract_5(clf, record):
    r = clf.classify_window(record[:, :5000], FS)
    line = r.to_json("bed-3", 1234, FS)
    for key in ("version", "t", "source", "window_start_sample", "fs", "top", "findings", "window_findings",
                "why", "rhythm", "quality", "measurements"):
        assert key in line
    assert line["version"] == 3 and line["window_findings"] == line["findings"]  # a file: the window's own set
    stated = line["findings"] + line["zero_shot_findings"]
    assert stated and set(line["why"]) == set(stated)
    for lid, why in line["why"].items():
        i = clf.label_ids.index(lid)
        assert why["by"] in ("rhythm", "criteria", "model")
        if why["by"] == "model":  # the model states a label only at or above its threshold
            assert why["score"] >= why["threshold"] - 1e-4
            assert why["score"] == pytest.approx(float(r.scores[i]), abs=1e-4)
        if why["by"] == "criteria":
            assert why["rule"] and why["values"] and all(v is not None for v in why["values"].values())
    assert line["source"] == "bed-3" and line["window_start_sample"] == 1234 and line["fs"] == 500
    assert line["quality"]["ok"] is True and len(line["top"]) == 5 and line["bundle"].startswith("tiny-test@")
    assert "T" in line["t"] and line["skipped"] is False
    import json

    json.dumps(line, ensure_ascii=False)  # plain JSON types only


def test_classify_embedding(clf, record):
    r = clf.classify_window(record[:, :5000], FS)
    again = clf.classify_embedding(r.embedding * 3.0, r.quality, r.measurements, r.rhythm)
    np.testing.assert_allclose(again.scores, r.scores, atol=1e-6)
    assert isinstance(again, Result) and again.top == r.top
    assert again.findings == r.findings and set(again.why) == set(r.why)


def test_classify_record_is_the_mean_of_its_windows(clf, record):
    windows = clf.record_windows(record, FS, hop_s=None)
    assert [w.window_start_sample for w in windows] == [0, 5000, 10000]
    whole = clf.classify_record(record, FS)
    again = clf.classify_record(windows=windows)
    np.testing.assert_allclose(whole.scores, again.scores, atol=1e-6)
    mean = np.mean([w.embedding for w in windows], axis=0)
    np.testing.assert_allclose(whole.embedding, mean / np.linalg.norm(mean), atol=1e-5)
    assert whole.quality.windows == 3 and whole.quality.windows_ok == 3 and whole.quality.ok
    assert set(whole.why) == set(whole.findings + whole.zero_shot_findings)
    assert whole.to_json("f")["quality"]["windows"] == 3
    # a record without a good window is reported, not raised
    bad = record.copy()
    bad[:, ::100] = np.nan
    none = clf.classify_record(bad, FS)
    assert none.skipped and none.quality.windows == 3 and none.quality.windows_ok == 0
    assert none.quality.missing_samples > 0 and none.findings == []
    with pytest.raises(ValueError, match="needs 10 s windows"):
        clf.record_windows(record[:, :1000], FS)


def test_quality_is_typed_and_reads_like_the_report():
    q = Quality.from_dict({"ok": False, "missing_samples": 3, "lead_off": ["V1"], "flat": [], "saturated": [],
                           "implausible": [], "usable_leads": ["I", "II"], "novel": 1})
    assert q["lead_off"] == ["V1"] and q.get("missing_samples") == 3 and "novel" in q
    assert q.problems() == {"lead_off": ["V1"]} and q.to_json()["usable_leads"] == ["I", "II"]
    assert Quality.from_dict(q) is q and not q.failed("x").ok and q.failed("x").error == "x"


# --- ring buffer ---------------------------------------------------------------------------------------
def test_ring_wraps_and_reads_by_absolute_index():
    ring = SampleRing(2, 10)
    ring.start_at(100)
    data = np.arange(2 * 25, dtype=np.float32).reshape(2, 25)
    for a in range(0, 25, 7):
        ring.write(data[:, a : a + 7], np.full(min(7, 25 - a), a, np.uint16))
    assert ring.end == 125 and ring.start == 115
    x, m = ring.read(117, 125)
    np.testing.assert_array_equal(x, data[:, 17:25])
    np.testing.assert_array_equal(m, [14, 14, 14, 14, 21, 21, 21, 21])
    ring.write_missing(3)
    x, _ = ring.read(120, 128)
    assert np.isnan(x[:, 5:]).all() and not np.isnan(x[:, :5]).any()
    with pytest.raises(IndexError):
        ring.read(110, 120)
    ring.write(np.ones((2, 30), np.float32))  # longer than the ring: only the newest samples stay
    assert ring.end == 158 and ring.read(148, 158)[0].sum() == 20


# --- stream ---------------------------------------------------------------------------------------
def _feed_in_chunks(
    stream: StreamClassifier, x: np.ndarray, start: int = 0, seed: int = 0, **kw
) -> list[Result]:
    rng = np.random.default_rng(seed)
    out, pos = [], 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 300))
        out += stream.feed(x[:, pos : pos + n].T, start + pos, **kw)  # [n, C] as frames carry them
        pos += n
    return out


def test_stream_windows_at_hop_positions_equal_file_windows(clf, record):
    stream = StreamClassifier(clf, FS, LEADS, hop_s=2.0)
    results = _feed_in_chunks(stream, record)
    starts = [r.window_start_sample for r in results]
    assert starts == list(range(0, record.shape[1] - 5000 + 1, 1000))
    for r in results[::4]:
        ref = clf.classify_window(record[:, r.window_start_sample : r.window_start_sample + 5000], FS)
        np.testing.assert_allclose(r.scores, ref.scores, atol=1e-6)
        assert r.top == ref.top and r.window_findings == ref.findings  # a stream's findings are the steady set
    assert stream.windows == len(results) == stream.windows_ok


def test_stream_late_join_aligns_to_sample_zero(clf, record):
    stream = StreamClassifier(clf, FS, n_channels=12, hop_s=2.0)
    results = _feed_in_chunks(stream, record[:, 1234:], start=1234, seed=1)
    assert results[0].window_start_sample == 2000
    assert all(r.window_start_sample % 1000 == 0 for r in results)


def test_stream_channels_first_eight_channel_input(clf, record):
    x8 = record[[0, 1, 6, 7, 8, 9, 10, 11], :12000]
    stream = StreamClassifier(clf, FS, EIGHT_CHANNEL_LEADS, hop_s=5.0)
    results = stream.feed(x8, 0)  # [C, n] is accepted too
    assert [r.window_start_sample for r in results] == [0, 2500, 5000, 7000][:3]
    ref = clf.classify_window(record[:, 2500:7500], FS)
    np.testing.assert_allclose(results[1].scores, ref.scores, atol=1e-5)


def test_stream_missing_samples_flag_exactly_the_windows_that_contain_them(clf, record):
    stream = StreamClassifier(clf, FS, LEADS, hop_s=2.0)
    gap = (12000, 12050)  # 50 samples lost in transit
    results = stream.feed(record[:, : gap[0]].T, 0)
    results += stream.feed(record[:, gap[1] :].T, gap[1])  # first_sample jumps: the gap is missing
    for r in results:
        s = r.window_start_sample
        inside = max(0, min(s + 5000, gap[1]) - max(s, gap[0]))
        assert r.quality["missing_samples"] == inside
        assert r.skipped == (inside > 0)
    assert stream.missing_samples == 50
    assert (
        sum(r.skipped for r in results) == 3
    )  # windows starting 8000, 9000, 10000 (the record ends at 15500)


def test_stream_mark_missing_lead_off_and_duplicates(clf, record):
    stream = StreamClassifier(clf, FS, LEADS, hop_s=10.0)
    out = stream.feed(record[:, :3000].T, 0)
    out += stream.mark_missing(3000, 10)
    out += stream.feed(record[:, 2990:5000].T, 2990)  # overlaps what was marked: only new samples count
    mask = np.zeros(5000, np.uint16)
    mask[100:200] = 1 << 7  # V2 off for a while
    out += stream.feed(record[:, 5000:10000].T, 5000, lead_off=mask)
    out += stream.feed(record[:, 10000:15000].T, 10000, lead_off=0)
    assert [r.window_start_sample for r in out] == [0, 5000, 10000]
    assert out[0].quality["missing_samples"] == 10 and out[0].skipped
    assert out[1].quality["lead_off"] == ["V2"] and not out[1].skipped  # partial leads: read on eleven
    assert "V2" not in out[1].quality["usable_leads"]
    assert out[2].quality["ok"]
    assert stream.feed(record[:, 0:100].T, 0) == []  # old samples are ignored


def test_stream_outage_longer_than_the_ring(clf, record):
    stream = StreamClassifier(clf, FS, LEADS, hop_s=10.0)
    stream.feed(record[:, :1000].T, 0)
    out = stream.feed(record[:, :5000].T, 100000)  # the device kept counting through a long outage
    missing = [r for r in out if r.skipped]
    assert [r.window_start_sample for r in out] == list(range(0, 100001, 5000))
    assert len(missing) == 20 and out[0].quality["missing_samples"] == 4000
    assert out[-2].quality["missing_samples"] == 5000 and out[-1].quality["ok"]
    stream.reset()
    again = stream.feed(record[:, :5000].T, 0)
    assert len(again) == 1 and again[0].quality["ok"]


def test_stream_feed_cost_is_vectorised(clf):
    """Feeding 60 s of 12-lead 500 Hz ECG in 10-sample frames, classification excluded, takes little time."""
    import time

    stream = StreamClassifier(clf, FS, LEADS, hop_s=2.0, window_s=1000.0)  # no window completes
    x = np.zeros((FS * 60, 12), np.float32)
    t0 = time.process_time()
    for i in range(0, x.shape[0], 10):
        stream.feed(x[i : i + 10], i)
    per_second = (time.process_time() - t0) / 60
    assert per_second < 0.01  # under 1 % of a core for the buffering (about 0.1 % measured)


def test_device_stream_is_composed_not_mixed_in():
    from edge.runtime.device_stream import DeviceStream
    from edge.runtime.serial import Runtime

    assert not issubclass(Runtime, DeviceStream) and "__init__" in vars(DeviceStream)


def test_event_lines_carry_the_version(clf):
    from edge.runtime.serial import RunConfig, Runtime

    lines = []
    Runtime(clf, RunConfig(port="bed-1"), on_event=lines.append).event("segment", reason="test")
    assert lines[0]["version"] == 3 and lines[0]["event"] == "segment"
