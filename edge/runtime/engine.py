"""The bedside classifier: raw ECG windows in, ranked Japanese labels and stated findings out (DESIGN.md,
contracts 1, 3, 5, 8).

This is the Python API a device integrator uses::

    from edge.runtime.engine import Classifier
    from edge.runtime.stream import StreamClassifier

    clf = Classifier.from_bundle()                      # the default bundle, int8 ONNX, one thread
    result = clf.classify_window(x_mv, fs=500)          # x_mv: float32 [12 or 8, T] in millivolts
    print(result.top[0]["ja"], result.findings, result.why)
    line = result.to_json(source="ward-3", window_start_sample=0, fs=500)   # contract 5 v3
    whole = clf.classify_record(x_mv_long, fs=500)      # one result for a whole recording

    stream = StreamClassifier(clf, fs=500, leads=["I", "II", "V1", ..., "V6"])
    for result in stream.feed(block_mv, first_sample=n0, lead_off=mask):   # block [n, C]
        ...

Every window, from a file or the serial stream, goes through the same steps in
:meth:`Classifier.classify_windows`: quality check on the raw window (``edge.dsp.quality``), the signal
contract (``edge.dsp.signal.preprocess``), the measurements (``edge.dsp.measure``), the encoder
(``edge.runtime.backends``), cosine similarity against the bundle's precomputed label embeddings, the
ranking ``top`` (cosine moved by the bundle's criteria weight where a measurement criterion holds or fails;
each entry shows its cosine), and the findings: stated by a measurement criterion or by the model's cosine
at or above the label's threshold, then made consistent by the rules; each with its ``why``. A window whose
quality is not ok is skipped: no inference, no findings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edge.bundle.loader import Bundle, load_bundle, new_sha256
from edge.dsp.measure import combine_measurements, measure
from edge.dsp.quality import (
    QualityConfig,
    assess_window,
    failed_quality,
    lead_off_names,
    measured_leads,
    model_window,
)
from edge.dsp.signal import (
    SignalConfig,
    SignalError,
    default_lead_names,
    iter_windows,
    preprocess,
    release_spectra,
    select_leads,
)
from edge.interpret.decide import decide
from edge.interpret.findings import FindingRules
from edge.interpret.lead_needs import withhold
from edge.interpret.rhythm import Rhythm, analyse_rhythm, consistent
from edge.interpret.why import Why
from edge.runtime.backends import Backend, get_backend, model_key_for
from edge.runtime.result import Quality, Result

__all__ = ["TOP_K", "Classifier", "bundle_id"]

logger = logging.getLogger(__name__)

TOP_K = 5


def bundle_id(bundle: Bundle) -> str:
    """A short identifier of a bundle: its name (or ``bundle``) and the start of its manifest's sha256."""
    digest = new_sha256(json.dumps(bundle.manifest, sort_keys=True).encode()).hexdigest()[:12]
    name = bundle.manifest.get("name") or bundle.manifest.get("provenance", {}).get("name") or "bundle"
    return f"{name}@{digest}"


