"""``ecg-edge``: the bedside runtime's command line (Contract 6).

Subcommands: ``labels`` (offline label lookup). ``run``, ``classify`` and ``info`` join here, each as one
``_add_<name>(subparsers)`` function listed in :data:`SUBCOMMANDS` that registers its parser and sets
``func``; a handler takes the parsed arguments and returns the exit status.

Exit status: 0 success, 1 bad input or nothing found (one line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from edge.interpret.catalogue import Catalogue, Label

# Nothing heavier than the standard library is imported here: main() first defers Ctrl-C, then imports
# the commands, so an interrupt during start-up is a clean exit, not a traceback (issue 16).

__all__ = ["build_parser", "main"]  # and SUBCOMMANDS (module __getattr__)

log = logging.getLogger(__name__)
PROG = "ecg-edge"


class CommandError(Exception):
    """A user-facing failure: printed as one line on stderr, exit status 1."""


# -- output ------------------------------------------------------------------------------------------
def _utf8(stream: TextIO) -> TextIO:
    """Make ``stream`` able to write Japanese (a pipe under an ASCII locale); keep a capable encoding."""
    try:
        "心電図".encode(getattr(stream, "encoding", None) or "ascii")
    except (LookupError, UnicodeEncodeError):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8")
    return stream


def _width(text: str) -> int:
    """Terminal columns of ``text``: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(_pad(cell, w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _describe(label: Label, catalogue: Catalogue) -> str:
    """A search hit in full: names, category, hierarchy, codes and the Japanese description."""
    lines = [f"{label.id}  {label.ja}  ({label.en})  [{label.category}]"]
    if label.parents:
        lines.append("  parents: " + ", ".join(f"{catalogue[p].ja} ({p})" for p in label.parents))
    if label.aliases:
        lines.append("  aliases: " + ", ".join(label.aliases))
    lines.append(
        "  SCP: " + (", ".join(label.scp) or "-") + "    SNOMED CT: " + (", ".join(label.snomed) or "-")
    )
    if label.description_ja:
        lines.append("  " + label.description_ja)
    return "\n".join(lines)


# -- labels ------------------------------------------------------------------------------------------
def _add_labels(subparsers: argparse._SubParsersAction) -> None:
    from edge.cli.runtime import add_bundle_labels_argument
    from edge.interpret.catalogue import CATEGORIES

    p = subparsers.add_parser(
        "labels",
        help="look up diagnostic labels offline",
        description=(
            "List the label catalogue, or search it by Japanese or English name, id, alias, PTB-XL SCP code "
            "or SNOMED CT code. Matching ignores case and full/half width and folds hiragana to katakana."
        ),
        epilog="examples:  ecg-edge labels   |   ecg-edge labels 右脚   |   ecg-edge labels ﾌﾞﾛｯｸ --json",
    )
    p.add_argument("query", nargs="?", help="text or code to search for (omit to list every label)")
    p.add_argument("--json", action="store_true", help="print the labels as a JSON list")
    p.add_argument("--category", choices=CATEGORIES, help="only labels of this category")
    p.add_argument(
        "--catalogue", type=Path, metavar="PATH", help="a hospital label catalogue JSON (default: shipped)"
    )
    add_bundle_labels_argument(p)
    p.set_defaults(func=cmd_labels)


def cmd_labels(args: argparse.Namespace) -> int:
    from edge.cli.runtime import cmd_bundle_labels
    from edge.interpret.catalogue import UnknownLabelError, load_catalogue

    if args.bundle is not None:  # the bundle's labels, with thresholds and new labels (edge/cli/bundle_commands.py)
        return cmd_bundle_labels(args)
    catalogue = load_catalogue(args.catalogue)
    labels = catalogue.search(args.query) if args.query else list(catalogue.labels)
    if args.category:
        labels = [lab for lab in labels if lab.category == args.category]
    if not labels:
        where = f" in category {args.category!r}" if args.category else ""
        try:
            catalogue.resolve(args.query)
            hint = ""  # the query names a label, just not one of this category
        except UnknownLabelError as exc:
            hint = f"; did you mean: {', '.join(exc.suggestions)}?" if exc.suggestions else ""
        raise CommandError(f"no label matches {args.query!r}{where}{hint}")
    out = _utf8(sys.stdout)
    if args.json:
        out.write(json.dumps([lab.to_dict() for lab in labels], ensure_ascii=False, indent=2) + "\n")
    elif args.query:
        out.write("\n\n".join(_describe(lab, catalogue) for lab in labels) + "\n")
    else:
        rows = [("id", "ja", "en", "category")] + [(lab.id, lab.ja, lab.en, lab.category) for lab in labels]
        out.write(_table(rows) + "\n")
    return 0


# -- parser and entry point --------------------------------------------------------------------------
def _subcommands() -> tuple[Callable[[argparse._SubParsersAction], None], ...]:
    from edge.cli.runtime import RUNTIME_SUBCOMMANDS
    from edge.cli.trust import add_trust_subcommand  # keys are made by ecg-export keygen, not on the device

    return (_add_labels, *RUNTIME_SUBCOMMANDS, add_trust_subcommand)


def __getattr__(name: str):  # noqa: ANN202 - ``SUBCOMMANDS``, built on first use (PEP 562)
    if name == "SUBCOMMANDS":
        return _subcommands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bedside ECG runtime: classify a live serial stream (run) or ECG files (classify), look up "
        "labels offline (labels), show a bundle (info). See --help of each subcommand.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details to stderr")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in _subcommands():
        add(subparsers)
    return parser


@contextlib.contextmanager
def _ctrl_c_deferred():  # noqa: ANN202 - Iterator[list[str]]
    """Remember SIGINT instead of raising it half-way through an import (main thread only)."""
    import signal
    import threading

    requested: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: requested.append("SIGINT"))
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


def _error(message: str) -> int:
    _utf8(sys.stderr).write(f"{PROG}: error: {message}\n")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ecg-edge`` with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    with _ctrl_c_deferred() as interrupted:
        parser = build_parser()
        _utf8(sys.stderr)  # argparse's own messages may quote Japanese input
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse printed help or a usage error already
            return exc.code if isinstance(exc.code, int) else 2
    if interrupted:
        _utf8(sys.stderr).write(f"{PROG}: interrupted\n")
        return 130
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except BrokenPipeError:  # `ecg-edge labels | head`: stop quietly, and without a flush error at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (CommandError, OSError) as exc:
        return _error(str(exc))
    except (ValueError, KeyError) as exc:
        from edge.interpret.catalogue import CatalogueError, UnknownLabelError

        if isinstance(exc, (CatalogueError, UnknownLabelError)):
            return _error(str(exc))
        raise
    except KeyboardInterrupt:  # Ctrl-C before a command installed its own handling (ecg-edge run does)
        _utf8(sys.stderr).write(f"{PROG}: interrupted\n")
        return 130


def run_console(pending: list[int]) -> int:
    """``main()`` for the console script (``edge.cli.entry``): a Ctrl-C that came before it (``pending``), or
    between the handlers, ends the command with ``interrupted`` and status 130, never a traceback."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if pending:
            raise KeyboardInterrupt
        return main()
    except KeyboardInterrupt:
        _utf8(sys.stderr).write(f"{PROG}: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
