"""The bedside page's HTTP server with limits (issue 25, item 8): the monitoring never depends on the page.

Was: about 1000 idle sockets stopped the page, spun the server at 100 % CPU (a thread each, all contending with
the runtime) and kept the serial port from being reopened after an unplug; every client reset printed a
traceback (300 idle sockets: 303 tracebacks). Here:

- at most ``max_connections`` connections are served at once; one more is closed at once, without a thread;
- every connection has a socket timeout (``timeout_s``): an idle or stalled client is dropped, its thread ends;
- a client error (reset, broken pipe, timeout) is one log line at INFO level, never a traceback on stderr;
  at most one WARNING per minute says that connections are being refused.

The runtime feeds the page through short, lock-protected copies (``edge.views.webview``); with the threads
bounded, page traffic cannot starve the runtime thread.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time

from edge.views.plain_http import ThreadingHTTPServer

__all__ = ["BoundedHTTPServer", "MAX_CONNECTIONS", "TIMEOUT_S"]

logger = logging.getLogger("edge.views.webview")

MAX_CONNECTIONS = 16  # a ward station, a kiosk and a few phones; each page keeps one keep-alive connection
TIMEOUT_S = 15.0  # the page polls every second or so; a silent connection is dropped after this


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a connection cap, per-connection timeouts and one-line error logging."""

    daemon_threads = True
    request_queue_size = 16

    def __init__(
        self, address, handler, max_connections: int = MAX_CONNECTIONS, timeout_s: float = TIMEOUT_S
    ):  # noqa: ANN001
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused = 0  # connections closed because the cap was reached
        self.client_errors = 0
        self._last_warning = 0.0
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:  # noqa: ANN001
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            now = time.monotonic()
            if now - self._last_warning >= 60.0:
                self._last_warning = now
                logger.warning(
                    "web view: %d connections open, refusing more (%d refused so far); the monitoring goes on",
                    self.max_connections,
                    self.refused,
                )
            self.shutdown_request(request)
            return
        try:
            request.settimeout(self.timeout_s)
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # noqa: ANN001
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        """One line per client error (the standard server prints a traceback to stderr)."""
        self.client_errors += 1
        exc = sys.exc_info()[1]
        kind = "timeout" if isinstance(exc, (TimeoutError, socket.timeout)) else type(exc).__name__
        logger.info("web view: client %s: %s (%s)", client_address[0] if client_address else "?", kind, exc)
