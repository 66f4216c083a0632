"""Hostile bundles (issue 16; DESIGN.md contract 3, "Integrity of the manifest itself"), each case replayed.

A copy of the shipped default bundle is the raw material: signed with a throw-away key made here (no key is
ever committed), edited, bit-flipped, zipped into bombs and traps. Every refusal is a ``BundleError`` with
one line naming the file or field; nothing crashes in numpy or onnxruntime, nothing is left in the temp folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.bundle.loader import (
    BundleError,
    default_bundle_path,
    default_bundle_pin,
    load_bundle,
    manifest_sha256,
    sha256_file,
)
from edge.bundle.signing import PublicKey, Trust, load_public_key

pytest.importorskip("cryptography")
from export.signing import generate_keypair, sign_manifest  # noqa: E402

DEFAULT = default_bundle_path()
pytestmark = pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file(), reason="no default bundle")

NO_KEYS = Trust(allow_unsigned=True, warn=False)  # --allow-unsigned: unsigned bundles load, marked unsigned


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, PublicKey, Path, PublicKey]:
    folder = tmp_path_factory.mktemp("keys")
    private, public, _ = generate_keypair(folder / "hospital", "test key")
    other, other_pub, _ = generate_keypair(folder / "other")
    return private, load_public_key(public), other, load_public_key(other_pub)


def _copy(tmp_path: Path, name: str = "bundle") -> Path:
    dest = tmp_path / name
    shutil.copytree(DEFAULT, dest)
    return dest


def _edit_manifest(folder: Path, edit) -> None:  # noqa: ANN001
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _refused(path: Path, *needles: str, trust: Trust = NO_KEYS) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(path, trust=trust)
    message = str(info.value)
    assert "\n" not in message and all(n in message for n in needles), message
    return message


# --- signatures and the pin -------------------------------------------------------------------------
def test_default_bundle_pin_is_current():
    """The package pins the default bundle's manifest. Re-exported the default bundle? Update the pin:
    sha256sum edge/bundles/default/manifest.json | cut -d' ' -f1 > edge/bundles/default.sha256
    (scripts/build_default_bundle.sh does it after ecg-export)."""
    assert manifest_sha256(DEFAULT) == default_bundle_pin(), (
        "edge/bundles/default.sha256 is stale: the default bundle was re-exported. Run "
        "`sha256sum edge/bundles/default/manifest.json | cut -d' ' -f1 > edge/bundles/default.sha256` "
        "(scripts/build_default_bundle.sh does this) after checking the new manifest is the one you meant."
    )
    with load_bundle(trust=Trust()) as bundle:  # no key needed: the pin vouches
        assert bundle.trust == "pinned default bundle"


def test_edited_default_bundle_is_refused_by_the_pin(tmp_path, monkeypatch):
    """Was: editing signal.normalization of the default bundle turned NORM into IRBBB, silently."""
    copy = _copy(tmp_path, "default")
    shutil.copy(DEFAULT.with_suffix(".sha256"), tmp_path / "default.sha256")
    monkeypatch.setattr("edge.bundle.loader.default_bundle_path", lambda: copy)
    with load_bundle(copy) as bundle:
        assert bundle.trust == "pinned default bundle"
    _edit_manifest(copy, lambda m: m["signal"].update(normalization="window_zscore"))
    _refused(copy, "default bundle's manifest does not match the sha256 pinned", "default.sha256")


def test_signed_bundle_loads_only_with_a_trusted_key(tmp_path, keys):
    private, public, other, other_public = keys
    copy = _copy(tmp_path)
    assert sign_manifest(copy, private) == public.key_id
    with load_bundle(copy, trust=Trust([public])) as bundle:
        assert bundle.trust == f"signed by trusted key {public.key_id}"
    _refused(copy, "does not trust", public.key_id, trust=Trust([other_public]))
    unsigned = _copy(tmp_path, "unsigned")
    _refused(unsigned, "unsigned", "--allow-unsigned", trust=Trust([public]))
    _refused(unsigned, "unsigned", "--allow-unsigned", trust=Trust())  # no key: refused all the same
    with load_bundle(unsigned, trust=NO_KEYS) as bundle:  # --allow-unsigned: loads, says so
        assert bundle.trust == "unsigned" and bundle.unsigned and "unsigned" in bundle.warning


def test_trusted_keys_come_from_the_environment(tmp_path, keys, monkeypatch):
    private, public, *_ = keys
    copy = _copy(tmp_path)
    sign_manifest(copy, private)
    monkeypatch.setenv("ECG_EDGE_TRUSTED_KEYS", public.source)
    trust = Trust.from_config()
    assert not trust.allow_unsigned and public.raw in [k.raw for k in trust.keys]
    with load_bundle(copy) as bundle:
        assert bundle.trust.startswith("signed by trusted key")
    _refused(_copy(tmp_path, "unsigned"), "unsigned", trust=trust)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["signal"].update(normalization="window_zscore"),  # was: NORM became IRBBB
        lambda m: m["labels"][0].update(threshold=-1.0),
        lambda m: m["provenance"].update(code_version="evil"),
    ],
)
def test_any_edit_after_signing_is_refused(tmp_path, keys, edit):
    private, public, *_ = keys
    copy = _copy(tmp_path)
    sign_manifest(copy, private)
    _edit_manifest(copy, edit)
    for trust in (Trust([public]), NO_KEYS):  # even a device without keys
        _refused(copy, "signature does not match manifest.json", trust=trust)


def test_labels_json_thresholds_with_recomputed_sha_are_refused(tmp_path, keys):
    """Was: labels.json with thresholds -1 and its sha256 recomputed made all 98 labels findings."""
    private, public, *_ = keys
    copy = _copy(tmp_path)
    sign_manifest(copy, private)
    labels = json.loads((copy / "labels.json").read_text(encoding="utf-8"))
    for lb in labels:
        lb["threshold"] = -1.0
    (copy / "labels.json").write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")
    _refused(copy, "labels.json", "manifest says", trust=Trust([public]))

    def recompute(m):  # noqa: ANN001
        m["files"]["labels.json"]["sha256"] = sha256_file(copy / "labels.json")
        m["files"]["labels.json"]["bytes"] = (copy / "labels.json").stat().st_size

    _edit_manifest(copy, recompute)
    _refused(copy, "signature does not match", trust=Trust([public]))


def test_bit_flips_in_the_signal_block_never_crash_and_signed_ones_never_load(tmp_path, keys):
    """Was: of 1,552 one-bit flips in the signal block 409 were accepted, 15 changed findings, 17 crashed
    inside onnxruntime. Now: signed, every flip is refused; unsigned, none crashes (refused or harmless)."""
    private, public, *_ = keys
    signed = _copy(tmp_path, "signed")
    sign_manifest(signed, private)
    original = (signed / "manifest.json").read_bytes()
    start = original.index(b'"signal"')
    end = original.index(b"}", start)
    rng = np.random.default_rng(16)
    positions = rng.choice(np.arange(start, end), size=48, replace=False)
    unsigned = _copy(tmp_path, "unsigned")
    outcomes = {"refused": 0, "loaded": 0}
    for pos in positions:
        flipped = bytearray(original)
        flipped[pos] ^= 1 << int(rng.integers(8))
        (signed / "manifest.json").write_bytes(bytes(flipped))
        _refused(signed, trust=Trust([public]))
        (unsigned / "manifest.json").write_bytes(bytes(flipped))
        try:
            with load_bundle(unsigned, trust=NO_KEYS):
                outcomes["loaded"] += 1
        except BundleError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
    assert outcomes["refused"] > outcomes["loaded"]


# --- strict validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m.update(signal="abc"), "signal"),
        (lambda m: m["signal"].update(fs="100"), "signal.fs"),
        (lambda m: m["signal"].update(fs=float("1e309")), "signal.fs"),
        (lambda m: m["signal"].update(band_hz=[40.0, 0.5]), "signal.band_hz"),
        (lambda m: m["signal"].update(normalization="lead_zscorf"), "signal.normalization"),
        (lambda m: m["signal"].update(unknown=1), "signal.unknown"),
        (lambda m: m["signal"].pop("clip"), "signal.clip"),
        (lambda m: m.update(labels=5), "labels"),
        (lambda m: m["labels"][3].update(threshold="high"), "labels[3].threshold"),
        (lambda m: m["labels"][3].update(threshold=2.5), "labels[3].threshold"),
        (lambda m: m["labels"][7].pop("id"), "labels[7].id"),
        (lambda m: m["labels"][7].update(id=m["labels"][0]["id"]), "labels[7].id"),
        (lambda m: m["labels"][2].update(new="yes"), "labels[2].new"),
        (lambda m: m.update(embedding_dim="256"), "embedding_dim"),
        (lambda m: m["model"].update(input_shape=[None, 12, 999]), "model.input_shape[2]"),
        (lambda m: m["models"].update(evil="x.onnx"), "models.evil"),
        (lambda m: m["models"].update(onnx_int8="../../etc/passwd"), "models.onnx_int8"),
        (lambda m: m["files"]["labels.json"].update(bytes=-1), "files['labels.json'].bytes"),
        (
            lambda m: m["files"].update({"/etc/passwd": {"sha256": "0" * 64, "bytes": 1}}),
            "files['/etc/passwd']",
        ),
        (lambda m: m.update(format_version=True), "format_version"),
        (lambda m: m.update(logit_scale=float("nan")), "logit_scale"),
    ],
)
def test_bad_manifest_fields_are_refused_naming_the_field(tmp_path, edit, field):
    """Was: tracebacks on bad manifest types, a non-numeric threshold, a label without id."""
    copy = _copy(tmp_path)
    _edit_manifest(copy, edit)
    _refused(copy, f"manifest field {field}")


def test_manifest_that_is_not_an_object_or_not_json(tmp_path):
    copy = _copy(tmp_path)
    (copy / "manifest.json").write_text("[1, 2]", encoding="utf-8")
    _refused(copy, "not a JSON object")
    (copy / "manifest.json").write_bytes(b"\xff\xfe{")
    _refused(copy, "not valid JSON")


def test_object_npy_embeddings_are_refused(tmp_path):
    copy = _copy(tmp_path)
    np.save(copy / "label_embeddings.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    _edit_manifest(copy, lambda m: m["files"]["label_embeddings.npy"].update(
        sha256=sha256_file(copy / "label_embeddings.npy"), bytes=(copy / "label_embeddings.npy").stat().st_size))  # fmt: skip
    _refused(copy, "label_embeddings.npy is not a numeric .npy array")


def test_symlink_inside_a_bundle_folder_is_refused(tmp_path):
    """Was: symlinks inside a bundle that point outside were followed."""
    copy = _copy(tmp_path)
    outside = tmp_path / "outside.json"
    shutil.move(copy / "labels.json", outside)
    (copy / "labels.json").symlink_to(outside)
    _refused(copy, "labels.json", "symbolic link")
    manifest_copy = tmp_path / "m.json"
    shutil.move(copy / "manifest.json", manifest_copy)
    (copy / "manifest.json").symlink_to(manifest_copy)
    _refused(copy, "manifest", "symbolic link")


# --- zips ------------------------------------------------------------------------------------------
def _zip(folder: Path, dest: Path, extra: list[tuple[zipfile.ZipInfo | str, bytes]] = ()) -> Path:  # noqa: B006
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, arcname=p.name)
        for info, data in extra:
            zf.writestr(info, data)
    return dest


@pytest.fixture
def tmpdir_watch(tmp_path, monkeypatch):
    """Extraction goes to a private temp folder; returns a function listing what is left there."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return lambda: sorted(os.listdir(scratch))


