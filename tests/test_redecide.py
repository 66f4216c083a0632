"""``ecg-export redecide``: new rules, thresholds or weight applied to an existing bundle without retraining."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from edge.bundle.loader import load_bundle, write_manifest
from edge.bundle.signing import Trust
from export.cli import main
from export.redecide import SCORES_FILE, DecisionScores, finding_agreement

ANY = Trust(allow_unsigned=True, warn=False)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _with_scores(tiny_bundle, tmp_path, fp32: bool = True):
    """A copy of the tiny bundle with synthetic stored scores (60 validation + 40 test windows)."""
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    ids = [lb["id"] for lb in manifest["labels"]]
    rng = np.random.default_rng(0)
    n, k = 100, len(ids)
    int8 = rng.uniform(-0.1, 0.4, (n, k)).astype(np.float32)
    ref = (int8 + rng.normal(0, 0.002, int8.shape)).astype(np.float32)
    targets = (rng.uniform(size=(n, k - 2)) < 0.05).astype(np.uint8)
    keys = ["hr_bpm", "rr_irregularity", "p_present", "pr_ms", "qrs_ms", "qtc_ms", "axis_deg"]
    meas = np.column_stack([rng.uniform(40, 140, n), rng.uniform(0, 0.2, n), np.ones(n), rng.uniform(100, 260, n),
                            rng.uniform(70, 150, n), rng.uniform(380, 520, n), rng.uniform(-60, 120, n)])
    DecisionScores(int8, ref if fp32 else None, targets, np.ones_like(targets), np.r_[np.zeros(60), np.ones(40)]
                   .astype(np.uint8), meas.astype(np.float32), keys, ids).save(folder / SCORES_FILE)
    manifest.setdefault("decision", {})["criteria_weight"] = 0.1
    manifest["quantization"] = {"gate": {"version": 2, "min_finding_agreement": 0.9,
                                         "conditions": {"cosine": {"passed": True}}}, "passed": True}
    (folder / "manifest.sig").unlink(missing_ok=True)  # re-signed by the test that needs it
    write_manifest(folder, {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")})
    return folder, ids, int8, ref


def _rules_with(tmp_path, label: str, change, name: str = "rules.json") -> str:  # noqa: ANN001
    """The shipped rules with ``change`` applied to ``label``'s criterion, written to a file."""
    doc = json.loads((REPO_ROOT / "edge" / "data" / "findings_rules.json").read_text(encoding="utf-8"))
    hits = [c for c in doc["criteria"] if c["label"] == label]
    assert hits, f"no criterion for {label} in the shipped rules"
    change(hits[0])
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _brady_below(limit: float):
    def change(c: dict) -> None:
        cond = c.get("when", c)
        cond["max"] = limit

    return change


def test_criterion_change_is_reapplied_in_seconds(tiny_bundle, tmp_path, capsys):
    folder, ids, int8, _ = _with_scores(tiny_bundle, tmp_path)
    before = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    rules = _rules_with(tmp_path, "BRADY", _brady_below(45))
    t0 = time.perf_counter()
    assert main(["redecide", str(folder), "--rules", rules, "-q"]) == 0
    assert time.perf_counter() - t0 < 30
    out = capsys.readouterr().out
    assert "rules changed" in out and "gate v2 passed" in out and "test" in out
    with load_bundle(folder, trust=ANY) as b:  # verified: checksums, manifest schema, rules schema
        decision = b.manifest["decision"]
        brady = [c for c in decision["rules"]["criteria"] if c["label"] == "BRADY"][0]
        assert brady.get("when", brady)["max"] == 45
        last = decision["redecided"][-1]
        assert last["rules_changed"] and last["gate"]["passed"] and decision["scores"]["fp32"] is True
        assert set(last["effect"]["after"]) == {"validation", "test"}
        assert last["effect"]["after"]["test"]["windows"] == 40
        assert [lb["threshold"] for lb in b.labels] == [lb["threshold"] for lb in before["labels"]]
    # the stored scores travel with the bundle unchanged
    again = DecisionScores.load(folder / SCORES_FILE, ids)
    np.testing.assert_array_equal(again.int8, int8)


