"""The bedside web view: a small offline HTTP server inside the runtime (``ecg-edge run --view HOST:PORT``).

Standard library only (``http.server`` in one daemon thread; a thread per open request), every asset
served from the package (``edge/web/``: HTML, JavaScript, CSS; no CDN, no web font download). The page
polls ``/api/state?since=N`` four times a second and gets one JSON object: the connection state, the
newest trace samples after display index ``N`` (12 leads, decimated to about 250 Hz, 10 µV steps), the
last window's measurements, findings, top labels and per-lead quality, and a timeline of past windows
and events. Polling instead of a push channel keeps the server stateless per client, and a page that
gets no answer for 2 s shows 切断 by itself (the runtime process is gone).

The runtime side is hooks chained by :meth:`WebView.attach`, all called in the runtime's thread:
:meth:`WebView.on_status` after every read (copies new samples out of the stream's ring and notes when data
last arrived), :meth:`WebView.on_result` for every window, and :meth:`WebView.on_event` for the runtime's
event lines (new device format, refused device) where it emits them. The connection state is decided
when a page asks, from ``runtime.connected`` and the age of the newest sample, so it changes to
``disconnected`` within about a second of a pulled cable even while the runtime sits in its reconnect
backoff and calls no hook (a pty closed under the runtime showed 切断 on the page after 0.16-0.20 s, N=5;
a device that goes silent with its port open after ``STALE_S`` plus one poll). What the page shows of a
window (trace buffer, findings, per-lead quality) is computed in :mod:`edge.views.view_state`.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from edge.dsp.signal import LEADS
from edge.views.http_limits import BoundedHTTPServer
from edge.views.plain_http import BaseHTTPRequestHandler
from edge.views.present import vocabulary
from edge.views.view_state import TraceBuffer, lead_quality, summarise_window

__all__ = ["WebView", "parse_view_address", "lead_quality", "STALE_S"]  # lead_quality: edge.views.view_state

logger = logging.getLogger(__name__)

STALE_S = 1.0  # no new sample for this long: the device counts as disconnected (the traces stop)
TIMELINE = 60  # past windows and events kept
_WEB = Path(__file__).resolve().parent / "web"  # the page's files (not importlib.resources: tempfile, shutil, bz2, lzma)
_ASSETS = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
    "/i18n.js": ("i18n.js", "text/javascript"),
}


def parse_view_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, or ``PORT``) -> (host, port); host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"--view wants HOST:PORT (e.g. 127.0.0.1:8080), got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"--view port must be 0..65535, got {number}")
    return host.strip("[]") or "127.0.0.1", number


class WebView:
    """State for the bedside page and the HTTP server that serves it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        labels: list[dict] | None = None,
        bundle: str | None = None,
        warning: str | None = None,
    ) -> None:
        self.host, self.port = host, port
        self._labels = list(labels or [])
        self.bundle = bundle
        self.bundle_warning = warning  # a bundle loaded with --allow-unsigned: the page shows it all along
        self._lock = threading.Lock()
        self._runtime = None
        self._stream = None  # the StreamClassifier whose ring the trace follows
        self._trace: TraceBuffer | None = None
        self._raw_end: int | None = None  # raw index one past the newest sample copied
        self._last_data: float | None = None  # monotonic time of the newest sample
        self._live_off: list[str] = []
        self._window: dict | None = None
        self._timeline: collections.deque = collections.deque(maxlen=TIMELINE)
        self._was_connected = False
        self._version = 0  # +1 whenever the window or the timeline changes
        self._server: BoundedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- runtime hooks (runtime thread) -----------------------------------------------------------
    def attach(self, runtime) -> None:  # noqa: ANN001 - edge.runtime.serial.Runtime
        """Chain this view's hooks after the runtime's own ``on_status``, ``on_result`` and ``on_event``."""
        status, result = runtime.on_status, runtime.on_result

        def on_status(rt) -> None:  # noqa: ANN001
            status(rt)
            self.on_status(rt)

        def on_result(r, line: dict) -> None:  # noqa: ANN001
            result(r, line)
            self.on_result(r, line)

        runtime.on_status, runtime.on_result = on_status, on_result
        self._runtime = runtime
        event = getattr(runtime, "on_event", None)
        if event is not None:  # contract-5 event lines, where the runtime emits them

            def on_event(line: dict) -> None:
                event(line)
                self.on_event(line)

            runtime.on_event = on_event

    def on_event(self, line: dict) -> None:
        """A contract-5 event line; connects and disconnects are seen by :meth:`connection` already."""
        name = line.get("event")
        if name in (None, "disconnected", "reconnected"):
            return
        if name == "device_changed":
            leads = ",".join(line.get("leads") or [])
            detail = f"{line.get('device') or '?'} {line.get('fs')} Hz {leads}"
        else:
            detail = str(line.get("reason") or line.get("device") or "")
        self.add_event("warning" if name == "device_rejected" else "info", detail, name)

    def on_status(self, runtime) -> None:  # noqa: ANN001 - edge.runtime.serial.Runtime
        """Copy the samples that arrived since the last call out of the stream's ring."""
        self._runtime = runtime
        self._copy_samples(runtime)
        self.connection()  # a change of state goes to the timeline when it happens, not when a page asks

    def _copy_samples(self, runtime) -> None:  # noqa: ANN001
        stream = runtime.stream
        if stream is None or stream.ring.end is None:
            return
        ring = stream.ring
        with self._lock:
            if stream is not self._stream or self._raw_end is None or ring.end < self._raw_end:
                self._stream, self._raw_end = stream, ring.start
                self._trace = TraceBuffer(stream.fs, stream.leads)
            if ring.end <= self._raw_end:
                return
            begin = max(self._raw_end, ring.start)
            x, masks = ring.read(begin, ring.end)
            self._trace.add(x, begin)
            self._raw_end = ring.end
            if np.isfinite(x[:, -1]).any():
                self._last_data = time.monotonic()
            mask = int(np.bitwise_or.reduce(masks[-max(1, int(stream.fs)) :].astype(np.int64)))
            self._live_off = [name for i, name in enumerate(stream.leads) if mask >> i & 1]

    def on_result(self, result, line: dict) -> None:  # noqa: ANN001 - edge.runtime.engine.Result
        """Keep a window's result for the page and its timeline."""
        leads = self._stream.leads if self._stream is not None else None
        window = summarise_window(line, self._labels, leads, getattr(result, "scores", None))
        with self._lock:
            self._window = window
            self._version += 1
            self._timeline.appendleft(
                {
                    "kind": "window",
                    **{
                        k: window[k]
                        for k in ("t", "window_start_s", "findings", "quality_ok", "hr_bpm", "quality_text")
                    },
                }
            )

    def add_event(self, level: str, text: str, code: str | None = None) -> None:
        with self._lock:
            self._version += 1
            self._timeline.appendleft(
                {"kind": "event", "t": _now(), "level": level, "text": text, "code": code}
            )

    # --- state for the page -----------------------------------------------------------------------
    def connection(self) -> dict:
        """``connected`` | ``waiting`` (never connected yet) | ``disconnected``, with details."""
        runtime = self._runtime
        now = time.monotonic()
        age = None if self._last_data is None else now - self._last_data
        hello = getattr(runtime, "hello", None)
        if runtime is not None and runtime.connected and age is not None and age <= STALE_S:
            state = "connected"
        elif self._last_data is None:
            state = "waiting"
        else:
            state = "disconnected"
        if state == "connected" and not self._was_connected:
            self._was_connected = True
            self.add_event("info", "", "connected")
        elif state == "disconnected" and self._was_connected:
            self._was_connected = False
            self.add_event("warning", "", "disconnected")
        stats = getattr(runtime, "stats", None)
        return {
            "state": state,
            "port": getattr(getattr(runtime, "config", None), "port", None),
            "device": getattr(hello, "device_id", None),
            "fs": getattr(hello, "fs_hz", None),
            "device_leads": list(self._stream.leads) if self._stream is not None else [],
            "data_age_s": None if age is None else round(age, 2),
            "reconnects": getattr(stats, "reconnects", 0),
            "windows": getattr(stats, "windows", 0),
            "missing_samples": getattr(stats, "missing_samples", 0),
            "live_lead_off": list(self._live_off) if state == "connected" else [],
        }

    def state(self, since: int | None = None, version: int | None = None) -> dict:
        """The JSON object of ``/api/state``: trace samples after display index ``since``; the window and
        the timeline only when they changed after ``version`` (the page keeps what it has)."""
        connection = self.connection()
        with self._lock:
            trace = self._trace.since(since) if self._trace is not None else {"end": None, "data": []}
            state = {
                "server_time": _now(),
                "bundle": self.bundle,
                "bundle_warning": self.bundle_warning,
                "leads": list(LEADS),
                "connection": connection,
                "trace": trace,
                "version": self._version,
            }
            if version != self._version:
                state["window"] = self._window
                state["timeline"] = list(self._timeline)[:30]
            return state

    # --- server -----------------------------------------------------------------------------------
    def start(self) -> str:
        """Serve in a daemon thread; returns the page's URL."""
        view = self

        class Handler(_Handler):
            pass

        Handler.view = view
        self._server = BoundedHTTPServer((self.host, self.port), Handler)  # capped, timed out, one-line errors
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="ecg-webview", daemon=True
        )
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebView:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    view: WebView
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per page, not one per poll
    server_version = "ecg-edge-view"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlsplit(self.path)
        if url.path == "/api/state":
            query = parse_qs(url.query)
            since, version = (_int(query, key) for key in ("since", "v"))
            body = json.dumps(self.view.state(since, version), ensure_ascii=False, separators=(",", ":"))
            self._send(body.encode(), "application/json")
        elif url.path == "/vocabulary.json":  # the words of edge.views.present: one vocabulary for every view
            self._send(json.dumps(vocabulary(), ensure_ascii=False).encode(), "application/json")
        elif url.path in _ASSETS:
            name, kind = _ASSETS[url.path]
            self._send((_WEB / name).read_bytes(), kind)
        else:
            self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)

    def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        logger.debug("%s " + format, self.address_string(), *args)


def _int(query: dict, key: str) -> int | None:
    try:
        return int(query[key][0]) if key in query else None
    except ValueError:
        return None


def _now() -> str:
    from edge.runtime.result import now_iso

    return now_iso()
