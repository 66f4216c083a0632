"""Byte transports for the wire protocol: serial ports by URL, pseudo-terminals, and an in-memory pipe.

The protocol runs over any byte stream (PROTOCOL.md, "Transport"). The host side opens a port with
``open_port(path_or_url)``, a thin wrapper of pyserial's ``serial_for_url`` (a device path, ``loop://``,
``socket://host:port``, ``rfc2217://...``), so tests and hardware share one code path. ``open_pty()``
makes a raw pseudo-terminal pair for a simulated device. The simulator talks to any object with the small
``Transport`` interface: ``write(data)``, ``read(timeout) -> bytes``, ``close()``.

A pty ignores the baud rate: whoever writes to it must pace itself (see the simulator).
"""

from __future__ import annotations

import collections
import errno
import fcntl
import logging
import os
import select
import struct
import termios
import threading
import time
import tty
from collections.abc import Iterator
from typing import Protocol

import serial

__all__ = [
    "DEFAULT_BAUD", "Transport", "open_port", "open_pty", "iter_chunks",
    "FdTransport", "SerialTransport", "MemoryTransport", "TransportClosed", "drain",
]  # fmt: skip

log = logging.getLogger(__name__)

#: 12 leads at 500 Hz need about 12.3 KB/s with framing, more than 115200 baud carries (PROTOCOL.md).
DEFAULT_BAUD = 230400


class TransportClosed(ConnectionError):
    """The transport was closed (by us, or the other end went away) while writing."""


class Transport(Protocol):
    """What the device simulator needs from a byte link."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """Bytes available now, waiting at most ``timeout`` seconds; ``b""`` if none."""
        ...

    def close(self) -> None: ...


def drain(transport: object, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until the peer has read what was written, if the transport can tell."""
    fn = getattr(transport, "drain", None)
    if fn is not None:
        fn(timeout)


def open_port(path_or_url: str | os.PathLike[str], baud: int = DEFAULT_BAUD, timeout: float | None = 0.1,
              **kwargs: object) -> serial.SerialBase:  # fmt: skip
    """Open a serial port by device path or pyserial URL, e.g. ``/dev/ttyUSB0``, ``loop://``."""
    return serial.serial_for_url(os.fspath(path_or_url), baudrate=baud, timeout=timeout, **kwargs)


def open_pty() -> tuple[int, str]:
    """Create a pseudo-terminal in raw mode; return ``(master_fd, slave_path)``.

    The device side keeps ``master_fd``; a host opens ``slave_path`` like a serial port. Raw mode (no echo,
    no CR/LF translation) is set on the slave before anyone opens it; the slave fd itself is closed, so
    reading ``master_fd`` raises EIO until a host opens the slave (``FdTransport`` treats that as "no data").
    Note that pyserial flushes the input buffer when it opens a port: bytes written before that are lost.
    """
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(slave_fd)
        path = os.ttyname(slave_fd)
    finally:
        os.close(slave_fd)
    return master_fd, path


def iter_chunks(port: serial.SerialBase, size: int = 4096) -> Iterator[bytes]:
    """Yield what ``port`` receives until it is closed or disconnected (timeouts yield nothing)."""
    while port.is_open:
        try:
            chunk = port.read(max(1, min(size, port.in_waiting)))
        except (serial.SerialException, OSError) as exc:
            log.info("port closed: %s", exc)
            return
        if chunk:
            yield chunk


class FdTransport:
    """A file descriptor (a pty master) as transport; writes block, but give up once ``close()`` ran.

    For a pty give ``slave_path``: ``wait_for_peer()`` can then wait until a host opens the slave, and
    ``drain()`` until the host has read everything (closing a pty master throws away what the slave has
    not read yet). While no host has the slave open, reading the master fails with EIO; ``read()`` treats
    that as "no data".
    """

    def __init__(self, fd: int, close_fd: bool = True, slave_path: str | None = None) -> None:
        self.fd = fd
        self.slave_path = slave_path
        self._close_fd = close_fd
        self._closed = threading.Event()
        self._interrupted = threading.Event()
        self._slave_fd: int | None = None  # opened only by drain(), to ask how much the host has not read
        self._pending = b""  # bytes read while waiting for the peer
        os.set_blocking(fd, False)

    def wait_for_peer(self, timeout: float | None = None, settle: float = 0.25) -> bool:
        """Block until a host has the pty slave open (True), or ``timeout`` s passed (False).

        ``settle`` more seconds are waited afterwards, because pyserial flushes the port's input buffer
        right after opening it, which would swallow the first frames.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            if not select.select([self.fd], [], [], 0.05)[0]:
                break  # no EIO pending: a host has the slave open
            try:
                self._pending += os.read(self.fd, 4096)
                break
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        time.sleep(settle)
        return not self._closed.is_set()

    def unread(self) -> int:
        """Bytes written to the pty that its host has not read yet (0 without ``slave_path``)."""
        if self.slave_path is None or self._closed.is_set():
            return 0
        if self._slave_fd is None:
            self._slave_fd = os.open(self.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        buf = bytearray(4)
        fcntl.ioctl(self._slave_fd, termios.FIONREAD, buf)
        return struct.unpack("i", buf)[0]

    def drain(self, timeout: float, settle: float = 0.1) -> None:
        """Wait until the host has read everything (the count stayed 0 for ``settle`` s), or ``timeout``.

        The kernel moves written bytes to the slave asynchronously, so one zero reading is not enough.
        """
        if self.slave_path is None:
            return
        now = time.monotonic()
        deadline, quiet_since = now + timeout, now
        while now < deadline:
            if self.unread():
                quiet_since = now
            elif now - quiet_since >= settle:
                return
            time.sleep(0.005)
            now = time.monotonic()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closed.is_set() or self._interrupted.is_set():
                raise TransportClosed("transport closed")
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 0.1)
                continue
            except OSError as exc:
                raise TransportClosed(str(exc)) from exc
            view = view[n:]

    def read(self, timeout: float) -> bytes:
        if self._closed.is_set():
            return b""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            # EIO on a pty master: no host has the slave open (yet, or any more). Not an error.
            time.sleep(max(0.0, timeout))
            return b""

    def interrupt(self) -> None:
        """Make a blocked ``write()`` give up (from another thread); the fd stays open until ``close()``."""
        self._interrupted.set()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            if self._slave_fd is not None:
                os.close(self._slave_fd)
            if self._close_fd:
                os.close(self.fd)


class SerialTransport:
    """A pyserial port (any ``serial_for_url`` URL) as transport."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port

    def write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(str(exc)) from exc

    def read(self, timeout: float) -> bytes:
        if not self.port.is_open:
            return b""
        waiting = self.port.in_waiting
        if waiting:
            return self.port.read(waiting)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port.in_waiting:
                return self.port.read(self.port.in_waiting)
            time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
        return b""

    def drain(self, timeout: float) -> None:
        if self.port.is_open:
            self.port.flush()

    def close(self) -> None:
        self.port.close()


class MemoryTransport:
    """In-memory transport for tests: ``sent`` collects writes, ``push()`` queues bytes to be read."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self._inbox: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self.closed = False

    def push(self, data: bytes) -> None:
        with self._cond:
            self._inbox.append(bytes(data))
            self._cond.notify_all()

    def write(self, data: bytes) -> None:
        if self.closed:
            raise TransportClosed("transport closed")
        with self._cond:
            self.sent += data

    def read(self, timeout: float) -> bytes:
        with self._cond:
            if not self._inbox and timeout > 0:
                self._cond.wait(timeout)
            out = b"".join(self._inbox)
            self._inbox.clear()
            return out

    def close(self) -> None:
        self.closed = True
