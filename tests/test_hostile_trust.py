"""Trust fails closed and loads what it checked (issue 25, items 1-5), each reproduction replayed.

Items: 1 a named key folder that cannot be listed or holds no key is an error, never "no key"; 2 unsigned
bundles are refused by ``run`` and ``classify`` unless ``--allow-unsigned``, which marks every JSON line, the
terminal view and the web page; 3 the model bytes that were verified are the bytes onnxruntime runs; 4 keys
are matched by the full public key, older bundles of a key are refused (rollback), a zip's signature is
checked before anything is written; 5 a signed manifest with a bad rule, or whose signal the encoder does not
take, is refused at load in one line, never at the first window.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge.bundle.loader import BundleError, load_bundle
from edge.bundle.signing import SigningError, Trust, load_public_key
from edge.cli.main import main
from firmware_bridge.synthetic import synthesize

pytest.importorskip("cryptography")
pytest.importorskip("onnxruntime")
from export.signing import generate_keypair, local_key, sign_manifest  # noqa: E402


@pytest.fixture(scope="module")
def ecg_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ecg") / "sinus.npy"
    np.save(path, synthesize(rhythm="sinus", fs=500, seed=25, duration_s=14.0))
    return path


def _copy(tiny_bundle: Path, tmp_path: Path, edit=None, sign: bool = True, name: str = "bundle") -> Path:  # noqa: ANN001
    """A copy of the tiny bundle, its manifest edited, signed with the session's (trusted) local key or unsigned."""
    dest = tmp_path / name
    shutil.copytree(tiny_bundle, dest)
    if edit is not None:
        path = dest / "manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8"))
        edit(manifest)
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (dest / "manifest.sig").unlink()
    if sign:
        sign_manifest(dest, local_key())
    return dest


def _one_line_error(capsys, *needles: str) -> str:  # noqa: ANN001
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and all(n in err for n in needles), err
    return err


# --- item 1: fail closed --------------------------------------------------------------------------
def test_named_key_folder_without_keys_is_an_error_not_no_key(
    tiny_bundle, ecg_file, tmp_path, capsys, monkeypatch
):
    """Was: an empty --trust-key folder counted as no key trusted, and an edited unsigned manifest loaded, exit 0."""
    edited = _copy(tiny_bundle, tmp_path, lambda m: m["signal"].update(clip=5.0), sign=False)
    empty = tmp_path / "keys"
    empty.mkdir()
    args = ["classify", str(ecg_file), "--fs", "500", "--json", "--bundle", str(edited)]
    assert main([*args, "--trust-key", str(empty)]) == 1
    _one_line_error(capsys, "holds no *.pub")
    monkeypatch.setenv("ECG_EDGE_TRUSTED_KEYS", str(empty))
    assert main(args) == 1
    _one_line_error(capsys, "holds no *.pub")
    monkeypatch.delenv("ECG_EDGE_TRUSTED_KEYS")
    assert main(args) == 1  # and with no key at all, the unsigned edit is refused
    _one_line_error(capsys, "unsigned bundle refused")


def test_key_folder_that_cannot_be_listed_is_an_error(tmp_path, monkeypatch):
    folder = tmp_path / "keys"
    folder.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):  # noqa: ANN001, ANN202 - as an unreadable folder (the tests run as root, chmod does not bind)
        if self == folder:
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(SigningError, match="cannot be read"):
        Trust.from_config([folder])
    monkeypatch.setenv("ECG_CLIP_JA_CONFIG", str(tmp_path))
    folder.rename(
        tmp_path / "trusted_keys"
    )  # a default folder that exists but cannot be listed: an error too
    folder = tmp_path / "trusted_keys"
    with pytest.raises(SigningError, match="cannot be read"):
        Trust.from_config()


