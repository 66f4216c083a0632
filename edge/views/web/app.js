// The bedside page: polls /api/state, draws the ECG on a paper grid (25 mm/s, 10 mm/mV; 50 mm/s and half or
// double gain on the buttons, or ?speed=50&gain=5 in the address) and the results.
"use strict";

const POLL_MS = 250;
const SERVER_LOST_MS = 2000; // no answer for this long: the runtime is gone, show 切断
const KEEP_S = 12; // seconds of trace kept in the page
const ROW_MM = { 3: 25, 12: 15 }; // height of one lead's row on the paper, in mm
const SPEEDS = [25, 50]; // mm/s
const GAINS = [10, 20, 5]; // mm/mV: standard, double, half (the button cycles in this order)
const LEAD_SETS = { 3: ["II", "V1", "V5"], 12: ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"] };

const params = new URLSearchParams(location.search);
const view = {
  lang: params.get("lang") || localStorage.getItem("ecg-lang") || "ja",
  nLeads: Number(params.get("leads") || localStorage.getItem("ecg-leads") || 3) === 12 ? 12 : 3,
  speed: SPEEDS.includes(Number(params.get("speed") || localStorage.getItem("ecg-speed"))) ? Number(params.get("speed") || localStorage.getItem("ecg-speed")) : 25,
  gain: GAINS.includes(Number(params.get("gain") || localStorage.getItem("ecg-gain"))) ? Number(params.get("gain") || localStorage.getItem("ecg-gain")) : 10,
  fs: 250, end: null, cursor: null, version: null, buf: null, leads: LEAD_SETS[12],
  play: null, lastFrame: null, lastOk: performance.now(), state: null, conn: "waiting",
};

const $ = (id) => document.getElementById(id);
const t = (key) => (I18N[view.lang] && I18N[view.lang][key]) || I18N.ja[key] || key;
const fmt = (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toFixed(digits));

// --- trace buffer: display index -> mV per lead ------------------------------------------------
function resetBuffer(fs) {
  view.fs = fs;
  view.cap = Math.round(KEEP_S * fs);
  view.buf = view.leads.map(() => new Float32Array(view.cap).fill(NaN));
  view.end = null; view.play = null;
}

function addTrace(trace) {
  if (!trace || trace.end === null || trace.end === undefined) return;
  if (!view.buf || trace.fs !== view.fs || (view.end !== null && trace.end < view.end - view.cap)) resetBuffer(trace.fs);
  const unit = trace.unit_mv || 0.01;
  for (let li = 0; li < trace.data.length; li++) {
    const row = trace.data[li], out = view.buf[li];
    for (let k = 0; k < row.length; k++) {
      const v = row[k];
      out[(trace.start + k) % view.cap] = v === null ? NaN : v * unit;
    }
  }
  view.end = trace.end;
  view.cursor = trace.end;
}

// --- polling ------------------------------------------------------------------------------------
async function poll() {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 1500);
  try {
    const q = new URLSearchParams();
    if (view.cursor !== null) q.set("since", view.cursor);
    if (view.version !== null) q.set("v", view.version); // window and timeline only when they changed
    const res = await fetch(`/api/state?${q}`, { signal: ctl.signal, cache: "no-store" });
    const state = await res.json();
    view.lastOk = performance.now();
    if (state.trace && state.trace.end !== null && view.end !== null && state.trace.end < view.end) {
      view.cursor = null; resetBuffer(state.trace.fs); // a new stream: start over
    }
    addTrace(state.trace);
    view.state = { ...(view.state || {}), ...state };
    view.version = state.version;
    render();
  } catch (e) {
    // no answer: the watchdog below decides when this means 切断
  } finally {
    clearTimeout(timer);
  }
}

function connectionState() {
  if (performance.now() - view.lastOk > SERVER_LOST_MS) return "server_lost";
  return (view.state && view.state.connection.state) || "waiting";
}

// --- results panel ------------------------------------------------------------------------------
function labelName(item) { return (view.lang === "en" ? item.en : item.ja) || item.ja || item.id; }

