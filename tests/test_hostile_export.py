"""``ecg-export --sign-key`` (issue 16; DESIGN.md contract 3): the exporter signs, the device verifies."""

from __future__ import annotations

import json
import zipfile

import pytest

pytest.importorskip("cryptography")

from edge.bundle.loader import BundleError, load_bundle  # noqa: E402
from edge.bundle.signing import Trust, generate_keypair, load_public_key  # noqa: E402


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


@pytest.mark.slow
def test_export_with_sign_key_writes_a_bundle_only_that_key_opens(tiny_checkpoint, tmp_path, capsys):
    pytest.importorskip("torch")
    from export.cli import main

    private, public, key_id = generate_keypair(tmp_path / "keys" / "ward")
    _, other, _ = generate_keypair(tmp_path / "keys" / "other")
    out = tmp_path / "bundle"
    args = [str(tiny_checkpoint.path), "--out", str(out), "--zip", "--sign-key", str(private), "--quiet",
            "--latency-runs", "0", "--max-accuracy-loss", "0.05", "--min-finding-agreement", "0.98"]  # fmt: skip
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
        with load_bundle(path, trust=Trust([load_public_key(public)], require_signature=True)) as bundle:
            assert bundle.trust == f"signed by trusted key {key_id}"
        with pytest.raises(BundleError, match="does not trust"):
            load_bundle(path, trust=Trust([load_public_key(other)], require_signature=True))
