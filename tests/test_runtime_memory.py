"""The runtime's resident memory (issue #23 item 5): what ``ecg-edge run`` must not load, and the numpy-free
helpers that keep numpy.ma out give numpy's own values."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from edge.dsp.beats import median, percentile_rows, unique_ints

REPO_ROOT = __file__.rsplit("/tests/", 1)[0]


def test_percentile_rows_is_numpys_percentile():
    rng = np.random.default_rng(7)
    for t in range(400):
        a = rng.standard_normal((int(rng.integers(1, 13)), int(rng.integers(1, 700)))) * 10.0 ** int(
            rng.integers(-3, 3)
        )
        a = a.astype(np.float32 if t % 2 else np.float64)
        if t % 5 == 0:
            a = np.round(a, 1)  # ties
        if t % 9 == 0:
            a[0, -1] = np.nan
        for q in (99, 95, 50, 37.5, 1, 0, 100):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = np.percentile(a, q, axis=1)
            got = percentile_rows(a, q)
            assert got.dtype == want.dtype
            assert np.array_equal(got, want, equal_nan=True), (t, q)
        one = percentile_rows(a[:1], 99)[0]
        assert type(one) is type(np.percentile(a[0], 99))


def test_unique_ints_and_median_are_numpys():
    rng = np.random.default_rng(8)
    for _ in range(300):
        i = rng.integers(-5, 50, int(rng.integers(0, 30)))
        assert np.array_equal(unique_ints(i), np.unique(i)) and unique_ints(i).dtype == np.unique(i).dtype
        v = rng.standard_normal(int(rng.integers(1, 40)))
        assert median(v) == np.median(v)
        m = rng.standard_normal((3, int(rng.integers(1, 20))))
        assert np.array_equal(median(m, axis=1), np.median(m, axis=1))
        m[1, 0] = np.nan  # numpy gives NaN for that row; so does median
        assert np.array_equal(median(m, axis=1), np.median(m, axis=1), equal_nan=True)


_PROBE = """
import sys
from edge.cli import main, run  # noqa: F401 - the command's own modules
from edge.views import webview  # noqa: F401 - --view
from edge.runtime.engine import Classifier
from firmware_bridge.synthetic import synthesize
c = Classifier.from_bundle(None)
for rhythm in ("sinus", "lbbb", "afib", "pvc", "mobitz1", "paced_dual", "flutter", "vt"):
    c.classify_window(synthesize(duration_s=10.0, rhythm=rhythm), 500.0)
print(" ".join(m for m in ("numpy.ma", "scipy", "torch", "ssl", "importlib.resources", "tempfile") if m in sys.modules))
"""


def test_a_window_loads_nothing_heavy():
    """numpy.ma (np.median/np.percentile/np.unique's masked checks, 1.2 MiB), OpenSSL (via http.client) and
    importlib.resources (tempfile, shutil, bz2, lzma) stay out of the runtime: each costs resident memory on
    the board and none is needed there."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        pytest.fail(out.stderr[-2000:])
    assert out.stdout.strip() == ""
