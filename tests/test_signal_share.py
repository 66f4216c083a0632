"""Work shared between the steps of one window (#23 item 5) gives the same values to the last bit."""

from __future__ import annotations

import numpy as np

from edge.dsp import signal
from edge.dsp.integrity import _corrs
from edge.dsp.signal import LEADS, SignalConfig, filter_resample_bands, preprocess

BANDS = [(0.5, 100.0), (8.0, 30.0)]


def _window(seed: int, fs: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(10 * fs) / fs
    x = 0.3 * rng.standard_normal((12, t.size)) + np.sin(2 * np.pi * 1.2 * t)[None]
    return x.astype(np.float32)


def _fresh(rows: np.ndarray, fs: float) -> list[np.ndarray]:
    signal._SHARED[0] = None
    return filter_resample_bands(rows, fs, 500.0, BANDS)


def test_measure_rows_reuse_preprocess_spectra_bit_for_bit() -> None:
    x = _window(0)
    preprocess(x, 500, SignalConfig(), list(LEADS))
    assert signal._SHARED[0] is not None
    rows = x[[7, 0, 1, 6, 8, 9, 10, 11]].astype(np.float64)  # any order, float64 as measure() reads them
    shared = filter_resample_bands(rows, 500, 500.0, BANDS)
    assert signal._SHARED[0] is None  # read by that call, then released (not held through measure())
    fresh = _fresh(rows, 500)
    assert len(shared) == len(fresh) == 2
    for a, b in zip(shared, fresh, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_a_row_that_differs_in_one_bit_is_transformed_again() -> None:
    x = _window(1)
    preprocess(x, 500, SignalConfig(), list(LEADS))
    rows = x[:8].astype(np.float64)
    rows[3, 1234] = np.nextafter(rows[3, 1234], np.inf)
    assert signal._shared_spectra(rows, 500, 500.0) is None
    zero = np.zeros((1, x.shape[1]))
    assert signal._shared_spectra(zero, 500, 500.0) is None  # not a kept row
    assert signal._shared_spectra(rows[:, :-1], 500, 500.0) is None  # another length
    assert signal._shared_spectra(x[:8].astype(np.float64), 500, 500.0) is not None  # kept until one matches


def test_reversal_correlations_in_one_pass_equal_pair_by_pair() -> None:
    def corr(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return float((a * b).sum() / den) if den > 0 else 0.0

    rng = np.random.default_rng(2)
    for _ in range(50):
        n = int(rng.integers(2, 2000))
        pairs = [(rng.standard_normal(n) * rng.uniform(1e-3, 4), rng.standard_normal(n)) for _ in range(8)]
        pairs[1] = (np.zeros(n), pairs[1][1])
        pairs[5] = (pairs[4][0], pairs[2][1])  # rows shared between pairs (V6 is in six of the eight)
        pairs[6] = (pairs[0][0], pairs[0][0])
        assert _corrs(pairs) == [corr(a, b) for a, b in pairs]
