"""``ecg-edge run | classify | info`` and ``labels --bundle``: the runtime's subcommands (contract 6), one module
each (``edge.cli.run``, ``edge.cli.classify``, ``edge.cli.bundle_commands``; shared parts in ``edge.cli.common``).

Registered in ``edge.cli.main`` through :data:`RUNTIME_SUBCOMMANDS`; each ``add_*_parser(subparsers)`` adds its
parser and sets ``func``. Handlers return the exit status; user errors print one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from edge.cli.bundle_commands import add_bundle_labels_argument, add_info_parser, cmd_bundle_labels, cmd_info
from edge.cli.classify import add_classify_parser, cmd_classify
from edge.cli.common import UsageError
from edge.cli.run import add_run_parser, cmd_run

__all__ = [
    "RUNTIME_SUBCOMMANDS",
    "UsageError",
    "add_run_parser",
    "add_classify_parser",
    "add_info_parser",
    "add_bundle_labels_argument",
    "cmd_run",
    "cmd_classify",
    "cmd_info",
    "cmd_bundle_labels",
]

RUNTIME_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_run_parser,
    add_classify_parser,
    add_info_parser,
)
