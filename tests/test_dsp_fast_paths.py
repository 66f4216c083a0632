"""The measurement pipeline's cheaper paths give exactly what the plain numpy ones give (#23 item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp.beats import MEDIAN_NETWORK_MAX, median, median_of
from edge.dsp.delineate import scales_read, wavelet_scales
from edge.dsp.morphology import frontal_axes, frontal_axis


@pytest.mark.parametrize("n", list(range(1, MEDIAN_NETWORK_MAX + 3)))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_median_of_is_np_median(n, dtype):
    rng = np.random.default_rng(n)
    data = rng.normal(size=(n, 3, 40)).astype(dtype)
    data[:, :, :8] = np.round(data[:, :, :8])  # ties
    before = data.copy()
    got = median_of(list(data))
    want = np.median(np.stack(list(data), axis=-1), axis=-1)
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(data, before)  # the inputs are not written


def test_median_matches_numpy_on_every_axis_and_type():
    rng = np.random.default_rng(0)
    for shape in [(5,), (6,), (3, 7, 4), (3, 7, 5), (1,), (4, 1)]:
        a = rng.normal(size=shape)
        for ax in range(-len(shape), len(shape)):
            got, want = median(a, axis=ax), np.median(a, axis=ax)
            assert type(got) is type(want) and np.array_equal(got, want)
        ints = rng.integers(0, 10, size=shape)
        assert np.array_equal(median(ints), np.median(ints, axis=-1))
    a = rng.normal(size=(3, 6))
    a[1, 2] = np.nan
    assert np.array_equal(median(a, 1), np.median(a, 1), equal_nan=True)


def test_frontal_axes_in_one_solve_equal_one_by_one():
    rng = np.random.default_rng(1)
    for k in (1, 2, 3):
        areas = rng.normal(size=(3, k)) * rng.choice([1e-3, 1.0, 100.0])
        assert frontal_axes(areas) == [frontal_axis(*areas[:, j]) for j in range(k)]
    assert frontal_axes(np.zeros((3, 2))) == [None, None]


def test_wavelet_scales_only_the_scales_read():
    x = np.random.default_rng(2).normal(size=(3, 300))
    full, part = wavelet_scales(x), wavelet_scales(x, only=scales_read())
    for s in range(5):
        if s + 1 in scales_read():
            assert np.array_equal(full[s], part[s])
        else:
            assert np.isnan(part[s]).all()
