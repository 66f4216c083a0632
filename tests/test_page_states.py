"""Honest page states (issue 23, item 4): device disconnected, runtime not answering and no usable lead are three
different messages, and after the runtime stops the page no longer sends staff to the cable.

The page's own JavaScript (edge/views/web/i18n.js + app.js) runs in Node with a stub DOM; skipped without Node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.views.present import vocabulary
from edge.views.view_state import summarise_window

WEB = Path(__file__).resolve().parents[1] / "edge" / "views" / "web"
NODE = shutil.which("node") or shutil.which("nodejs")

_STUB = r"""
const el = () => new Proxy({ dataset: {}, classList: { toggle() {}, add() {}, remove() {} }, style: {},
  textContent: "", innerHTML: "", hidden: false },
  { get(o, k) { if (k in o) return o[k];
      if (k === "getBoundingClientRect") return () => ({ width: 800, height: 480 });
      if (k === "getContext") return () => new Proxy({}, { get: () => () => {} , set: () => true });
      return () => {}; } });
const els = {};
globalThis.document = { getElementById: (id) => (els[id] = els[id] || el()), querySelectorAll: () => [],
  documentElement: {}, title: "" };
globalThis.location = { search: "" };
globalThis.localStorage = { getItem: () => null, setItem() {} };
globalThis.window = { devicePixelRatio: 1, addEventListener() {} };
let now = 0;
globalThis.performance = { now: () => now };
globalThis.fetch = (url) => url.startsWith("/vocabulary.json")  // the server's words (edge.views.present)
  ? Promise.resolve({ json: () => Promise.resolve(VOCABULARY) }) : Promise.reject(new Error("no server"));
globalThis.setInterval = () => 0; globalThis.setTimeout = () => 0; globalThis.clearTimeout = () => {};
globalThis.requestAnimationFrame = () => 0;
"""

_PROBE = r"""
function show(state, lastOkAgo) {
  now = 10000; view.lastOk = now - lastOkAgo; view.state = state; render();
  return { pill: els.conn.textContent, overlay: els["overlay-text"].textContent, sub: els["overlay-sub"].textContent,
           overlayHidden: els.overlay.hidden, findings: els.findings.innerHTML, quality: els["quality-text"].textContent };
}
const base = { connection: { state: "connected" }, timeline: [] };
setImmediate(() => setImmediate(() => {  // after loadVocabulary()
const out = {
  device_gone: show({ ...base, connection: { state: "disconnected" }, window: null }, 100),
  runtime_gone: show({ ...base, window: null }, 5000),
  waiting: show({ ...base, connection: { state: "waiting" }, window: null }, 100),
  no_usable: show({ ...base, window: WINDOW_NO_LEAD }, 100),
  partial: show({ ...base, window: WINDOW_PARTIAL }, 100),
};
console.log(JSON.stringify(out));
}));
"""


def _window(quality: dict, **extra) -> dict:
    line = {
        "t": "2026-01-01T00:00:00",
        "fs": 500,
        "window_start_sample": 0,
        "top": [],
        "findings": [],
        "quality": quality,
        "measurements": {"hr_bpm": 72.0},
        **extra,
    }
    return summarise_window(line, [], [])


def test_view_state_words_for_no_usable_lead_and_inconsistency():
    none = _window(
        {
            "ok": False,
            "missing_samples": 0,
            "lead_off": ["I", "II"],
            "flat": [],
            "saturated": [],
            "implausible": [],
            "usable_leads": [],
            "inconsistent": [],
        },
        skipped=True,
    )
    assert "no_usable" in none["quality_text"]
    swap = _window(
        {
            "ok": True,
            "missing_samples": 0,
            "lead_off": [],
            "flat": [],
            "saturated": [],
            "implausible": [],
            "usable_leads": ["V1"],
            "inconsistent": ["limb_reversal"],
        },
        withheld={"LAD": "保留: 誘導 I が使えない"},
    )
    assert swap["quality_text"] == ["inc_limb_reversal"] and swap["withheld"] == {
        "LAD": "保留: 誘導 I が使えない"
    }


@pytest.mark.skipif(NODE is None, reason="Node.js not installed")
def test_three_states_are_three_messages(tmp_path):
    no_lead = _window(
        {
            "ok": False,
            "missing_samples": 0,
            "lead_off": list("12"),
            "flat": [],
            "saturated": [],
            "implausible": [],
            "usable_leads": [],
            "inconsistent": [],
        },
        skipped=True,
    )
    partial = _window(
        {
            "ok": True,
            "missing_samples": 0,
            "lead_off": ["V2"],
            "flat": [],
            "saturated": [],
            "implausible": [],
            "usable_leads": ["I", "II", "V1"],
            "inconsistent": [],
        },
        withheld={"NORM": "保留: 誘導 V2 が使えない"},
    )
    script = (
        "const VOCABULARY = "
        + json.dumps(vocabulary(), ensure_ascii=False)
        + ";\n"
        + _STUB
        + (WEB / "i18n.js").read_text(encoding="utf-8")
        + "\n"
        + (WEB / "app.js").read_text(encoding="utf-8")
        + "\nconst WINDOW_NO_LEAD = "
        + json.dumps(no_lead)
        + ";\nconst WINDOW_PARTIAL = "
        + json.dumps(partial)
        + ";\n"
        + _PROBE
    )
    path = tmp_path / "page.js"
    path.write_text(script, encoding="utf-8")
    proc = subprocess.run([NODE, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    device, runtime, waiting = out["device_gone"], out["runtime_gone"], out["waiting"]
    assert not device["overlayHidden"] and not runtime["overlayHidden"]
    assert len({device["overlay"], runtime["overlay"], waiting["overlay"]}) == 3
    assert "ケーブル" in device["sub"]  # the device is gone: the cable and power are the place to look
    assert "ケーブル" not in runtime["overlay"] and "ソフトウェア" in runtime["overlay"]
    assert "ケーブルと電源を確認してください" not in runtime["sub"] and runtime["pill"] != device["pill"]
    assert "使える誘導がありません" in out["no_usable"]["findings"]
    assert "使える誘導がありません" not in out["partial"]["findings"] and "保留" in out["partial"]["findings"]
    assert "電極外れ" in out["partial"]["quality"]
