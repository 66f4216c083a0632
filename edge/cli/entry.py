"""``ecg-edge``'s console entry point: Ctrl-C is remembered from this module's first line (issue 25, item 9).

The console script imports this module first; it installs a SIGINT handler that only remembers the signal,
using the interpreter's built-in ``_signal`` (nothing to import), and only then imports ``edge.cli.main`` and
its dependencies. A Ctrl-C that came while they loaded ends the command cleanly (``interrupted``, status 130)
instead of a KeyboardInterrupt traceback half-way through an import. Only the interpreter's own start-up
(``site`` and ``.pth`` files, before this module) is outside its reach.

It also caps numpy's BLAS at one thread before numpy is imported (``OPENBLAS_NUM_THREADS``,
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``; a value the user set is kept): the runtime's matrix products are
small (one window against the label matrix), and each BLAS worker thread is a thread the board keeps, with
its own buffers once it has worked (issue #23 item 5).

``python -m edge.cli.entry ARGS`` is the same as ``ecg-edge ARGS``.
"""

import _signal

_PENDING: list[int] = []


def _remember(signum, frame) -> None:  # noqa: ANN001
    _PENDING.append(signum)


_signal.signal(_signal.SIGINT, _remember)

import os  # noqa: E402 - after the handler: already loaded by the interpreter's start-up, nothing to wait for

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


def main() -> int:
    from edge.cli.main import run_console

    return run_console(_PENDING)


if __name__ == "__main__":
    raise SystemExit(main())