def test_signed_zip_loads_and_leaves_no_extraction(tmp_path, keys, tmpdir_watch):
    private, public, *_ = keys
    copy = _copy(tmp_path)
    sign_manifest(copy, private)
    z = _zip(copy, tmp_path / "b.zip")
    with load_bundle(z, trust=Trust([public])) as bundle:
        assert bundle.trust.startswith("signed by trusted key") and tmpdir_watch()
    assert tmpdir_watch() == []


def _declare_size(z: Path, name: str, size: int) -> None:
    """Rewrite the uncompressed size the zip's central directory declares for entry ``name``."""
    data = bytearray(z.read_bytes())
    pos = len(data)
    while True:
        pos = data.rindex(b"PK\x01\x02", 0, pos)
        if data[pos + 46 : pos + 46 + len(name)] == name.encode():
            break
    struct.pack_into("<I", data, pos + 24, size)
    z.write_bytes(bytes(data))


def test_zip_bomb_is_refused_before_extraction(tmp_path, tmpdir_watch):
    """Was: a 3.4 MB zip holding a 1 GiB entry took 2 GiB of memory and wrote 1 GiB to /tmp before refusal."""
    z = _zip(_copy(tmp_path), tmp_path / "bomb.zip", [("encoder_fp32.onnx", b"\0" * 4096)])
    _declare_size(z, "encoder_fp32.onnx", 2**30)
    tracemalloc.start()
    _refused(z, "encoder_fp32.onnx", "unpacks to 1073741824 bytes")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20 and tmpdir_watch() == []