def test_thresholds_rerun_gate_condition_3_and_resign(tiny_bundle, tmp_path):
    from export.signing import generate_keypair

    folder, ids, int8, ref = _with_scores(tiny_bundle, tmp_path)
    key, pub, _ = generate_keypair(tmp_path / "keys" / "ward", "test")
    assert main(["redecide", str(folder), "--thresholds", f"{ids[0]}=0.2,{ids[1]}=0.15", "--weight", "0.05",
                 "--sign-key", str(key), "-q"]) == 0
    with load_bundle(folder, trust=Trust.from_config([pub])) as b:  # signed by the key given
        assert not b.unsigned  # signed by a trusted key
        th = b.thresholds.astype(np.float64)
        assert th[0] == pytest.approx(0.2) and th[1] == pytest.approx(0.15)
        q = b.manifest["quantization"]
        assert q["findings"] == finding_agreement(ref, int8, th, ids)
        assert q["gate"]["conditions"]["findings"]["passed"] and q["passed"]
        assert b.manifest["decision"]["criteria_weight"] == 0.05
        assert b.manifest["decision"]["redecided"][-1]["thresholds_changed"] == {ids[0]: 0.2, ids[1]: 0.15}


def test_bad_input_is_one_line(tiny_bundle, tmp_path, capsys):
    folder, ids, _, _ = _with_scores(tiny_bundle, tmp_path, fp32=False)
    bad = _rules_with(tmp_path, "BRADY", lambda c: c.update(mode="sometimes"))
    typo = _rules_with(tmp_path, "BRADY", lambda c: c.get("when", c).update(key="hr_bmp"), "typo.json")
    cases = [
        ["--rules", typo],  # a misspelt measurement key: refused, naming the field
        ["--rules", bad],
        ["--thresholds", "NOPE=0.2"],
        ["--thresholds", f"{ids[0]}=high"],
        ["--thresholds", f"{ids[0]}=0.2"],  # no fp32 scores: the gate's condition 3 cannot run again
        ["--weight", "2"],
    ]
    manifest = (folder / "manifest.json").read_bytes()
    for extra in cases:
        code = main(["redecide", str(folder), *extra, "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 2, (extra, err)
        assert "cannot read" not in err, err
        if extra[-1] == typo:
            assert "hr_bmp" in err and "criteria[" in err, err
        assert err.startswith("ecg-export redecide: error:") and "\n" not in err and "Traceback" not in err, err
    assert (folder / "manifest.json").read_bytes() == manifest  # nothing written on a refusal
    assert "fp32" in err or "weight" in err


@pytest.mark.slow
def test_default_bundle_copy_redecides_and_passes_the_gate(shared_data, tmp_path):
    """The done-when of #19: a copy of the shipped default bundle takes a changed criterion in seconds."""
    from edge.bundle.loader import default_bundle_path

    folder = tmp_path / "default"
    shutil.copytree(default_bundle_path(), folder)
    data = [f"ptbxl={shared_data / 'ptbxl'}", f"ptbxl_processed={shared_data / 'ptbxl_processed'}",
            f"cinc2021={shared_data / 'cinc2021'}", f"challenge2020={shared_data / 'challenge2020'}"]
    if not (folder / SCORES_FILE).is_file():  # once: int8 scores from the bundle's own encoder
        assert main(["redecide", str(folder), "--rules", _rules_with(tmp_path, "BRADY", _brady_below(60)), "-q",
                     *sum((["--data", d] for d in data), [])]) == 0
    t0 = time.perf_counter()
    assert main(["redecide", str(folder), "--rules", _rules_with(tmp_path, "BRADY", _brady_below(50)), "-q"]) == 0
    assert time.perf_counter() - t0 < 20
    with load_bundle(folder, trust=ANY) as b:
        last = b.manifest["decision"]["redecided"][-1]
        assert last["gate"]["passed"] and b.manifest["quantization"]["passed"]
        assert last["effect"]["after"]["test"]["windows"] > 100
