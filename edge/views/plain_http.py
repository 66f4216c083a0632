"""``http.server`` for the bedside page without loading OpenSSL (issue #23: the memory budget on a plain board).

``http.server`` imports ``http.client``, which imports ``ssl`` to offer HTTPS: on the board that maps OpenSSL
into the runtime for about 4 MB of resident memory, for a page served in plain HTTP on the ward's own network.
This module imports ``http.server`` with ``ssl`` hidden (``http.client`` then simply has no HTTPS classes) and
puts ``ssl`` back, so anything that imports it later still gets it. When ``ssl`` is already loaded nothing is
hidden.
"""

from __future__ import annotations

import sys

__all__ = ["BaseHTTPRequestHandler", "ThreadingHTTPServer"]


def _server_without_ssl():  # noqa: ANN202 - the http.server module
    hide = "ssl" not in sys.modules
    if hide:
        sys.modules["ssl"] = None  # type: ignore[assignment] - "import ssl" raises ImportError meanwhile
    try:
        import http.server as server
    finally:
        if hide:
            del sys.modules["ssl"]
    return server


_server = _server_without_ssl()
BaseHTTPRequestHandler = _server.BaseHTTPRequestHandler
ThreadingHTTPServer = _server.ThreadingHTTPServer