def test_entry_larger_than_declared_is_refused(tmp_path, tmpdir_watch):
    copy = _copy(tmp_path)
    z = _zip(copy, tmp_path / "liar.zip")
    _declare_size(z, "labels.json", (copy / "labels.json").stat().st_size - 10)
    _refused(z, "liar.zip", "labels.json")  # the CRC or the size check: never more than declared
    assert tmpdir_watch() == []


def test_zip_entries_the_manifest_does_not_list_are_never_written(tmp_path, tmpdir_watch):
    z = _zip(_copy(tmp_path), tmp_path / "extra.zip", [("payload.bin", b"\0" * 100_000)])
    with load_bundle(z, trust=NO_KEYS) as bundle:
        assert not (bundle.folder / "payload.bin").exists()
    assert tmpdir_watch() == []


@pytest.mark.parametrize(
    ("name", "needle"),
    [("../evil.json", "absolute or parent path"), ("/etc/evil", "absolute or parent path"),
     ("sub/labels.json", "not a flat bundle file name"), ("labels.json", "appears twice")],
)  # fmt: skip
def test_zip_entry_names_are_checked(tmp_path, tmpdir_watch, name, needle):
    z = _zip(_copy(tmp_path), tmp_path / "names.zip", [(name, b"{}")])
    _refused(z, needle)
    assert tmpdir_watch() == []