def _check_encoder(bundle: Bundle, model: Backend) -> None:
    """One probe window at load: an encoder that disagrees with the manifest's signal (samples per window) or
    embedding size is refused here with one line, never at the first real window (issue 25, item 5)."""
    from edge.bundle.schema import BundleError

    n, dim = bundle.signal.n_samples, bundle.manifest["embedding_dim"]
    try:
        out = model(np.zeros((1, 12, n), dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - onnxruntime / LiteRT raise their own classes
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:160]
        raise BundleError(
            f"bundle {bundle.folder}: the encoder does not take the manifest's signal ({n} samples = signal.fs x "
            f"signal.window_s): {first}"
        ) from None
    if np.shape(out) != (1, dim):
        raise BundleError(f"bundle {bundle.folder}: the encoder gives {np.shape(out)}, the manifest says (1, {dim})")


class Classifier:
    """A bundle's encoder and label embeddings, ready to classify raw windows."""

    def __init__(
        self, bundle: Bundle, backend: Backend, quality: QualityConfig | None = None, top_k: int = TOP_K
    ) -> None:
        self.bundle = bundle
        self.backend = backend
        self.quality_config = quality or QualityConfig()
        self.top_k = top_k
        self.signal: SignalConfig = bundle.signal
        self.labels = bundle.labels
        self.label_ids = bundle.label_ids
        emb = np.asarray(bundle.embeddings, dtype=np.float32)
        self.embeddings = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        self.thresholds = np.asarray(bundle.thresholds, dtype=np.float32)
        self.threshold_of = dict(zip(self.label_ids, map(float, self.thresholds), strict=True))  # read-only
        # consistent findings (edge/interpret/findings.py): the rules the bundle was exported with, else the shipped ones;
        # criteria_weight moves measurement-defined labels in the ranking (chosen on validation at export)
        self.rules, self.criteria_weight = FindingRules.from_manifest(self.labels, bundle.manifest)
        # Labels never trained (older bundles only say "new": added at export or held out).
        self.zero_shot = [bool(lb.get("zero_shot", lb.get("new", False))) for lb in self.labels]
        self.labels_ja = {lb["id"]: lb.get("ja", lb["id"]) for lb in self.labels}  # the decision's reasons
        self.patient: dict | None = None  # {"sex", "age"} when known: the sex/age thresholds (ST in V2-V3, QTc)
        self.bundle_id = bundle_id(bundle)

    @classmethod
    def from_bundle(
        cls,
        path: str | Path | None = None,
        backend: str = "auto",
        threads: int = 1,
        precision: str = "int8",
        verify: bool = True,
        quality: QualityConfig | None = None,
        warmup: bool = True,
        trust=None,  # noqa: ANN001 - edge.bundle.signing.Trust: the keys that count (default: the device's)
    ) -> Classifier:
        """Load a bundle (``None``: the default one) and its encoder for ``backend`` (``onnx``/``litert``;
        ``auto``: onnx if the bundle has the int8 ONNX model, else litert).

        ``precision="fp32"`` runs the bundle's fp32 ONNX model instead of the int8 one (for comparisons).
        """
        bundle = load_bundle(path, verify=verify, trust=trust)
        if backend == "auto":
            backend = (
                "onnx" if bundle.manifest["models"].get("onnx_int8") or precision == "fp32" else "litert"
            )
        try:
            key = model_key_for(backend, precision)  # the bytes verified at load, never the file again
            model = get_backend(backend, bundle.model_path(key), threads, data=bundle.models.get(bundle.model_name(key)))
            _check_encoder(bundle, model)
            bundle.models.clear()  # the runtime holds its own copy: not 2.6 MB twice in the board's memory
            classifier = cls(bundle, model, quality)
        except Exception:
            bundle.close()
            raise
        if warmup:
            classifier.warmup()
        return classifier

    def warmup(self) -> None:
        """One throw-away inference, so the first real window does not pay for lazy imports and allocation."""
        x = np.zeros((12, self.signal.n_samples), dtype=np.float32)
        self.embed(self.preprocess(x, self.signal.fs)[None])
        release_spectra()

    def close(self) -> None:
        self.backend.close()
        self.bundle.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the steps --------------------------------------------------------------------------------
    def window_samples(self, fs: float) -> int:
        """Raw samples in one window at ``fs`` (the bundle's ``window_s``)."""
        return int(round(self.signal.window_s * fs))

    def preprocess(self, x_mv: np.ndarray, fs: float, leads: Sequence[str] | None = None) -> np.ndarray:
        """The signal contract with this bundle's parameters: float32 ``[12, N]``."""
        return preprocess(x_mv, fs, self.signal, leads)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Unit ECG embeddings ``[B, D]`` of preprocessed inputs ``[B, 12, N]``."""
        y = self.backend(x)
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine similarity ``[B, n_labels]`` of unit ECG embeddings with every label."""
        return embeddings @ self.embeddings.T

    def _ranked(
        self, scores: np.ndarray, measurements: Mapping | None = None, rhythm=None, quality=None
    ) -> tuple[list[dict], list[str], list[str], dict[str, Why]]:
        """``(top, findings, zero_shot_findings, why)`` of one window's cosine scores.

        ``top`` is ranked by the cosine moved by the bundle's ``criteria_weight`` where a measurement meets
        (+) or contradicts (-) a label's definition (``FindingRules.adjust``), and each entry's ``score`` is
        the cosine itself. Findings are decided on the cosine, the thresholds, the measurement criteria and
        the rules; findings of labels never trained are listed apart; every stated id gets its :class:`Why`.
        """
        # The decision (contract 8): rhythm, published criteria, the model, quality, consistency (edge.interpret.decide).
        q = None if quality is None else (
            {"usable_leads": quality.usable_leads, "inconsistent": quality.inconsistent}
            if isinstance(quality, Quality)  # its attributes, not two to_json() copies of the whole report
            else {"usable_leads": quality.get("usable_leads"), "inconsistent": quality.get("inconsistent")}
        )
        self.last_decision = decide(self.rules, scores, self.thresholds, measurements, rhythm=rhythm, quality=q,
                                    zero_shot=self.zero_shot, labels_ja=self.labels_ja, patient=self.patient)
        d = self.last_decision
        # the ranking reads the criteria's verdicts the decision already read where they are the same
        rank = self.rules.adjust(scores, measurements, self.criteria_weight, oks=d.criteria_oks)
        top = [self._top_entry(i, scores[i]) for i in np.argsort(-rank, kind="stable")[: self.top_k]]
        return top, d.findings, d.zero_shot_findings, d.why

    def _top_entry(self, i: int, cosine: float) -> dict:
        label = self.labels[i]
        return {
            "id": label["id"],
            "ja": label.get("ja", ""),
            "en": label.get("en", ""),
            "score": round(float(cosine), 6),
            "zero_shot": self.zero_shot[i],
        }

    def _names(self, ids: Sequence[str]) -> dict[str, tuple[str, str, bool]]:
        out = {}
        for lid in ids:
            i = self.rules.index[lid]
            out[lid] = (self.labels[i].get("ja", lid), self.labels[i].get("en", lid), self.zero_shot[i])
        return out

    def decide(self, result: Result, scores: np.ndarray) -> None:
        """Fill a result's ranking, findings (file: the window's own set) and why from its cosine scores."""
        result.scores = scores
        if result.rhythm is None and result.measurements is not None and result.fs:
            # contract 8.1: the deterministic rhythm, the model's rhythm scores as second opinion (helper B, #21)
            result.rhythm = analyse_rhythm(
                result.measurements,
                float(result.fs),
                dict(zip(self.label_ids, np.asarray(scores).tolist(), strict=True)),  # the floats map(float) gives
                self.threshold_of,
            )
        top, findings, apart, why = self._ranked(scores, result.measurements, result.rhythm, result.quality)
        result.top, result.findings, result.zero_shot_findings, result.why = top, findings, apart, why
        # Statements that need a missing or inconsistent lead are withheld, with the reason (contract 5 v3).
        findings, withheld = withhold(findings, result.quality.usable_leads, result.quality.inconsistent)
        apart, withheld_apart = withhold(apart, result.quality.usable_leads, result.quality.inconsistent)
        withheld.update(withheld_apart)
        withheld.update(self.last_decision.withheld)  # criteria that could not be read (edge.interpret.decide)
        result.findings, result.zero_shot_findings = findings, apart
        # alarms (ST elevation with its territory) that are stated: views show them first, in the alarm colour
        result.alarms = [a for a in self.last_decision.alarms if a["id"] in findings]
        result.why = {k: v for k, v in why.items() if k not in withheld}
        result.withheld = withheld
        result.window_findings = list(findings)
        result.names = self._names([*findings, *apart])

    # --- windows ----------------------------------------------------------------------------------
    def classify_window(
        self,
        x_mv: np.ndarray,
        fs: float,
        leads: Sequence[str] | None = None,
        quality: dict | None = None,
        lead_off: int | np.ndarray | Sequence[str] = 0,
        rail_mv: float | None = None,
    ) -> Result:
        """Classify one raw window ``x_mv[C, T]`` (mV, NaN = missing) sampled at ``fs``.

        ``leads`` names the channels (default by count: 12 leads or I, II, V1-V6). ``quality`` is a
        precomputed report; without it the window is assessed here, with ``lead_off`` (bit mask,
        per-sample masks or lead names) and ``rail_mv`` (ADC full scale) if known.
        """
        return self.classify_windows(
            [x_mv], fs, leads, None if quality is None else [quality], [lead_off], rail_mv
        )[0]

    def classify_windows(
        self,
        windows: Sequence[np.ndarray] | np.ndarray,
        fs: float,
        leads: Sequence[str] | None = None,
        qualities: Sequence[dict | None] | None = None,
        lead_offs: Sequence[int | np.ndarray | Sequence[str]] | None = None,
        rail_mv: float | None = None,
    ) -> list[Result]:
        """Classify several raw windows of one recording (same ``fs`` and channels) in one batch."""
        t0 = time.perf_counter()
        results: list[Result] = []
        inputs: list[np.ndarray] = []
        for i, x_mv in enumerate(windows):
            x_mv = np.asarray(x_mv, dtype=np.float32)
            if x_mv.ndim == 2 and not x_mv.flags.c_contiguous:  # a transposed record (p_signal.T): rows contiguous
                x_mv = np.ascontiguousarray(x_mv)  # once here, not in every step (quality alone 4x slower)
            names = (
                list(leads)
                if leads is not None
                else default_lead_names(x_mv.shape[0] if x_mv.ndim == 2 else 0)
            )
            off = lead_off_names(lead_offs[i], names) if lead_offs is not None else []
            if x_mv.ndim == 2 and len(names) == x_mv.shape[0]:
                x_mv, names = select_leads(x_mv, names)
            quality = qualities[i] if qualities is not None else None
            if quality is None:
                try:
                    quality = assess_window(x_mv, names, off, rail_mv, self.quality_config, fs=fs)
                except ValueError as exc:
                    quality = failed_quality(str(exc))
            result = Result(quality=Quality.from_dict(quality), fs=fs, bundle=self.bundle_id, unsigned=self.bundle.unsigned)
            if result.quality.ok:
                x_in, names_in = model_window(x_mv, names, quality)  # partial leads: unusable ones zeroed
                try:
                    inputs.append(self.preprocess(x_in, fs, names_in))
                except SignalError as exc:
                    result.quality = result.quality.failed(str(exc))
                else:  # the measurements on the usable leads only (the delineation runs on any subset)
                    x_meas, names_meas = measured_leads(x_in, names_in, quality)
                    result.measurements = measure(x_meas, fs, names_meas)  # reads preprocess's spectra
            results.append(result)
        release_spectra()  # not kept between windows: 0.5 MiB less resident
        todo = [r for r in results if r.quality.ok]
        if todo:
            emb = self.embed(np.stack(inputs))
            for r, e, s in zip(todo, emb, self.score(emb), strict=True):
                r.embedding = e
                self.decide(r, s)
        latency = (time.perf_counter() - t0) * 1e3 / max(len(results), 1)
        for r in results:
            r.latency_ms = latency
        return results

    def classify_embedding(
        self, embedding: np.ndarray, quality: Quality | Mapping, measurements: Mapping | None = None,
        rhythm: object = None, fs: float | None = None,
    ) -> Result:
        """Score an embedding computed elsewhere (e.g. the mean over a record's windows), with the
        measurements that go with it (e.g. ``edge.dsp.measure.combine_measurements`` of those windows) and the
        rhythm already analysed (else analysed here from the measurements when ``fs`` is given)."""
        e = np.asarray(embedding, dtype=np.float32)
        e = e / max(float(np.linalg.norm(e)), 1e-12)
        result = Result(quality=Quality.from_dict(quality), embedding=e, bundle=self.bundle_id, unsigned=self.bundle.unsigned)
        result.measurements, result.rhythm, result.fs = measurements, rhythm, fs
        self.decide(result, self.score(e[None])[0])
        return result

    # --- records ----------------------------------------------------------------------------------
    def record_windows(
        self,
        x_mv: np.ndarray,
        fs: float,
        leads: Sequence[str] | None = None,
        hop_s: float | None = None,
        batch: int = 32,
    ) -> list[Result]:
        """Every window of a recording ``x_mv[C, T]`` (hop ``hop_s``, default: back to back), classified in
        batches, each with its ``window_start_sample``. A recording shorter than a window (within the signal
        contract's 2 % tolerance) is one window; a shorter one is a ``ValueError`` saying how long it lasts."""
        n = int(np.shape(x_mv)[-1])
        spans = list(iter_windows(n, fs, self.signal.window_s, hop_s))
        if not spans and n >= int(0.98 * self.window_samples(fs)):
            spans = [(0, n)]
        if not spans:
            raise ValueError(f"lasts {n / fs:.2f} s; the model needs {self.signal.window_s:g} s windows")
        out: list[Result] = []
        for k in range(0, len(spans), batch):
            part = spans[k : k + batch]
            for (a, _), result in zip(
                part, self.classify_windows([x_mv[:, a:b] for a, b in part], fs, leads), strict=True
            ):
                result.window_start_sample = a
                out.append(result)
        return out

    def classify_record(
        self,
        x_mv: np.ndarray | None = None,
        fs: float | None = None,
        leads: Sequence[str] | None = None,
        hop_s: float | None = None,
        windows: Sequence[Result] | None = None,
    ) -> Result:
        """One result for a whole recording: the mean unit embedding of its good windows, ranked and decided
        with their combined measurements (median per key, ``edge.dsp.measure.combine_measurements``).

        Give the recording (``x_mv``, ``fs``, ``leads``, ``hop_s``) or its already classified ``windows``
        (:meth:`record_windows`). ``quality`` counts the windows (``windows``, ``windows_ok``) and their
        missing samples; with no good window the result is skipped with that reason.
        """
        if windows is None:
            if x_mv is None or fs is None:
                raise ValueError("classify_record needs the recording (x_mv and fs) or its windows")
            windows = self.record_windows(x_mv, fs, leads, hop_s)
        good = [r for r in windows if not r.skipped]
        missing = sum(r.quality.missing_samples for r in windows)
        rate = windows[0].fs if windows else fs
        if not good:
            quality = Quality.from_dict(failed_quality("no window of good quality", missing))
            quality.windows, quality.windows_ok = len(windows), 0
            return Result(quality=quality, fs=rate, bundle=self.bundle_id, unsigned=self.bundle.unsigned, window_start_sample=0)
        quality = Quality(ok=True, missing_samples=missing, windows=len(windows), windows_ok=len(good))
        mean = np.mean(np.stack([r.embedding for r in good]), axis=0)
        # the record's rhythm: the statement most of its windows made (the first window's analysis of it)
        rhythms = [r.rhythm for r in good if r.rhythm is not None]
        statements = [getattr(r, "statement", None) for r in rhythms]
        common = max(statements, key=statements.count) if statements else None
        rhythm = next((r for r, st in zip(rhythms, statements, strict=True) if st == common), None)
        combined = combine_measurements([r.measurements for r in good])
        if isinstance(rhythm, Rhythm):  # one window's rhythm, checked against the record's measurements (#21)
            rhythm = consistent(rhythm, combined)
        result = self.classify_embedding(mean, quality, combined, rhythm)
        result.fs, result.window_start_sample = rate, 0
        result.latency_ms = sum(r.latency_ms for r in windows)
        return result
