"""The exporter signs (issue 16, 25; DESIGN.md contract 3): by default with this machine's local key, atomically.

Issue 25, item 2: ``ecg-export`` signs every bundle (``--sign-key`` or a local key made on first use, mode 0600,
outside any repository, trusted by this machine). Item 6: killing the export at any point leaves ``--out`` as
the old bundle or the new one, complete and signed, never missing, half-deleted or unsigned.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from edge.bundle.loader import BundleError, load_bundle  # noqa: E402
from edge.bundle.signing import Trust, load_public_key  # noqa: E402
from export.signing import generate_keypair  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXPORT_ARGS = [
    "--quiet",
    "--latency-runs",
    "0",
    "--max-accuracy-loss",
    "0.05",
    "--min-finding-agreement",
    "0.98",
]


def test_bad_sign_key_fails_before_the_export(tmp_path, capsys):
    from export.cli import main

    (tmp_path / "not-a-key").write_text("hello")
    assert (
        main(
            [
                str(tmp_path / "any.pt"),
                "--out",
                str(tmp_path / "b"),
                "--sign-key",
                str(tmp_path / "not-a-key"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not-a-key" in err and "private key" in err
    assert not (tmp_path / "b").exists()


def test_keygen_refuses_a_private_key_inside_a_repository(tmp_path, capsys):
    from export.cli import main

    assert main(["keygen", "--out", str(REPO / "tests" / "never-a-key")]) == 2
    assert "inside the git work tree" in capsys.readouterr().err
    assert not (REPO / "tests" / "never-a-key").exists()


def test_local_key_is_made_once_private_and_trusted_here(tmp_path, monkeypatch):
    from export.signing import local_key

    monkeypatch.setenv("ECG_CLIP_JA_CONFIG", str(tmp_path / "config"))
    assert Trust.from_config().keys == []
    key = local_key()
    assert key.stat().st_mode & 0o777 == 0o600 and str(key).startswith(str(tmp_path))
    assert local_key() == key and key.read_bytes() == local_key().read_bytes()  # made once
    trusted = Trust.from_config().keys
    assert [k.raw for k in trusted] == [load_public_key(key.with_name("ed25519.pub")).raw]
    key.chmod(0o644)
    with pytest.raises(ValueError, match="readable by others"):
        local_key()


@pytest.mark.slow
def test_export_signs_by_default_with_the_local_key(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """Was: ecg-export wrote unsigned bundles unless --sign-key was given."""
    pytest.importorskip("torch")
    from export.cli import main

    monkeypatch.setenv("ECG_CLIP_JA_CONFIG", str(tmp_path / "export-machine"))
    out = tmp_path / "bundle"
    assert main([str(tiny_checkpoint.path), "--out", str(out), *EXPORT_ARGS]) == 0, capsys.readouterr().err
    kid = json.loads((out / "manifest.sig").read_text())["key_id"]
    assert f"key {kid}" in capsys.readouterr().out
    with load_bundle(out) as bundle:  # this machine trusts its own key
        assert bundle.trust == f"signed by trusted key {kid}" and not bundle.unsigned
    monkeypatch.setenv("ECG_CLIP_JA_CONFIG", str(tmp_path / "board"))  # a board that was given no key
    with pytest.raises(BundleError, match="does not trust"):
        load_bundle(out)
    from edge.cli.main import main as edge_main

    pub = tmp_path / "export-machine" / "export_key" / "ed25519.pub"
    assert edge_main(["trust", "add", str(pub)]) == 0
    with load_bundle(out) as bundle:
        assert bundle.trust == f"signed by trusted key {kid}"


@pytest.mark.slow
def test_export_with_sign_key_writes_a_bundle_only_that_key_opens(tiny_checkpoint, tmp_path, capsys):
    pytest.importorskip("torch")
    from export.cli import main

    private, public, key_id = generate_keypair(tmp_path / "keys" / "ward")
    _, other, _ = generate_keypair(tmp_path / "keys" / "other")
    out = tmp_path / "bundle"
    args = [str(tiny_checkpoint.path), "--out", str(out), "--zip", "--sign-key", str(private), *EXPORT_ARGS]
    assert main(args) == 0, capsys.readouterr().err
    assert f"key {key_id}" in capsys.readouterr().out
    sig = json.loads((out / "manifest.sig").read_text())
    assert (
        sig["key_id"] == key_id
        and "manifest.sig" not in json.loads((out / "manifest.json").read_text())["files"]
    )
    with zipfile.ZipFile(out.with_name("bundle.zip")) as zf:
        assert "manifest.sig" in zf.namelist()
    for path in (out, out.with_name("bundle.zip")):
        with load_bundle(path, trust=Trust([load_public_key(public)])) as bundle:
            assert bundle.trust == f"signed by trusted key {key_id}"
        with pytest.raises(BundleError, match="does not trust"):
            load_bundle(path, trust=Trust([load_public_key(other)]))


# --- item 6: atomic export -------------------------------------------------------------------------
FINISH_CHILD = r"""
import json, sys
from pathlib import Path
import numpy as np
from export.bundle_writer import BundleDraft
src, out, key, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
m = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
for k in ("files", "models", "labels", "label_embeddings", "format", "format_version"):
    m.pop(k)
m["name"] = name
labels = json.loads((src / "labels.json").read_text(encoding="utf-8"))
emb = np.load(src / "label_embeddings.npy")
draft = BundleDraft(out, overwrite=True)
draft.add_model("onnx_int8", src / "encoder_int8.onnx")
draft.add_model("onnx_fp32", src / "encoder_fp32.onnx")
print("ready", flush=True)
draft.finish(m, labels, emb, sign_key=key)
print("done", flush=True)
"""


def _finish(tiny_bundle: Path, out: Path, key: Path, name: str, kill_after: float | None = None) -> float:
    """Run BundleDraft.finish (verify, sign, swap) in a child; SIGKILL it ``kill_after`` s after it starts;
    returns the seconds from the start of finish to the child's exit."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", FINISH_CHILD, str(tiny_bundle), str(out), str(key), name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    t = time.monotonic()
    if kill_after is None:
        assert proc.wait(60) == 0, proc.stderr.read()
    else:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    proc.stdout.close()
    proc.stderr.close()
    return time.monotonic() - t


@pytest.mark.slow
def test_killing_the_export_at_random_points_leaves_a_whole_signed_bundle(tiny_bundle, tmp_path):
    """Was: 5 of 32 kills of ecg-export --force --sign-key left --out missing, half-deleted or unsigned."""
    private, public, _ = generate_keypair(tmp_path / "keys" / "ward")
    trust = Trust([load_public_key(public)])
    out = tmp_path / "bundle"
    _finish(tiny_bundle, out, private, "old")
    duration = _finish(tiny_bundle, out, private, "new-0")
    rng = random.Random(25)
    seen = {"old": 0, "new": 0}
    for i in range(1, 13):
        _finish(tiny_bundle, out, private, f"new-{i}", kill_after=rng.uniform(0.0, duration))
        with load_bundle(out, trust=trust) as bundle:  # complete, every checksum, signed by the key
            name = bundle.manifest["name"]
        assert name in {f"new-{j}" for j in range(i + 1)}, name
        seen["new" if name == f"new-{i}" else "old"] += 1
    _finish(tiny_bundle, out, private, "last")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]
    assert leftovers == [], leftovers  # killed exports' work folders are removed by the next export
    assert seen["old"] > 0 and seen["new"] > 0, seen  # the kills landed before and after the swap
