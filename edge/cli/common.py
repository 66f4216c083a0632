"""What every ``ecg-edge`` runtime subcommand shares (contract 6): one-line user errors and exit status 1, the
bundle argument (default: the shipped bundle), the backend and trust arguments, UTF-8 stdout."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["BUNDLE_HELP", "UsageError", "command_error", "print_error", "utf8_stdout", "user_errors", "resolve_bundle", "add_backend_args", "add_trust_arg", "trust_from_args", "positive"]

log = logging.getLogger("edge.cli")

BUNDLE_HELP = "bundle folder or .zip (default: the bundle shipped in the package, edge/bundles/default)"


class UsageError(Exception):
    """A user-facing failure of a runtime subcommand: one line on stderr, exit status 1."""


def command_error(message: str) -> Exception:
    return UsageError(message)


def print_error(message: str) -> int:
    stream = sys.stderr
    try:
        stream.write(f"ecg-edge: error: {message}\n")
    except UnicodeEncodeError:  # a pipe under an ASCII locale
        stream.buffer.write(f"ecg-edge: error: {message}\n".encode())
    stream.flush()
    return 1


def utf8_stdout():  # noqa: ANN202 - TextIO
    """stdout, made able to write Japanese when its locale encoding cannot (a pipe under LANG=C)."""
    try:
        "心電図".encode(sys.stdout.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8")
    return sys.stdout


def user_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report the runtime's own errors as one line and exit status 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except Exception as exc:  # imported only now: ecg-edge run installs its signal handlers first
            from edge.bundle.loader import BundleError
            from edge.dsp.signal import SignalError
            from edge.readers.records import RecordError
            from edge.runtime.backends import BackendError
            from edge.runtime.serial import PortError

            if isinstance(exc, (UsageError, BundleError, BackendError, RecordError, SignalError, PortError)):
                return print_error(str(exc))
            raise

    return wrapper


def resolve_bundle(path: Path | None) -> Path:
    """``--bundle`` or the default bundle; a clear error when neither exists."""
    from edge.bundle.loader import default_bundle_path

    if path is not None:
        if not path.exists():
            raise command_error(f"bundle {path} not found")
        return path
    default = default_bundle_path()
    if not (default / "manifest.json").is_file():
        raise command_error(
            f"no --bundle given and the default bundle is not installed at {default}; "
            f"build one with ecg-export and pass --bundle PATH"
        )
    return default


def add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, help=BUNDLE_HELP)
    p.add_argument(
        "--backend",
        choices=("auto", "onnx", "litert"),
        default="auto",
        help="inference runtime: onnx (onnxruntime, int8 ONNX) or litert (int8 .tflite); default auto: onnx "
        "if the bundle has the int8 ONNX model, else litert (ecg-edge info lists a bundle's formats)",
    )
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    add_trust_arg(p)


def add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-key",
        action="append",
        default=[],
        type=Path,
        metavar="PUB",
        help="also trust manifests signed by this public key (.pub from ecg-export keygen, or a folder of them; "
        "repeatable). Trusted always: keys installed with ecg-edge trust add, $ECG_EDGE_TRUSTED_KEYS, "
        "/etc/ecg-clip-ja/trusted_keys. Other bundles are refused; the shipped default bundle is pinned by its sha256",
    )
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="load a bundle that is unsigned or signed by an untrusted key; it is marked unsigned on the terminal, "
        "the web page and in every JSON line (a bad signature is refused even so)",
    )
    p.add_argument(
        "--allow-rollback",
        action="store_true",
        help="load a signed bundle older than one this device already accepted from the same key",
    )


def trust_from_args(args: argparse.Namespace):  # noqa: ANN202 - edge.bundle.signing.Trust
    from edge.bundle.signing import SigningError, Trust

    try:
        return Trust.from_config(
            getattr(args, "trust_key", None) or (),
            allow_unsigned=bool(getattr(args, "allow_unsigned", False)),
            allow_rollback=bool(getattr(args, "allow_rollback", False)),
        )
    except SigningError as exc:
        raise command_error(str(exc)) from None


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


# -- run ---------------------------------------------------------------------------------------------
