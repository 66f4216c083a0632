"""Partial leads (contract 5 v3 ``quality.usable_leads``): one electrode off keeps rate, rhythm and the statements
whose leads are present; statements needing the missing lead are withheld with a reason; a window is skipped
only when no usable lead remains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.dsp.signal import EIGHT_CHANNEL_LEADS, LEADS
from edge.interpret.lead_needs import LEAD_NEEDS, withhold
from edge.runtime.engine import Classifier
from edge.runtime.stream import StreamClassifier
from firmware_bridge.synthetic import synthesize

FS = 500


@pytest.fixture(scope="module")
def clf():
    with Classifier.from_bundle() as classifier:  # the default bundle: real thresholds and rules
        yield classifier


def test_withhold_names_the_missing_leads():
    kept, withheld = withhold(["SR", "IMI", "NORM", "RBBB"], [n for n in LEADS if n != "V1"])
    assert kept == ["SR", "IMI"]
    assert set(withheld) == {"NORM", "RBBB"} and "V1" in withheld["RBBB"]
    kept, withheld = withhold(["LVH", "SR", "AFIB"], list(LEADS), ["scale"])
    assert kept == ["SR", "AFIB"] and "校正" in withheld["LVH"]
    kept, withheld = withhold(["LAD", "V1_only"], list(LEADS[6:]), ["limb_reversal"])
    assert kept == ["V1_only"] and "入れ替わ" in withheld["LAD"]
    assert withhold(["NORM"], None) == (["NORM"], {})  # an older report says nothing: nothing withheld
    assert all(set(need) <= set(LEADS) for need in LEAD_NEEDS.values())


def test_one_chest_lead_off_keeps_rate_rhythm_and_findings(clf):
    x = synthesize(rhythm="sinus", fs=FS, seed=3, duration_s=10.0)[
        [LEADS.index(n) for n in EIGHT_CHANNEL_LEADS]
    ]
    full = clf.classify_window(x, FS, EIGHT_CHANNEL_LEADS)
    x_off = x.copy()
    x_off[3] = 0.0  # V2's electrode off: the device zeroes it and sets the bit
    r = clf.classify_window(x_off, FS, EIGHT_CHANNEL_LEADS, lead_off=1 << 3)
    assert not r.skipped and r.quality.ok and r.quality.lead_off == ["V2"]
    assert r.quality.usable_leads == [n for n in LEADS if n != "V2"]
    assert r.measurements["hr_bpm"] == pytest.approx(full.measurements["hr_bpm"], abs=2)
    assert r.findings, "rate and rhythm statements go on"
    assert not set(r.findings) & {lid for lid, need in LEAD_NEEDS.items() if "V2" in need}
    assert "NORM" not in r.findings  # a normal ECG needs all twelve leads
    line = r.to_json("t")
    assert line["quality"]["usable_leads"] == r.quality.usable_leads and isinstance(line["withheld"], dict)


def test_no_usable_lead_is_skipped(clf):
    x = synthesize(rhythm="sinus", fs=FS, seed=4, duration_s=10.0)
    r = clf.classify_window(x, FS, LEADS, lead_off=(1 << 12) - 1)
    assert r.skipped and not r.quality.ok and r.quality.usable_leads == [] and not r.findings


def test_lead_off_stream_keeps_hr_in_every_window(clf):
    """As the simulator's ``--lead-off V2@8-22``: V2 off from 8 to 22 s of a 30-s stream."""
    x = synthesize(rhythm="sinus", fs=FS, seed=5, duration_s=30.0)[
        [LEADS.index(n) for n in EIGHT_CHANNEL_LEADS]
    ]
    masks = np.zeros(x.shape[1], np.uint16)
    masks[8 * FS : 22 * FS] = 1 << 3
    x = x.copy()
    x[3, 8 * FS : 22 * FS] = 0.0
    stream = StreamClassifier(clf, FS, EIGHT_CHANNEL_LEADS)
    results = []
    for a in range(0, x.shape[1], FS // 4):
        results += stream.feed(x[:, a : a + FS // 4].T, a, masks[a : a + FS // 4])
    assert len(results) == 11
    off = [r for r in results if r.quality.lead_off]
    assert off and all(not r.skipped and r.measurements["hr_bpm"] for r in results)
    assert all("V2" not in r.quality.usable_leads for r in off)
    rhythms = [(r.to_json("sim").get("rhythm") or {}).get("statement") for r in results]
    assert all(st and st != "undetermined" for st in rhythms), rhythms  # the rhythm is read in every window


@pytest.mark.slow
def test_challenge_records_with_flat_chest_leads_are_read_on_nine(clf, shared_data: Path):
    """V2, V4, V6 flat (as in two CPSC records of the issue; made here from real CPSC 2018 records)."""
    from edge.readers.records import read_recording

    for name in ("A0001", "A0002"):
        rec = read_recording(shared_data / "challenge2020" / f"{name}.hea")
        x = rec.x_mv[:, : 10 * int(rec.fs)].copy()
        for lead in ("V2", "V4", "V6"):
            x[rec.leads.index(lead)] = 0.0
        r = clf.classify_window(x, rec.fs, rec.leads)
        assert not r.skipped and sorted(r.quality.flat) == ["V2", "V4", "V6"]
        assert len(r.quality.usable_leads) == 9 and r.measurements["hr_bpm"]
        assert r.findings


def test_training_lead_dropout_zeroes_leads_as_the_runtime_does():
    torch = pytest.importorskip("torch")
    from training.augment import AugmentConfig, augment_batch

    x = torch.ones(64, 12, 100)
    off = dict(crop_p=0.0, amplitude_p=0.0, noise_p=0.0, wander_p=0.0)
    y = augment_batch(x, AugmentConfig(**off, lead_dropout_p=1.0), torch.Generator().manual_seed(0))
    zeroed = (y == 0).all(dim=2)
    assert ((zeroed.sum(dim=1) >= 1) & (zeroed.sum(dim=1) <= 3)).all()
    p = augment_batch(
        x,
        AugmentConfig(**off, lead_dropout_p=1.0, lead_dropout_patterns=1.0),
        torch.Generator().manual_seed(0),
    )
    zp = (p == 0).all(dim=2)
    only_ii = zp[:, [0, 2, 3, 4, 5]].all(dim=1) & ~zp[:, 1]
    assert (
        ((only_ii | zp[:, :6].all(dim=1)) & ~zp[:, 6:].any(dim=1)).all()
        and only_ii.any()
        and not only_ii.all()
    )
    same = augment_batch(
        x,
        AugmentConfig(**off, lead_dropout_p=1.0, lead_dropout_patterns=0.0),
        torch.Generator().manual_seed(0),
    )
    assert torch.equal(same, y)  # patterns off: the random draws of older runs, unchanged


def test_ecg_train_lead_dropout_flag():
    pytest.importorskip("torch")
    from training.cli import _train_parser as build_parser
    from training.cli import config_from_args

    args = build_parser().parse_args(
        ["--data", "ptbxl=x", "--out", "o", "--lead-dropout", "0.5", "--lead-dropout-patterns", "0.3"]
    )
    cfg = config_from_args(args)
    assert cfg.augment.lead_dropout_p == 0.5 and cfg.augment.lead_dropout_patterns == 0.3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--data", "ptbxl=x", "--out", "o", "--lead-dropout", "1.5"])
