"""The delineator against cardiologists: QT Database records (annotator 1), scored as bench/bench_qtdb.py does.

Records of the held-out half (odd positions of RECORDS; the thresholds were chosen on the even half), every
ninth one, so the test covers several source databases without reading all 105 records; the paced records
(sel102, sel104: MIT-BIH 102 and 104) are left out here because their QRS end is a known miss, stated in
docs/measurements.md and scored in bench/bench_qtdb.py (the pacing spike dominates the QRS's wavelet maxima).
The bounds are the figures measured on these records with a margin, so a change that makes the delineator
worse against cardiologists fails here, while the generator-based tests could not see it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

pytestmark = pytest.mark.slow
PACED = ("sel102", "sel104")


@pytest.fixture(scope="module")
def scored(shared_data):
    pytest.importorskip("wfdb")
    import qtdb_score as q

    if not (shared_data / "qtdb" / "RECORDS").is_file():
        pytest.skip("no QT Database in the shared data")
    _, held = q.split(q.records(shared_data))
    recs = [q.load(shared_data, name) for name in held[::9] if name not in PACED]
    found = {r.name: q.device_delineation(r) for r in recs}
    return q, recs, q.summary(q.errors(recs, found))


# boundary: (minimum Se, largest |mean| ms, largest record-averaged SD ms)
BOUNDS = {
    "qrs_on": (0.99, 8.0, 14.0),
    "qrs_off": (0.99, 12.0, 14.0),
    "p_on": (0.80, 10.0, 15.0),
    "p_off": (0.80, 12.0, 16.0),
    "t_end": (0.95, 15.0, 25.0),
}


@pytest.mark.parametrize("boundary", list(BOUNDS))
def test_boundary_errors_against_annotator_1(scored, boundary):
    _, recs, s = scored
    se, mean, sd = BOUNDS[boundary]
    v = s[boundary]
    assert v["n"] >= 100, v
    assert v["se"] >= se and abs(v["mean"]) <= mean and v["sd_rec"] <= sd, (boundary, v)


def test_beats_of_the_annotated_stretches_are_all_found(scored):
    q, recs, _ = scored
    from training.metrics import ec57_match

    for rec in recs:
        peaks = np.array([b["qrs"] for b in rec.ref])
        tp, fn, _ = ec57_match(peaks, q.device_beats(rec), int(0.15 * q.FS))
        assert fn == 0, (rec.name, fn)