function render() {
  document.documentElement.lang = view.lang;
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  $("lang-toggle").textContent = view.lang === "ja" ? "EN" : "日本語";
  $("leads-toggle").textContent = view.nLeads === 3 ? t("leads12") : t("leads3");
  const nonStandard = view.speed !== 25 || view.gain !== 10;
  $("scale").textContent = `${view.speed} mm/s  ${view.gain} mm/mV` + (nonStandard ? `  (${t("scale_nonstandard")})` : "");
  $("scale").classList.toggle("nonstandard", nonStandard);
  $("speed-toggle").textContent = `${view.speed} mm/s`;
  $("gain-toggle").textContent = `${view.gain} mm/mV`;
  renderConnection();
  const s = view.state;
  if (!s) return;
  const w = s.window;
  const m = (w && w.measurements) || {};
  $("hr").textContent = w && !w.skipped ? fmt(m.hr_bpm) : "—";
  const rows = [["m_rr_ms", m.rr_ms, "ms"], ["m_pr_ms", m.pr_ms, "ms"], ["m_qrs_ms", m.qrs_ms, "ms"],
    ["m_qt_ms", m.qt_ms, "ms"], ["m_qtc_ms", m.qtc_ms, "ms"], ["m_axis_deg", m.axis_deg, "°"]];
  const show = w && !w.skipped;
  $("intervals").innerHTML = rows.map(([k, v, u]) =>
    `<tr><th>${t(k)}</th><td>${show ? fmt(v) : "—"}</td><td class="dim">${u}</td></tr>`).join("");
  const list = $("findings");
  if (!w) list.innerHTML = `<li class="dim">${t("no_window")}</li>`;
  else if (w.skipped) list.innerHTML = `<li class="bad">${t(w.quality_text.includes("no_usable") ? "no_usable" : "skipped")}</li>`;
  else if (!w.findings.length) list.innerHTML = `<li class="dim">${t("no_findings")}</li>`;
  else list.innerHTML = w.findings.map((f) => findingItem(f)).join("");
  if (w && !w.skipped) {
    const others = w.top.filter((x) => !x.finding).slice(0, 3);
    if (others.length) list.innerHTML += `<li class="dim small">${t("top")}: ` +
      others.map((x) => `${esc(labelName(x))} ${fmt(x.score, 3)}${x.zero_shot ? ` <span class="tag" title="${t("unverified_title")}">${t("unverified")}</span>` : ""}`).join(t("comma")) + "</li>";
  }
  if (w && !w.skipped && w.withheld) {  // statements that need a missing or inconsistent lead, with the reason
    for (const [id, why] of Object.entries(w.withheld)) {
      const name = labelName({id, ...((w.withheld_names || {})[id] || {})});
      list.innerHTML += `<li class="dim small">${t("withheld")}: ${esc(name)} — ${esc(String(why).replace(/^保留: /, ""))}</li>`;
    }
  }
  $("quality-text").textContent = w ? (w.quality_ok && !w.quality_text.length ? t("ok") : w.quality_text.map(t).join("・")) : "";
  renderLeadQuality(w);
  renderTimeline(s.timeline || []);
}

function findingItem(f) {
  // Why it was stated (rhythm analysis, a criterion with its values, the model's cosine >= threshold), as the
  // runtime decided it (contract 5 v3 "why"): never guessed here. The bar is the cosine, as it is.
  const why = f.why_text ? (f.why_text[view.lang] || f.why_text.ja) : "";
  const bar = f.score > 0 ? `<span class="bar" style="width:${Math.min(1, f.score) * 100}%"></span>` : "";
  const tag = f.zero_shot ? ` <span class="tag" title="${t("unverified_title")}">${t("unverified")}</span>` : "";
  const where = f.alarm && f.alarm_text ? ` <span class="where">${esc(f.alarm_text)}</span>` : "";
  return `<li class="finding${f.zero_shot ? " zero-shot" : ""}${f.alarm ? " alarm" : ""}"><span class="name">${esc(labelName(f))}</span>${where}${tag}` +
    ` <span class="why small dim">${esc(why)}</span><span class="barbox">${bar}</span></li>`;
}

function leadProblems(lead, w) {
  const problems = new Set((w && w.lead_quality && w.lead_quality[lead]) || []);
  const c = view.state && view.state.connection;
  if (c && c.live_lead_off && c.live_lead_off.includes(lead)) problems.add("lead_off");
  return [...problems];
}

function renderLeadQuality(w) {
  $("lead-quality").innerHTML = LEAD_SETS[12].map((lead) => {
    const p = leadProblems(lead, w);
    const cls = p.includes("lead_off") ? "off" : p.includes("noise") ? "noise" : p.includes("missing") ? "missing" : "ok";
    const title = p.length ? p.map(t).join("・") : t("ok");
    return `<span class="chip ${cls}" title="${title}">${lead}${p.length ? " " + p.map(t).join("・") : ""}</span>`;
  }).join("");
}

