"""The web view's server and state without a browser: assets offline, trace samples as sent by the device,
the window's results, per-lead quality, the connection state and its timeline events, one-line CLI errors."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from importlib import resources

import numpy as np
import pytest

import edge.views.webview as webview
from edge.cli.main import main as edge_main
from edge.runtime.engine import Classifier
from edge.runtime.serial import RunConfig, Runtime
from edge.views.view_state import summarise_window
from edge.views.webview import WebView, lead_quality, parse_view_address
from firmware_bridge.frames import Hello, Samples, encode_frame
from firmware_bridge.leads import LEADS_8
from firmware_bridge.synthetic import synthesize, to_counts


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    with Classifier.from_bundle(tiny_bundle) as classifier:
        yield classifier


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_view_address_parsing():
    assert parse_view_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_view_address(":0") == ("127.0.0.1", 0)
    assert parse_view_address("8081") == ("127.0.0.1", 8081)
    assert parse_view_address("[::1]:9000") == ("::1", 9000)
    for bad in ("localhost", "host:http", "1.2.3.4:70000"):
        with pytest.raises(ValueError):
            parse_view_address(bad)


def test_lead_quality_words_and_derived_limb_leads():
    q = {"ok": False, "missing_samples": 0, "lead_off": ["I"], "flat": ["V2"], "saturated": ["V5"],
         "implausible": []}  # fmt: skip
    per_lead = lead_quality(q, list(("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")))
    assert per_lead["I"] == ["lead_off"] and per_lead["V2"] == ["lead_off"] and per_lead["V5"] == ["noise"]
    assert per_lead["III"] == ["lead_off"] and per_lead["aVR"] == ["lead_off"]  # derived from I and II
    assert per_lead["II"] == [] and per_lead["V1"] == []
    assert lead_quality(q, None)["III"] == []  # a 12-lead device records III itself
    assert all(v == ["missing"] for v in lead_quality({"missing_samples": 5}).values())


def test_assets_are_local_and_served(clf):
    folder = resources.files("edge.views").joinpath("web")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["app.js", "i18n.js", "index.html", "style.css"]
    for name in names:
        text = folder.joinpath(name).read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
    with WebView("127.0.0.1", 0) as web:
        status, body = _get(web.url)
        assert (
            status == 200 and b"/app.js" in body and "心拍数".encode() not in body
        )  # words come from i18n.js
        for name in ("app.js", "i18n.js", "style.css"):
            assert _get(web.url + name)[0] == 200
        assert "未検証".encode() in _get(web.url + "i18n.js")[1]
        vocab = json.loads(_get(web.url + "vocabulary.json")[1])  # measurement/quality/why words from Python
        assert vocab["ja"]["lead_off"] == "電極外れ" and vocab["en"]["why_model"] == "model" and "legend" in vocab["ja"]
        assert _get(web.url + "../pyproject.toml")[0] == 404
        state = json.loads(_get(web.url + "api/state")[1])
        assert state["connection"]["state"] == "waiting" and state["window"] is None


def _feed(runtime: Runtime, counts: np.ndarray, start: int, stop: int, seq: int) -> int:
    for a in range(start, stop, 50):
        runtime.process_bytes(encode_frame(Samples(a, counts[:, a : a + 50].T), seq))
        seq += 1
        runtime.on_status(runtime)
    return seq


def test_state_follows_the_stream_and_turns_disconnected(clf, monkeypatch):
    monkeypatch.setattr(webview, "STALE_S", 0.3)
    x = synthesize(rhythm="sinus", fs=500, seed=4, duration_s=14.0)
    eight = x[[0, 1, 6, 7, 8, 9, 10, 11]]
    counts = to_counts(eight, 1000)
    lines: list[dict] = []
    runtime = Runtime(clf, RunConfig(port="bed-3"), on_result=lambda r, line: lines.append(line))
    with WebView("127.0.0.1", 0, labels=clf.labels, bundle=clf.bundle_id) as web:
        web.attach(runtime)
        runtime.connected = True  # as in a port session (process_bytes alone opens none)
        runtime.process_bytes(encode_frame(Hello(500, LEADS_8, 1000, device_id="bed-3"), 0))
        seq = _feed(runtime, counts, 0, 6000, 1)
        state = json.loads(_get(web.url + "api/state")[1])
        assert state["connection"]["state"] == "connected" and state["connection"]["device"] == "bed-3"
        trace = state["trace"]
        assert trace["fs"] == 250 and trace["end"] == 3000 and len(trace["data"]) == 12
        got = np.array(trace["data"], dtype=float) * trace["unit_mv"]  # newest 4 s, every other sample
        want = x[:, 2 * trace["start"] : 6000 : 2]
        assert np.abs(got - want).max() <= 0.006  # 1 µV ADC + 10 µV display steps
        findings = state["window"]["findings"]
        assert [f["id"] for f in findings] == lines[-1]["findings"]
        assert all(isinstance(f["score"], float) and f["ja"] for f in findings)
        m = lines[-1].get("measurements") or {}
        assert state["window"]["hr_bpm"] == m.get("hr_bpm")
        kinds = [e.get("code") or e["kind"] for e in state["timeline"]]  # newest first
        assert kinds[0] == "window" and kinds.index("connected") > kinds.index("window")
        assert "device_changed" in kinds  # the runtime's event line
        cursor = trace["end"]
        same = json.loads(_get(web.url + f"api/state?since={cursor}&v={state['version']}")[1])
        assert "window" not in same and "timeline" not in same  # unchanged: the page keeps its copy
        _feed(runtime, counts, 6000, 6500, seq)
        newer = json.loads(_get(web.url + f"api/state?since={cursor}")[1])["trace"]
        assert newer["start"] == cursor and newer["end"] == 3250 and len(newer["data"][0]) == 250
        time.sleep(0.4)  # no sample for longer than STALE_S: the device counts as gone
        state = json.loads(_get(web.url + "api/state")[1])
        assert state["connection"]["state"] == "disconnected"
        assert [e["code"] for e in state["timeline"] if e["kind"] == "event"][:2] == [
            "disconnected",
            "connected",
        ]


def test_run_view_errors_are_one_line(tiny_bundle, capsys):
    code = edge_main(["run", "--port", "loop://", "--view", "nonsense", "--bundle", str(tiny_bundle)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "HOST:PORT" in err


def test_zero_shot_labels_are_flagged_for_the_page():
    labels = [{"id": "SR", "ja": "洞調律", "en": "sinus rhythm"}, {"id": "BRU", "ja": "ブルガダ"}]
    top = [{"id": "SR", "ja": "洞調律", "en": "sinus rhythm", "score": 0.5},
           {"id": "BRU", "ja": "ブルガダ", "en": "Brugada", "score": 0.4, "zero_shot": True}]  # fmt: skip
    line = {"t": "x", "fs": 500, "window_start_sample": 0, "top": top, "findings": ["SR"],
            "zero_shot_findings": ["BRU"], "quality": {"ok": True, "missing_samples": 0}}  # fmt: skip
    window = summarise_window(line, labels, None, np.array([0.5, 0.4], np.float32))
    assert [(f["id"], f["zero_shot"], f["score"]) for f in window["findings"]] == [
        ("SR", False, 0.5),
        ("BRU", True, 0.4),
    ]
    assert [t["zero_shot"] for t in window["top"]] == [False, True]
    assert not any(f["why"] for f in window["findings"])  # a line without why: nothing is guessed


def test_the_page_shows_why_each_finding_was_stated_never_a_guess():
    labels = [
        {"id": "SR", "ja": "洞調律", "threshold": 0.45},
        {"id": "LNGQT", "ja": "QT延長", "threshold": 0.4},
    ]
    why = {"SR": {"by": "model", "score": 0.5, "threshold": 0.45},
           "LNGQT": {"by": "criteria", "rule": "QT延長: QTc ≥ 460 ms", "values": {"qtc_ms": 478.0}}}  # fmt: skip
    line = {"top": [{"id": "SR", "ja": "洞調律", "score": 0.5}], "findings": ["SR", "LNGQT"], "why": why,
            "quality": {"ok": True}}  # fmt: skip
    window = summarise_window(line, labels, None, np.array([0.5, -0.2], np.float32))
    sr, qt = window["findings"]
    assert sr["why"] == why["SR"] and sr["why_text"] == {"ja": "モデル 0.500 ≥ 0.450", "en": "model 0.500 ≥ 0.450"}
    assert qt["score"] == pytest.approx(-0.2)  # the cosine, as it is
    assert qt["why_text"]["ja"] == "基準 QT延長: QTc ≥ 460 ms: QTc (Bazett) 478 ms"
    assert qt["why_text"]["en"].startswith("criterion QT延長")
    # the same words everywhere: the page loads them from Python
    from edge.views.present import vocabulary

    vocab = vocabulary()
    assert vocab["ja"]["why_criteria"] == "基準" and vocab["en"]["lead_off"] == "lead off"
    assert "コサイン" in vocab["ja"]["legend"] and "cosine" in vocab["en"]["legend"]


def test_lead_off_reaches_the_page_live_and_with_the_window(clf):
    """V2's electrode off (bit 3 of an 8-channel device) and a gap of lost frames: 電極外れ and 欠損 per lead."""
    counts = to_counts(
        synthesize(rhythm="sinus", fs=500, seed=5, duration_s=12.0)[[0, 1, 6, 7, 8, 9, 10, 11]], 1000
    )
    runtime = Runtime(clf, RunConfig(port="bed-4"))
    web = WebView(labels=clf.labels)
    web.attach(runtime)
    runtime.connected = True
    runtime.process_bytes(encode_frame(Hello(500, LEADS_8, 1000), 0))
    for seq, a in enumerate(range(0, 6000, 50), 1):
        if 3000 <= a < 3100:
            continue  # two frames lost: 100 missing samples
        runtime.process_bytes(encode_frame(Samples(a, counts[:, a : a + 50].T, lead_off=1 << 3), seq))
        runtime.on_status(runtime)
    state = web.state(since=0)  # the whole 12 s kept
    assert state["connection"]["live_lead_off"] == ["V2"]
    window = state["window"]
    assert (
        not window["quality_ok"]
        and window["skipped"]
        and set(window["quality_text"]) == {"missing", "lead_off"}
    )
    assert window["lead_quality"]["V2"] == ["lead_off", "missing"] and window["lead_quality"]["V1"] == [
        "missing"
    ]
    data = np.array(state["trace"]["data"][7], dtype=float)  # V2 at 250 Hz: the lost samples are gaps (None)
    assert np.isnan(data).sum() == 50
