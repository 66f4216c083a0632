"""``make demo``: a simulated bedside device streams ECG over a virtual serial port into the runtime.

Two processes, as at the bedside: ``ecg-device simulate`` (the acquisition firmware's stand-in) opens a
pseudo-terminal and streams wire-protocol frames at the real rate; ``ecg-edge run`` opens that port,
handshakes, and reports Japanese findings every 2 s with the default bundle shipped in the package.
The runtime also serves the bedside web view (``--view``, default http://127.0.0.1:8080/, another free port
when that one is taken): its URL is printed first and shown in the terminal view, and a browser is opened
on it when the machine has a display. Needs no data: the ECG is synthetic unless ``--record`` names a WFDB
record.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edge.cli.demo",
        description="Stream a simulated ECG device over a virtual serial port into the bedside runtime "
        "and show its live Japanese findings, then exit.",
    )
    p.add_argument("--record", help="WFDB record to stream (default: synthetic ECG)")
    p.add_argument(
        "--rhythm", default="lbbb", help="synthetic rhythm: sinus, afib, pvc, lbbb, rbbb, st_elevation, ..."
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run (default 30)")
    p.add_argument(
        "--channels", type=int, choices=[8, 12], default=8, help="device channels (8: I, II, V1-V6)"
    )
    p.add_argument("--bundle", help="bundle folder or zip (default: the shipped default bundle)")
    p.add_argument("--out", help="also append the JSON lines to this file")
    p.add_argument(
        "--view", default="127.0.0.1:8080", help="HOST:PORT of the web view (default 127.0.0.1:8080)"
    )
    p.add_argument(
        "--no-browser", action="store_true", help="print the web view's URL, do not open a browser"
    )
    return p


def _free(address: str) -> str:
    """``address``, or the same host with port 0 (any free port) when that port is taken."""
    host, _, port = address.rpartition(":")
    try:
        with socket.socket() as s:
            s.bind((host or "127.0.0.1", int(port)))
    except (OSError, ValueError):
        return f"{host}:0"
    return address


def _open_browser(url: str) -> None:
    """Open ``url`` in a browser when there is a screen to show it on."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"):
        import webbrowser

        webbrowser.open(url)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    source = ["--record", args.record] if args.record else ["--synthetic", args.rhythm]
    sim_cmd = [
        sys.executable,
        "-m",
        "firmware_bridge.cli",
        "simulate",
        *source,
        "--channels",
        str(args.channels),
        "--duration",
        str(args.duration + 10),
    ]
    if args.record:
        sim_cmd.append("--loop")  # a 10-s record repeats for the whole demo
    sim = subprocess.Popen(sim_cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = sim.stdout.readline().strip() if sim.stdout else ""
        if not line.startswith("PTY "):
            print(f"demo: the device simulator did not start ({line or 'no output'})", file=sys.stderr)
            return 1
        port = line.split(" ", 1)[1]
        what = args.record or f"synthetic {args.rhythm}"
        print(
            f"demo: simulated {args.channels}-channel device ({what}) on {port}; runtime for {args.duration:g} s",
            flush=True,
        )
        from edge.cli.main import main as edge_main

        view = _free(args.view)
        run_args = ["run", "--port", port, "--duration", str(args.duration), "--view", view]
        if not view.endswith(":0"):  # the URL is known before the runtime starts
            url = f"http://{view}/"
            print(f"demo: bedside web view at {url}  (terminal view below)", flush=True)
            if not args.no_browser:
                _open_browser(url)
        if args.bundle:
            run_args += ["--bundle", args.bundle]
        if args.out:
            run_args += ["--out", args.out]
        t0 = time.monotonic()
        code = edge_main(run_args)
        print(f"demo: runtime exited with {code} after {time.monotonic() - t0:.1f} s", flush=True)
        return code
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=5)
        except subprocess.TimeoutExpired:
            sim.kill()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
