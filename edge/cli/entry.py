"""``ecg-edge``'s console entry point: Ctrl-C is remembered from this module's first line (issue 25, item 9).

The console script imports this module first; it installs a SIGINT handler that only remembers the signal,
using the interpreter's built-in ``_signal`` (nothing to import), and only then imports ``edge.cli.main`` and
its dependencies. A Ctrl-C that came while they loaded ends the command cleanly (``interrupted``, status 130)
instead of a KeyboardInterrupt traceback half-way through an import. Only the interpreter's own start-up
(``site`` and ``.pth`` files, before this module) is outside its reach.

``python -m edge.cli.entry ARGS`` is the same as ``ecg-edge ARGS``.
"""

import _signal

_PENDING: list[int] = []


def _remember(signum, frame) -> None:  # noqa: ANN001
    _PENDING.append(signum)


_signal.signal(_signal.SIGINT, _remember)


def main() -> int:
    from edge.cli.main import run_console

    return run_console(_PENDING)


if __name__ == "__main__":
    raise SystemExit(main())