function clock(iso) { return iso ? iso.slice(11, 19) : ""; }

function renderTimeline(items) {
  $("timeline").innerHTML = items.slice(0, 20).map((it) => {
    if (it.kind === "event") {
      const text = (it.code ? t("ev_" + it.code) : "") + (it.text ? " " + it.text : "");
      return `<li class="event ${it.level}"><time>${clock(it.t)}</time> ${esc(text)}</li>`;
    }
    const body = !it.quality_ok ? `<span class="bad">${it.quality_text.map(t).join("・")}</span>` :
      (it.findings.length ? it.findings.map((f) => esc(labelName(f)) + (f.zero_shot ? `(${t("unverified")})` : "")).join(t("comma")) : `<span class="dim">${t("no_findings")}</span>`);
    return `<li><time>${clock(it.t)}</time> <b>${fmt(it.hr_bpm)}</b><small>bpm</small> ${body}</li>`;
  }).join("");
}

function renderConnection() {
  const state = connectionState();
  view.conn = state;
  const pill = $("conn");
  const cls = state === "server_lost" ? "disconnected" : state;
  pill.className = "pill " + cls;
  pill.dataset.state = cls;
  pill.textContent = t(state);
  const warning = view.state && view.state.bundle_warning;  // --allow-unsigned: shown as long as it runs
  $("bundle-warning").hidden = !warning;
  $("bundle-warning").textContent = warning ? "⚠ " + warning : "";
  const c = view.state && view.state.connection;
  $("device").textContent = c ? [c.device, c.port, c.fs ? c.fs + " Hz" : null,
    c.reconnects ? `${t("reconnects")} ${c.reconnects}` : null].filter(Boolean).join(" · ") : "";
  const overlay = $("overlay");
  overlay.hidden = cls === "connected";
  const stale = cls !== "connected" && !!(view.state && view.state.window);
  $("side").classList.toggle("stale", stale);
  $("stale-note").hidden = !stale;
  // Three different states: waiting for a device, the device gone (cable, power), the runtime itself gone.
  const long = { waiting: "waiting_long", server_lost: "server_lost_long" }[state] || "disconnected_long";
  const sub = { waiting: null, server_lost: "server_lost_sub" }[state];
  $("overlay-text").textContent = t(long);
  $("overlay-sub").textContent = sub === null ? "" : t(sub || "disconnected_sub");
}

