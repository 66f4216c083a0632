"""The bundle's fixed names and its error type (DESIGN.md contract 3): the base every bundle module stands on."""

from __future__ import annotations

import importlib

SIGNATURE_NAME = "manifest.sig"
BUNDLE_FORMAT = "ecg-clip-ja/bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# manifest["models"] keys -> what they are; the runtime picks one by backend
MODEL_KEYS = ("onnx_int8", "onnx_fp32", "tflite_int8")
REQUIRED_KEYS = (
    "format",
    "format_version",
    "files",
    "models",
    "signal",
    "model",
    "embedding_dim",
    "labels",
    "label_embeddings",
    "quantization",
    "text_encoder",
    "provenance",
)


MAX_MANIFEST_BYTES = 8 * 2**20


class BundleError(ValueError):
    """A bundle that is missing, malformed, or whose files do not match their checksums."""


def _sha256_constructor():  # noqa: ANN202
    """The interpreter's built-in sha256: hashlib's loads OpenSSL's libcrypto, +3.6 MiB resident on the
    device for nothing (the built-in one hashes the 2.7 MB default bundle in about 10 ms)."""
    for name in ("_sha2", "_sha256"):  # Python >= 3.12, 3.10-3.11
        try:
            return importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


new_sha256 = _sha256_constructor()