# --- item 2: secure by default --------------------------------------------------------------------
def test_run_and_classify_refuse_an_unsigned_bundle(tiny_bundle, ecg_file, tmp_path, capsys):
    unsigned = _copy(tiny_bundle, tmp_path, sign=False)
    assert main(["classify", str(ecg_file), "--fs", "500", "--bundle", str(unsigned)]) == 1
    _one_line_error(capsys, "unsigned bundle refused", "--allow-unsigned")
    assert main(["run", "--port", "loop://", "--bundle", str(unsigned), "--quiet", "--max-windows", "1"]) == 1
    _one_line_error(capsys, "unsigned bundle refused")
    other_private, _, _ = generate_keypair(tmp_path / "other" / "key")
    sign_manifest(unsigned, other_private)
    assert main(["classify", str(ecg_file), "--fs", "500", "--bundle", str(unsigned)]) == 1
    _one_line_error(capsys, "does not trust")


def test_allow_unsigned_marks_every_line_the_terminal_and_the_page(tiny_bundle, ecg_file, tmp_path, capsys):
    """Was: --allow-unsigned's warning went to the log only: wiped by the live view, absent from page and JSON."""
    from edge.runtime.engine import Classifier
    from edge.runtime.serial import RunConfig, Runtime
    from edge.views.terminal import LiveView
    from edge.views.webview import WebView

    unsigned = _copy(tiny_bundle, tmp_path, sign=False)
    args = ["classify", str(ecg_file), "--fs", "500", "--json", "--hop", "2", "--bundle", str(unsigned)]
    assert main([*args, "--allow-unsigned"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert len(lines) >= 2 and all(line.get("unsigned") is True for line in lines)
    assert main(["classify", str(ecg_file), "--fs", "500", "--json", "--bundle", str(tiny_bundle)]) == 0
    assert all("unsigned" not in json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip())
    with Classifier.from_bundle(unsigned, trust=Trust(allow_unsigned=True, warn=False)) as clf:
        assert clf.bundle.unsigned and "unsigned" in clf.bundle.warning
        view = LiveView(io.StringIO(), width=120)
        view.warning = clf.bundle.warning
        runtime = Runtime(clf, RunConfig(port="/dev/ttyUSB0"))
        for _ in range(3):  # every frame, not only the first
            assert "署名のないバンドル" in view.render(runtime)
        web = WebView(labels=clf.labels, bundle=clf.bundle_id, warning=clf.bundle.warning)
        assert "unsigned" in web.state()["bundle_warning"]
    page = (Path(__file__).resolve().parents[1] / "edge" / "views" / "web" / "app.js").read_text(
        encoding="utf-8"
    )
    assert "bundle_warning" in page


def test_trust_add_installs_a_key_that_then_opens_its_bundles(tiny_bundle, tmp_path, monkeypatch, capsys):
    private, public, kid = generate_keypair(tmp_path / "hospital" / "ward3", "ward 3")
    signed = _copy(tiny_bundle, tmp_path, sign=False)
    sign_manifest(signed, private)
    monkeypatch.setenv("ECG_CLIP_JA_CONFIG", str(tmp_path / "board"))
    assert main(["info", "--bundle", str(signed)]) == 1
    _one_line_error(capsys, "does not trust")
    assert main(["trust", "add", str(public)]) == 0
    assert (tmp_path / "board" / "trusted_keys" / f"{kid}.pub").is_file()
    assert main(["trust", "list"]) == 0 and kid in capsys.readouterr().out
    assert main(["info", "--bundle", str(signed)]) == 0
    assert f"signed by trusted key {kid}" in capsys.readouterr().out
    (tmp_path / "bad.pub").write_text("hello")
    assert main(["trust", "add", str(tmp_path / "bad.pub")]) == 1
    _one_line_error(capsys, "not an ecg-clip-ja public key")
    assert main(["trust", "remove", kid]) == 0 and main(["info", "--bundle", str(signed)]) == 1
    assert main(["keygen", "--out", str(tmp_path / "k")]) == 2  # keys are made by ecg-export keygen, not here


# --- item 3: the verified bytes are the bytes that run --------------------------------------------
def test_a_model_swapped_after_the_check_is_never_run(tiny_bundle, ecg_file, tmp_path, monkeypatch):
    """Was: the model was hashed, then reopened by path; a file renamed in place after the check ran."""
    import edge.runtime.engine as engine
    from edge.runtime.engine import Classifier

    x = np.load(ecg_file)[:, :5000]
    copy = _copy(tiny_bundle, tmp_path)
    with Classifier.from_bundle(copy) as clf:
        expected = clf.classify_window(x, fs=500).embedding
    with Classifier.from_bundle(copy, precision="fp32") as clf:
        fp32 = clf.classify_window(x, fs=500).embedding
    assert not np.array_equal(expected, fp32)
    real_load = engine.load_bundle

    def load_then_swap(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the attacker's rename, after the check
        bundle = real_load(*args, **kwargs)
        shutil.copy(copy / "encoder_fp32.onnx", copy / "swap.tmp")
        (copy / "swap.tmp").replace(copy / "encoder_int8.onnx")
        return bundle

    monkeypatch.setattr(engine, "load_bundle", load_then_swap)
    with Classifier.from_bundle(copy) as clf:
        got = clf.classify_window(x, fs=500).embedding
    assert np.array_equal(got, expected)


# --- item 4: full keys, rollback, zip before extraction -------------------------------------------
def test_the_export_machines_own_key_is_not_rollback_checked(tiny_bundle, tmp_path):
    """Trial exports on the export machine (its local key) load in any order; hospital keys are checked."""
    newer = _copy(
        tiny_bundle, tmp_path, lambda m: m.update(created="2026-06-01T00:00:00+00:00"), name="newer"
    )
    older = _copy(
        tiny_bundle, tmp_path, lambda m: m.update(created="2026-03-01T00:00:00+00:00"), name="older"
    )
    trust = Trust.from_config()
    trust.state_path = tmp_path / "state.json"
    for folder in (newer, older):
        with load_bundle(folder, trust=trust):
            pass
    assert trust.own_keys and not trust.state_path.exists()


def test_trust_is_by_the_full_public_key_not_its_id(tiny_bundle, tmp_path, monkeypatch):
    """Was: a signature was trusted when its 64-bit key id matched a trusted key's."""
    hospital, hospital_pub, _ = generate_keypair(tmp_path / "k" / "hospital")
    attacker, _, _ = generate_keypair(tmp_path / "k" / "attacker")
    bundle = _copy(tiny_bundle, tmp_path, sign=False)
    monkeypatch.setattr("edge.bundle.signing.key_id", lambda raw: "0" * 16)  # a key-id collision
    sign_manifest(bundle, attacker)
    with pytest.raises(BundleError, match="does not trust"):
        load_bundle(bundle, trust=Trust([load_public_key(hospital_pub)]))


def _hospital_signed(tiny_bundle: Path, tmp_path: Path, created: str, name: str, key: Path) -> Path:
    folder = _copy(tiny_bundle, tmp_path, lambda m: m.update(created=created), sign=False, name=name)
    sign_manifest(folder, key)
    return folder


def test_an_older_bundle_from_the_same_key_is_refused_as_a_rollback(tiny_bundle, tmp_path, capsys):
    state = tmp_path / "state.json"
    key, pub, _ = generate_keypair(tmp_path / "k" / "hospital")
    newer = _hospital_signed(tiny_bundle, tmp_path, "2026-06-01T00:00:00+00:00", "newer", key)
    older = _hospital_signed(tiny_bundle, tmp_path, "2026-03-01T00:00:00+00:00", "older", key)
    trust = Trust([load_public_key(pub)], state_path=state)
    with load_bundle(older, trust=trust):
        pass
    with load_bundle(newer, trust=trust):
        pass
    with load_bundle(newer, trust=trust):  # the same bundle again: fine
        pass
    with pytest.raises(BundleError, match="rollback"):
        load_bundle(older, trust=trust)
    trust.allow_rollback = True
    with load_bundle(older, trust=trust):
        pass
    state.write_text("{not json")
    trust.allow_rollback = False
    with pytest.raises(BundleError, match="bundle state .* cannot be read"):
        load_bundle(newer, trust=trust)


def test_rollback_through_the_cli(tiny_bundle, ecg_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ECG_CLIP_JA_CONFIG", str(tmp_path / "board"))
    key, pub, _ = generate_keypair(tmp_path / "k" / "hospital")
    assert main(["trust", "add", str(pub)]) == 0
    newer = _hospital_signed(tiny_bundle, tmp_path, "2026-09-01T00:00:00+00:00", "newer", key)
    older = _hospital_signed(tiny_bundle, tmp_path, "2026-02-01T00:00:00+00:00", "older", key)
    args = ["classify", str(ecg_file), "--fs", "500", "--json"]
    assert main([*args, "--bundle", str(newer)]) == 0
    capsys.readouterr()
    assert main([*args, "--bundle", str(older)]) == 1
    _one_line_error(capsys, "rollback", "--allow-rollback")
    assert main([*args, "--bundle", str(older), "--allow-rollback"]) == 0


def test_zip_signature_is_checked_before_anything_is_written(tiny_bundle, tmp_path, monkeypatch):
    """Was: a 0.5 MB zip within the limits wrote 504 MiB to disk before its signature was looked at."""
    folder = _copy(tiny_bundle, tmp_path, sign=False)
    (folder / "encoder_fp32.onnx").write_bytes(b"\0" * (64 << 20))  # 64 MiB, deflates to ~64 KiB
    z = tmp_path / "unsigned.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, arcname=p.name)
    assert z.stat().st_size < 2 << 20
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: pytest.fail("something was extracted"))
    tracemalloc.start()
    with pytest.raises(BundleError, match="unsigned bundle refused"):
        load_bundle(z)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 << 20


# --- item 5: one schema check at load -------------------------------------------------------------
def _first_keyed(m: dict) -> dict:
    """The first condition with a measurement ``key``: a rule's own (version 1) or its ``when`` (version 2)."""
    for c in m["decision"]["rules"]["criteria"]:
        if "key" in c:
            return c
        when = c.get("when")
        if isinstance(when, dict) and "key" in when:
            return when
    raise AssertionError("no criterion with a measurement key in the shipped rules")


def _first_rule(m: dict) -> dict:
    return m["decision"]["rules"]["criteria"][0]


def _with_rules(edit):  # noqa: ANN001, ANN202
    def apply(m: dict) -> None:
        from edge.bundle.loader import default_bundle_path

        shipped = json.loads((default_bundle_path() / "manifest.json").read_text(encoding="utf-8"))
        m["decision"] = {"criteria_weight": 0.1, "rules": shipped["decision"]["rules"]}
        edit(m)

    return apply


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: _first_keyed(m).update(min="100"), ".min"),  # was: raised at the first window
        (lambda m: _first_keyed(m).update(all=[{"key": "hr_bpm", "min": 1}]), "cannot be combined with 'key'"),
        (lambda m: m["decision"]["rules"].update(exclusive={"a": 1}), "decision.rules.exclusive"),
        (lambda m: m["decision"]["rules"]["criteria"].append(7), "decision.rules.criteria"),
        (lambda m: _first_rule(m).update(mode="sometimes"), ".mode"),
    ],
)
def test_signed_manifest_with_a_bad_rule_is_refused_at_load(
    tiny_bundle, ecg_file, tmp_path, capsys, edit, field
):
    bad = _copy(tiny_bundle, tmp_path, _with_rules(edit))
    assert main(["classify", str(ecg_file), "--fs", "500", "--json", "--bundle", str(bad)]) == 1
    _one_line_error(capsys, "manifest field decision.rules", field)


def test_shipped_rules_in_a_signed_manifest_load(tiny_bundle, tmp_path):
    good = _copy(tiny_bundle, tmp_path, _with_rules(lambda m: None))
    with load_bundle(good) as bundle:
        assert bundle.manifest["decision"]["rules"]["criteria"]


def test_manifest_whose_signal_the_encoder_does_not_take_is_refused_at_load(
    tiny_bundle, ecg_file, tmp_path, capsys
):
    """Was: a signed manifest with fs 250 (input 2500 samples) for a 1000-sample encoder raised in onnxruntime."""

    def edit(m: dict) -> None:
        m["signal"]["fs"] = 250.0
        m["model"]["input_shape"][2] = int(250 * m["signal"]["window_s"])

    bad = _copy(tiny_bundle, tmp_path, edit)
    assert main(["classify", str(ecg_file), "--fs", "500", "--bundle", str(bad)]) == 1
    _one_line_error(capsys, "does not take the manifest's signal")
