"""``ecg-edge info`` and ``ecg-edge labels --bundle``: a bundle's manifest and labels in readable form
(``edge.cli.info`` describes them)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from edge.cli.common import (
    BUNDLE_HELP,
    add_trust_arg,
    command_error,
    resolve_bundle,
    trust_from_args,
    user_errors,
    utf8_stdout,
)

__all__ = ["add_info_parser", "cmd_info", "add_bundle_labels_argument", "cmd_bundle_labels"]

log = logging.getLogger("edge.cli")


# -- info --------------------------------------------------------------------------------------------
def add_info_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="show a bundle's manifest",
        description="Verify a bundle (every file's sha256) and show its manifest: files, signal contract, model "
        "input and output, quantization and its measured agreement with fp32, labels and thresholds, text "
        "encoder, provenance and metrics.",
    )
    p.add_argument("--bundle", type=Path, help=BUNDLE_HELP)
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    add_trust_arg(p)
    p.set_defaults(func=cmd_info)


@user_errors
def cmd_info(args: argparse.Namespace) -> int:
    from edge.bundle.loader import load_bundle
    from edge.cli.info import describe_bundle

    with load_bundle(resolve_bundle(args.bundle), verify=True, trust=trust_from_args(args)) as bundle:
        if args.json:
            utf8_stdout().write(json.dumps(bundle.manifest, ensure_ascii=False, indent=2) + "\n")
        else:
            utf8_stdout().write(describe_bundle(bundle, args.bundle or resolve_bundle(None)) + "\n")
    return 0


# -- labels --bundle ---------------------------------------------------------------------------------
def add_bundle_labels_argument(p: argparse.ArgumentParser) -> None:
    """``ecg-edge labels --bundle B``: list the bundle's labels with their thresholds instead."""
    p.add_argument(
        "--bundle",
        type=Path,
        metavar="PATH",
        help="list this bundle's labels (row order) with thresholds, including new labels",
    )


@user_errors
def cmd_bundle_labels(args: argparse.Namespace) -> int:
    from edge.bundle.loader import load_bundle
    from edge.cli.info import bundle_label_rows, filter_labels, zero_shot_note

    with load_bundle(resolve_bundle(args.bundle), verify=True, trust=trust_from_args(args)) as bundle:
        labels = filter_labels(bundle.labels, getattr(args, "query", None), getattr(args, "category", None))
        if not labels:
            raise command_error(f"no label of the bundle matches {args.query!r}")
        if getattr(args, "json", False):
            utf8_stdout().write(json.dumps(labels, ensure_ascii=False, indent=2) + "\n")
        else:
            utf8_stdout().write(bundle_label_rows(labels) + "\n" + zero_shot_note(labels, bundle.manifest))
    return 0