def test_zip_symlink_entry_and_too_many_entries(tmp_path, tmpdir_watch):
    link = zipfile.ZipInfo("encoder_fp32.onnx")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(_copy(tmp_path), tmp_path / "link.zip", [(link, b"/etc/passwd")])
    _refused(z, "symbolic link")
    many = [(f"f{i}.bin", b"") for i in range(20)]
    _refused(_zip(_copy(tmp_path, "b2"), tmp_path / "many.zip", many), "zip entries")
    assert tmpdir_watch() == []


def test_corrupt_and_truncated_zips(tmp_path, tmpdir_watch):
    """Was: a traceback on a corrupt zip member; a truncated zip reported as "not found"."""
    z = _zip(_copy(tmp_path), tmp_path / "b.zip")
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("encoder_int8.onnx")
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 1000
    data[offset] ^= 0xFF
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(bytes(data))
    _refused(corrupt, "corrupt.zip")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(z.read_bytes()[: len(data) // 2])
    _refused(truncated, "truncated.zip", "not a zip")
    assert tmpdir_watch() == []


def test_cli_refuses_a_tampered_bundle_in_one_line(tmp_path, keys, capsys):
    from edge.cli.main import main

    private, public, *_ = keys
    copy = _copy(tmp_path)
    sign_manifest(copy, private)
    assert main(["info", "--bundle", str(copy), "--trust-key", public.source]) == 0
    capsys.readouterr()
    _edit_manifest(copy, lambda m: m["signal"].update(clip=5.0))
    assert main(["info", "--bundle", str(copy), "--trust-key", public.source]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "signature does not match" in err and "Traceback" not in err
    assert main(["info", "--bundle", str(copy), "--trust-key", str(tmp_path / "missing.pub")]) == 1
    assert "missing.pub not found" in capsys.readouterr().err


def test_keygen_and_sign_bundle_round_trip(tmp_path, capsys):
    from export.bundle_writer import sign_bundle
    from export.cli import main

    assert main(["keygen", "--out", str(tmp_path / "k" / "ward"), "--comment", "ward 3"]) == 0
    assert (tmp_path / "k" / "ward").stat().st_mode & 0o777 == 0o600
    assert "ward 3" in (tmp_path / "k" / "ward.pub").read_text()
    assert main(["keygen", "--out", str(tmp_path / "k" / "ward")]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err
    copy = _copy(tmp_path)
    kid = sign_bundle(copy, tmp_path / "k" / "ward", tmp_path / "b.zip")
    pub = load_public_key(tmp_path / "k" / "ward.pub")
    assert kid == pub.key_id == hashlib.sha256(pub.raw).hexdigest()[:16]
    with load_bundle(tmp_path / "b.zip", trust=Trust([pub])) as bundle:
        assert bundle.trust.endswith(kid)


def test_signature_is_verified_in_process_without_cryptography(tmp_path, keys, monkeypatch):
    """The device verifies with the pure-Python RFC 8032 verifier: no child process, no cryptography import."""
    import subprocess
    import sys

    private, public, *_ = keys
    copy = _copy(tmp_path)
    sign_manifest(copy, private)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("a child process was started"))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("a child process was started"))
    for name in [m for m in sys.modules if m == "cryptography" or m.startswith("cryptography.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)  # importing it would now fail
    with load_bundle(copy, trust=Trust([public])) as bundle:
        assert bundle.trust.startswith("signed by trusted key")
    _edit_manifest(copy, lambda m: m["signal"].update(clip=5.0))
    _refused(copy, "signature does not match", trust=Trust([public]))
