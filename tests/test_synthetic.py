"""Fast unit tests of the synthetic 12-lead ECG generator (firmware_bridge.synthetic); no data needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.synthetic import (
    LEADS,
    RHYTHMS,
    ST_TERRITORIES,
    SyntheticConfig,
    SyntheticStream,
    from_counts,
    synthesize,
    to_counts,
)

FS = 500
INDEP = [LEADS.index(name) for name in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
CLEAN = {"noise_mv": 0.0, "baseline_wander_mv": 0.0}


def r_peaks(sig: np.ndarray, fs: float = FS, refractory_s: float = 0.25) -> np.ndarray:
    """Simple detector: first crossing of half the maximum, then the maximum within the refractory period."""
    sig = sig - np.median(sig)
    thr, ref = 0.5 * sig.max(), int(refractory_s * fs)
    peaks, i = [], 0
    while i < len(sig):
        if sig[i] > thr:
            j = i + int(np.argmax(sig[i : i + ref]))
            peaks.append(j)
            i = j + ref
        else:
            i += 1
    return np.array(peaks)


def spatial_peaks(x: np.ndarray) -> np.ndarray:
    """R peaks on the spatial magnitude of the eight independent leads (works for any QRS axis)."""
    return r_peaks(np.sqrt((x[INDEP].astype(np.float64) ** 2).sum(0)))


def qrs_width_ms(x: np.ndarray, r: int, frac: float = 0.1) -> float:
    """QRS duration: span where the spatial velocity exceeds ``frac`` of its maximum, within R +- 200 ms."""
    w = x[INDEP, r - 100 : r + 100].astype(np.float64)
    v = np.sqrt((np.diff(w, axis=1) ** 2).sum(0))
    above = np.nonzero(v > frac * v.max())[0]
    return (above[-1] - above[0] + 1) / FS * 1000


# --- shape, dtype, determinism, config -----------------------------------------------------------
@pytest.mark.parametrize("rhythm", sorted(RHYTHMS))
def test_shape_dtype_and_determinism(rhythm):
    x = synthesize(rhythm=rhythm, duration_s=3.3, seed=7)
    assert x.shape == (12, round(3.3 * FS))
    assert x.dtype == np.float32
    assert np.all(np.isfinite(x))
    assert np.array_equal(x, synthesize(rhythm=rhythm, duration_s=3.3, seed=7))
    assert not np.array_equal(x, synthesize(rhythm=rhythm, duration_s=3.3, seed=8))


def test_config_object_and_overrides_agree():
    cfg = SyntheticConfig(rhythm="afib", fs=250, seed=3)
    x = synthesize(cfg, duration_s=2.0)
    assert x.shape == (12, 500)
    assert np.array_equal(x, synthesize(duration_s=2.0, rhythm="afib", fs=250, seed=3))


def test_longer_record_starts_with_the_shorter_one():
    assert np.array_equal(synthesize(duration_s=10.0)[:, :1234], synthesize(duration_s=1234 / FS))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rhythm": "vfib"},
        {"rhythm": "sinus_brady", "heart_rate_bpm": 72},
        {"rhythm": "sinus_tachy", "heart_rate_bpm": 90},
        {"heart_rate_bpm": 400},
        {"st_territory": "posterior"},
        {"fs": 0},
        {"noise_mv": -1},
        {"pvc_every": 1},
        {"seed": 1.5},
    ],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        SyntheticConfig(**kwargs)


def test_default_rates_follow_the_rhythm():
    assert SyntheticConfig().rate_bpm == 72
    assert SyntheticConfig(rhythm="sinus_brady").rate_bpm < 60
    assert SyntheticConfig(rhythm="sinus_tachy").rate_bpm > 100


# --- lead relations and morphology ---------------------------------------------------------------
@pytest.mark.parametrize("rhythm", ["sinus", "afib", "lbbb", "st_elevation"])
def test_limb_lead_identities(rhythm):
    x = synthesize(rhythm=rhythm, duration_s=4.0, powerline_mv=0.1).astype(np.float64)
    lead = {name: x[i] for i, name in enumerate(LEADS)}
    i, ii = lead["I"], lead["II"]
    np.testing.assert_allclose(lead["III"], ii - i, atol=1e-5)
    np.testing.assert_allclose(lead["aVR"], -(i + ii) / 2, atol=1e-5)
    np.testing.assert_allclose(lead["aVL"], i - ii / 2, atol=1e-5)
    np.testing.assert_allclose(lead["aVF"], ii - i / 2, atol=1e-5)


def test_sinus_amplitudes_and_t_wave_polarity():
    x = synthesize(duration_s=10.0, **CLEAN).astype(np.float64)
    lead = {name: x[i] for i, name in enumerate(LEADS)}
    peaks = r_peaks(lead["II"])[1:-1]
    r_ii = lead["II"][peaks]
    assert 1.0 <= r_ii.mean() <= 1.5
    # R progression: V1 small r / deep S, V5-V6 tall R
    assert lead["V1"].max() < 0.5 and lead["V1"].min() < -0.6
    assert lead["V5"].max() > 1.0 and lead["V6"].max() > lead["V1"].max() + 0.5
    # T waves (R + 280 ms) upright in I, II, V3-V6, inverted in aVR
    t_idx = peaks + int(0.28 * FS)
    for name in ("I", "II", "V3", "V4", "V5", "V6"):
        assert lead[name][t_idx].mean() > 0.05, name
    assert lead["aVR"][t_idx].mean() < -0.05


# --- rhythm ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bpm", [60, 100])
def test_sinus_heart_rate(bpm):
    x = synthesize(heart_rate_bpm=bpm, duration_s=20.0)
    rr = np.diff(r_peaks(x[LEADS.index("II")])) / FS
    assert abs(60.0 / rr.mean() - bpm) <= 3.0


@pytest.mark.parametrize("rhythm", ["sinus_brady", "sinus_tachy"])
def test_brady_and_tachy_rates(rhythm):
    x = synthesize(rhythm=rhythm, duration_s=20.0)
    bpm = 60.0 / (np.diff(r_peaks(x[LEADS.index("II")])).mean() / FS)
    assert bpm < 60 if rhythm == "sinus_brady" else bpm > 100


def test_afib_is_irregular_and_sinus_is_not():
    def rr_cv(rhythm):
        rr = np.diff(r_peaks(synthesize(rhythm=rhythm, duration_s=30.0)[LEADS.index("II")]))
        return rr.std() / rr.mean()

    assert rr_cv("afib") > 0.1
    assert rr_cv("sinus") < 0.06


def test_afib_f_waves_are_4_to_9_hz_and_small():
    with_f = synthesize(rhythm="afib", duration_s=20.0, **CLEAN).astype(np.float64)
    without = synthesize(rhythm="afib", duration_s=20.0, fwave_mv=0.0, **CLEAN).astype(np.float64)
    f = (with_f - without)[LEADS.index("V1")]
    assert 0.02 < np.abs(f).max() < 0.2
    spec = np.abs(np.fft.rfft(f)) ** 2
    freqs = np.fft.rfftfreq(len(f), 1 / FS)
    band = (freqs >= 4) & (freqs <= 9)
    assert spec[band].sum() > 0.8 * spec.sum()


def test_pvc_premature_with_compensatory_pause():
    x = synthesize(rhythm="pvc", duration_s=30.0, hrv=0.0, **CLEAN)
    peaks = spatial_peaks(x)
    rr = np.diff(peaks) / FS
    sinus_rr = 60.0 / 72
    short = np.nonzero(rr < 0.8 * sinus_rr)[0]
    assert len(short) >= 5
    for k in short[short < len(rr) - 1]:
        assert rr[k + 1] > 1.2 * sinus_rr  # pause after the premature beat
        assert abs(rr[k] + rr[k + 1] - 2 * sinus_rr) < 0.03  # fully compensatory
    # the premature beats are wide
    widths = [qrs_width_ms(x, peaks[k + 1]) for k in short if 0 < k + 1 < len(peaks) - 1]
    assert np.median(widths) >= 120


@pytest.mark.parametrize("rhythm", ["rbbb", "lbbb", "wide_qrs"])
def test_bundle_branch_block_widens_qrs(rhythm):
    def median_width(rh):
        x = synthesize(rhythm=rh, duration_s=10.0, **CLEAN)
        return np.median([qrs_width_ms(x, r) for r in spatial_peaks(x)[1:-1]])

    normal, wide = median_width("sinus"), median_width(rhythm)
    assert normal < 110
    assert wide >= 120 and wide > normal + 30


def test_rbbb_has_rsr_prime_in_v1():
    x = synthesize(rhythm="rbbb", duration_s=4.0, **CLEAN).astype(np.float64)
    v1 = x[LEADS.index("V1")]
    r = spatial_peaks(x)[1]
    seg = v1[r - int(0.05 * FS) : r + int(0.12 * FS)]
    # r, then S below zero, then a taller R'
    i_s = int(np.argmin(seg))
    assert seg[:i_s].max() > 0.1 and seg[i_s] < -0.3 and seg[i_s:].max() > seg[:i_s].max()


@pytest.mark.parametrize("territory", sorted(ST_TERRITORIES))
def test_st_elevation_in_chosen_leads(territory):
    def st_levels(rhythm):
        x = synthesize(rhythm=rhythm, st_territory=territory, duration_s=10.0, **CLEAN).astype(np.float64)
        peaks = r_peaks(x[LEADS.index("II")])[1:-1]
        j60 = peaks + int((0.05 + 0.06) * FS)  # J point about 50 ms after R, plus 60 ms
        pr = peaks - int(0.06 * FS)  # PR segment baseline
        return {name: (x[i, j60] - x[i, pr]).mean() for i, name in enumerate(LEADS)}

    ste, sinus = st_levels("st_elevation"), st_levels("sinus")
    for name in ST_TERRITORIES[territory]:
        assert ste[name] > 0.1, (name, ste[name])
        assert abs(sinus[name]) < 0.05, (name, sinus[name])


# --- stream ------------------------------------------------------------------------------------
@pytest.mark.parametrize("rhythm", ["sinus", "afib", "pvc"])
def test_stream_chunks_equal_one_synthesize(rhythm):
    cfg = SyntheticConfig(rhythm=rhythm, seed=11, powerline_mv=0.05)
    stream = SyntheticStream(cfg)
    sizes = [1, 7, 250, 999, 0, 1500, 3]
    chunks = [stream.read(n) for n in sizes]
    assert all(c.shape == (12, n) and c.dtype == np.float32 for c, n in zip(chunks, sizes, strict=True))
    assert stream.samples_emitted == sum(sizes)
    assert stream.fs == cfg.fs
    assert np.array_equal(np.concatenate(chunks, axis=1), synthesize(cfg, duration_s=sum(sizes) / cfg.fs))


def test_stream_runs_long_with_bounded_memory():
    stream = SyntheticStream(rhythm="afib", seed=2)
    for _ in range(300):  # 10 minutes in 2-s reads
        x = stream.read(1000)
    assert np.all(np.isfinite(x)) and np.abs(x).max() < 5
    assert len(stream._beats) < 10  # beats that can no longer reach the output are dropped
    assert stream._buf.shape[1] < 2 * FS


# --- noise, wander, powerline ----------------------------------------------------------------------
def _band_fraction(sig: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(sig - sig.mean())) ** 2
    freqs = np.fft.rfftfreq(len(sig), 1 / FS)
    return spec[(freqs >= lo) & (freqs <= hi)].sum() / spec.sum()


def test_noise_wander_and_powerline_land_in_their_bands():
    clean = synthesize(duration_s=40.0, **CLEAN).astype(np.float64)[0]

    wander = synthesize(duration_s=40.0, noise_mv=0.0, baseline_wander_mv=0.3).astype(np.float64)[0] - clean
    assert 0.05 < wander.std() < 0.5
    assert _band_fraction(wander, 0.02, 0.5) > 0.95

    noise = synthesize(duration_s=40.0, noise_mv=0.05, baseline_wander_mv=0.0).astype(np.float64)[0] - clean
    assert noise.std() == pytest.approx(0.05, rel=0.1)
    assert 0.4 < _band_fraction(noise, 125, 250) < 0.6  # white: upper half of the band holds half the power

    mains = synthesize(duration_s=40.0, powerline_mv=0.1, powerline_hz=60.0, **CLEAN).astype(np.float64)[0]
    assert _band_fraction(mains - clean, 59.5, 60.5) > 0.99

    # and in the full signal the added energy shows where it belongs
    assert _band_fraction(clean + wander, 0.02, 0.5) > 5 * _band_fraction(clean, 0.02, 0.5)
    assert _band_fraction(clean + noise, 125, 250) > 5 * _band_fraction(clean, 125, 250)


# --- ADC conversion --------------------------------------------------------------------------------
@pytest.mark.parametrize("lsb_nv", [100.0, 1000.0, 2500.0])
def test_counts_round_trip_within_one_lsb(lsb_nv):
    x = synthesize(rhythm="afib", duration_s=2.0, powerline_mv=0.2)
    counts = to_counts(x, lsb_nv)
    assert counts.dtype == np.int16 and counts.shape == x.shape
    back = from_counts(counts, lsb_nv)
    assert back.dtype == np.float32
    assert np.abs(back - x).max() <= lsb_nv * 1e-6


def test_counts_clip_and_round():
    assert to_counts(np.array([1.0, -1.0, 0.0004, 0.0006]), 1000.0).tolist() == [1000, -1000, 0, 1]
    assert to_counts(np.array([100.0, -100.0]), 1000.0).tolist() == [32767, -32768]
    with pytest.raises(ValueError):
        to_counts(np.zeros(3), 0)


# --- rhythms scheduled with their own atrial clock (firmware_bridge.synthetic_rhythms) -------------------
def test_new_rhythm_rates_and_patterns():
    def rr(name: str, **kw) -> np.ndarray:
        return np.diff(spatial_peaks(synthesize(rhythm=name, duration_s=12, seed=3, **kw))) / FS

    assert abs(60 / rr("flutter").mean() - 75) < 3 and rr("flutter").std() < 0.02  # 300/min, 4:1
    assert abs(60 / rr("svt").mean() - 180) < 5
    assert abs(60 / rr("avb2to1").mean() - 40) < 3
    assert abs(60 / rr("avb3").mean() - 40) < 3
    bi = rr("bigeminy")
    assert (bi[::2].mean() < 0.75 * bi[1::2].mean()) or (bi[1::2].mean() < 0.75 * bi[::2].mean())


def test_pacing_spikes_are_sharp_and_scale_with_the_sampling_rate():
    for fs in (500, 1000):
        x = synthesize(rhythm="paced_v", duration_s=5, seed=1, fs=fs)
        d = np.abs(np.diff(x[1].astype(np.float64)))
        assert d.max() > 0.5  # one-sample steps of over half a mV: no QRS rises that fast
        assert (d > 0.4).sum() <= 4 * 2 * 6  # only at the ~6 stimuli
    assert np.abs(np.diff(synthesize(rhythm="sinus", duration_s=5, seed=1)[1])).max() < 0.3


def test_simulator_help_lists_every_rhythm():
    text = (Path(__file__).resolve().parents[1] / "firmware_bridge" / "cli.py").read_text()
    listed = text[text.index('"--synthetic"') : text.index("RHYTHMS)")]
    assert [r for r in RHYTHMS if r not in listed and r != "wide_qrs"] == []