function esc(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

// --- the ECG ------------------------------------------------------------------------------------
function layout() {
  const box = $("traces").getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  for (const c of [$("grid"), $("ecg")]) {
    c.width = Math.round(box.width * dpr); c.height = Math.round(box.height * dpr);
    c.style.width = box.width + "px"; c.style.height = box.height + "px";
  }
  const cols = view.nLeads === 12 ? 2 : 1;
  const rows = view.nLeads / cols;
  view.pxPerMm = (box.height * dpr) / (rows * ROW_MM[view.nLeads]);
  view.cols = cols; view.rows = rows; view.dpr = dpr;
  view.colWidth = (box.width * dpr) / cols;
  drawGrid();
}

function drawGrid() {
  const c = $("grid"), g = c.getContext("2d"), mm = view.pxPerMm;
  g.fillStyle = "#fff8f6"; g.fillRect(0, 0, c.width, c.height);
  for (const [step, color, width] of [[1, "#f6d3cc", 1], [5, "#e9a396", 1.2]]) {
    g.strokeStyle = color; g.lineWidth = width * view.dpr; g.beginPath();
    for (let x = 0; x <= c.width; x += step * mm) { g.moveTo(Math.round(x) + 0.5, 0); g.lineTo(Math.round(x) + 0.5, c.height); }
    for (let y = 0; y <= c.height; y += step * mm) { g.moveTo(0, Math.round(y) + 0.5); g.lineTo(c.width, Math.round(y) + 0.5); }
    g.stroke();
  }
}

function drawTraces(now) {
  const c = $("ecg"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const mm = view.pxPerMm, dpr = view.dpr;
  const live = view.conn === "connected";
  if (view.end !== null && live) { // playback clock: real time, a little behind the newest sample
    const dt = view.lastFrame === null ? 0 : (now - view.lastFrame) / 1000;
    view.play = view.play === null ? view.end - 0.3 * view.fs : view.play + dt * view.fs;
    if (view.play > view.end) view.play = view.end;
    if (view.play < view.end - 1.0 * view.fs) view.play = view.end - 0.3 * view.fs;
  }
  view.lastFrame = now;
  const names = LEAD_SETS[view.nLeads];
  const pxPerSample = (view.speed * mm) / view.fs; // 25 or 50 mm/s
  const w = view.state && view.state.window;
  for (let i = 0; i < names.length; i++) {
    const col = Math.floor(i / view.rows), row = i % view.rows;
    const x0 = col * view.colWidth, rowH = ROW_MM[view.nLeads] * mm;
    const base = (row + 0.6) * rowH;
    const problems = leadProblems(names[i], w);
    g.font = `${Math.round(12 * dpr)}px sans-serif`;
    g.fillStyle = problems.length ? "#c0392b" : "#333";
    g.fillText(names[i] + (problems.length ? "  " + problems.map(t).join("・") : ""), x0 + 4 * dpr, row * rowH + 13 * dpr);
    // 1 mV calibration pulse, 5 mm wide (200 ms)
    const calX = x0 + 2 * mm;
    g.strokeStyle = "#222"; g.lineWidth = 1.2 * dpr; g.beginPath();
    const cal = view.gain * mm; // 1 mV at the chosen gain
    g.moveTo(calX - mm, base); g.lineTo(calX, base); g.lineTo(calX, base - cal);
    g.lineTo(calX + 5 * mm, base - cal); g.lineTo(calX + 5 * mm, base); g.lineTo(calX + 6 * mm, base); g.stroke();
    if (view.play === null || !view.buf) continue;
    const li = view.leads.indexOf(names[i]);
    const left = x0 + 9 * mm, width = view.colWidth - 9 * mm - 2 * dpr;
    const n = Math.floor(width / pxPerSample);
    const head = Math.floor(view.play), first = Math.max(head - n, view.end - view.cap + 1);
    const data = view.buf[li];
    let sum = 0, cnt = 0; // baseline: mean of what is shown
    for (let k = first; k < head; k++) { const v = data[k % view.cap]; if (v === v) { sum += v; cnt++; } }
    const mean = cnt ? sum / cnt : 0;
    g.strokeStyle = live ? "#111" : "#777"; g.lineWidth = 1.3 * dpr; g.beginPath();
    let pen = false;
    for (let k = first; k < head; k++) {
      const v = data[k % view.cap];
      if (v !== v) { pen = false; continue; }
      const x = left + width - (head - k) * pxPerSample, y = base - (v - mean) * view.gain * mm; // 5, 10 or 20 mm/mV
      if (pen) g.lineTo(x, y); else g.moveTo(x, y);
      pen = true;
    }
    g.stroke();
  }
  requestAnimationFrame(drawTraces);
}

// --- controls -----------------------------------------------------------------------------------
$("lang-toggle").addEventListener("click", () => {
  view.lang = view.lang === "ja" ? "en" : "ja"; localStorage.setItem("ecg-lang", view.lang); render();
});
$("leads-toggle").addEventListener("click", () => {
  view.nLeads = view.nLeads === 3 ? 12 : 3; localStorage.setItem("ecg-leads", String(view.nLeads)); layout(); render();
});
$("speed-toggle").addEventListener("click", () => {
  view.speed = SPEEDS[(SPEEDS.indexOf(view.speed) + 1) % SPEEDS.length]; localStorage.setItem("ecg-speed", String(view.speed)); render();
});
$("gain-toggle").addEventListener("click", () => {
  view.gain = GAINS[(GAINS.indexOf(view.gain) + 1) % GAINS.length]; localStorage.setItem("ecg-gain", String(view.gain)); render();
});
window.addEventListener("resize", layout);

// The vocabulary shared with the terminal view and the report (edge.views.present): loaded once, merged in.
async function loadVocabulary() {
  try {
    const vocab = await (await fetch("/vocabulary.json", { cache: "no-store" })).json();
    for (const lang of Object.keys(I18N)) I18N[lang] = { ...(vocab[lang] || {}), ...I18N[lang] };
  } catch (e) {
    // no vocabulary: keys are shown as they are until the next load
  }
  render();
}

resetBuffer(250);
layout();
render();
loadVocabulary();
poll();
setInterval(poll, POLL_MS);
setInterval(renderConnection, 250); // the watchdog: 切断 within 2 s even when polls hang
requestAnimationFrame(drawTraces);
