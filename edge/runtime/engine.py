"""The bedside classifier: raw ECG windows in, ranked Japanese labels out (DESIGN.md, contracts 1, 3, 5).

This is the Python API a device integrator uses::

    from edge.runtime.engine import Classifier

    clf = Classifier.from_bundle()                      # the default bundle, int8 ONNX, one thread
    result = clf.classify_window(x_mv, fs=500)          # x_mv: float32 [12 or 8, T] in millivolts
    print(result.top[0]["ja"], result.findings)
    line = result.to_json_dict(source="ward-3", window_start_sample=0, fs=500)

    stream = StreamClassifier(clf, fs=500, leads=["I", "II", "V1", ..., "V6"])
    for result in stream.feed(block_mv, first_sample=n0, lead_off=mask):   # block [n, C]
        ...

Every window, from a file or the serial stream, goes through the same steps in
:meth:`Classifier.classify_windows`: quality check on the raw window (``edge.dsp.quality``), the signal
contract (``edge.dsp.signal.preprocess``), the encoder (``edge.runtime.backends``), cosine similarity against the
bundle's precomputed label embeddings, top-5, and findings = labels whose score reaches their
threshold. A window whose quality is not ok is skipped: no inference, no findings.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.runtime.backends import Backend, get_backend, model_key_for
from edge.bundle.loader import Bundle, load_bundle, new_sha256
from edge.interpret.findings import FindingRules
from edge.dsp.measure import measure
from edge.dsp.quality import QualityConfig, assess_window, failed_quality, lead_off_names
from edge.dsp.signal import EIGHT_CHANNEL_LEADS, LEADS, SignalConfig, SignalError, canonical_lead_name, preprocess

__all__ = [
    "TOP_K",
    "Result",
    "Classifier",
    "StreamClassifier",
    "default_lead_names",
    "select_leads",
    "bundle_id",
    "now_iso",
]

logger = logging.getLogger(__name__)

TOP_K = 5


def default_lead_names(n_channels: int) -> list[str]:
    """Channel names assumed without a header: 12 -> LEADS, 8 -> I, II, V1..V6, else ch0, ch1, ..."""
    if n_channels == 12:
        return list(LEADS)
    if n_channels == 8:
        return list(EIGHT_CHANNEL_LEADS)
    return [f"ch{i}" for i in range(n_channels)]


def select_leads(x_mv: np.ndarray, leads: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Keep only channels named as ECG leads (first of duplicates), with canonical names.

    Records carry extra channels (pacing marks, Frank XYZ, respiration) that the model ignores; the
    quality check must ignore them too, or a flat marker channel would fail every window.
    """
    keep, names = [], []
    for i, name in enumerate(leads):
        try:
            canon = canonical_lead_name(name)
        except SignalError:
            continue
        if canon not in names:
            keep.append(i)
            names.append(canon)
    if len(keep) == len(leads):
        return x_mv, names
    return x_mv[keep], names


def bundle_id(bundle: Bundle) -> str:
    """A short identifier of a bundle: its name (or ``bundle``) and the start of its manifest's sha256."""
    digest = new_sha256(json.dumps(bundle.manifest, sort_keys=True).encode()).hexdigest()[:12]
    name = bundle.manifest.get("name") or bundle.manifest.get("provenance", {}).get("name") or "bundle"
    return f"{name}@{digest}"


def now_iso() -> str:
    """Local time with its UTC offset, to the millisecond (what a bedside log wants)."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="milliseconds")


@dataclass
class Result:
    """The outcome of one window; ``to_json_dict`` gives the contract-5 object."""

    quality: dict  # edge.dsp.quality report ({"ok", "missing_samples", "lead_off", ...})
    top: list[dict] = field(default_factory=list)  # [{"id", "ja", "en", "score"}] x TOP_K, best first
    findings: list[str] = field(default_factory=list)  # label ids at or above their thresholds, best first
    # findings of labels never trained (bundle label "zero_shot"), listed apart (DESIGN.md contract 3)
    zero_shot_findings: list[str] = field(default_factory=list)
    scores: np.ndarray | None = None  # float32 [n_labels] cosine similarities; None when skipped
    embedding: np.ndarray | None = None  # float32 [D] unit ECG embedding; None when skipped
    latency_ms: float = 0.0  # preprocessing + inference time of this window
    window_start_sample: int | None = None  # set by the stream / file loop
    fs: float | None = None  # sampling rate of the raw window
    bundle: str | None = None  # bundle_id()
    measurements: dict | None = (
        None  # edge.dsp.measure.measure() of the raw window (contract 7); None when skipped
    )

    @property
    def skipped(self) -> bool:
        """True when the window was not classified (quality not ok)."""
        return self.scores is None

    def to_json_dict(
        self,
        source: str,
        window_start_sample: int | None = None,
        fs: float | None = None,
        t: str | None = None,
        **extra,
    ) -> dict:
        """The contract-5 line: ``t, source, window_start_sample, fs, top, findings, quality`` and more."""
        start = self.window_start_sample if window_start_sample is None else window_start_sample
        rate = self.fs if fs is None else fs
        out = {
            "t": t or now_iso(),
            "source": str(source),
            "window_start_sample": None if start is None else int(start),
            "fs": None if rate is None else (int(rate) if float(rate).is_integer() else float(rate)),
            "top": self.top,
            "findings": self.findings,
            "zero_shot_findings": self.zero_shot_findings,
            "quality": self.quality,
            "measurements": self.measurements,
            "skipped": self.skipped,
            "latency_ms": round(self.latency_ms, 3),
            "bundle": self.bundle,
        }
        out.update(extra)
        return out


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
        # consistent findings (edge/findings.py): the rules the bundle was exported with, else the shipped ones;
        # criteria_weight moves measurement-defined labels in the ranking (chosen on validation at export)
        self.rules, self.criteria_weight = FindingRules.from_manifest(self.labels, bundle.manifest)
        # Labels never trained (older bundles only say "new": added at export or held out).
        self.zero_shot = [bool(lb.get("zero_shot", lb.get("new", False))) for lb in self.labels]
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
            model = bundle.model_path(model_key_for(backend, precision))
            classifier = cls(bundle, get_backend(backend, model, threads), quality)
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
        self, scores: np.ndarray, measurements: dict | None = None
    ) -> tuple[list[dict], list[str], list[str]]:
        """``(top, findings, zero_shot_findings)``: findings of labels never trained are listed apart.

        The top labels are ranked by the cosine score moved by the bundle's ``criteria_weight`` where a
        measurement meets (+) or contradicts (-) a label's definition (``FindingRules.adjust``); findings
        are decided on the cosine score, the thresholds, the measurement criteria and the rules.
        """
        rank = self.rules.adjust(scores, measurements, self.criteria_weight)
        order = np.argsort(-rank, kind="stable")
        top = []
        for i in order[: self.top_k]:
            label = self.labels[i]
            top.append(
                {
                    "id": label["id"],
                    "ja": label.get("ja", ""),
                    "en": label.get("en", ""),
                    "score": round(float(rank[i]), 6),
                    "zero_shot": self.zero_shot[i],
                }
            )
        decided = self.rules.decide(scores, self.thresholds, measurements)
        # Apart: a never-trained label found by its score (one that a measurement decided stays a finding).
        apart = [i for i in decided if self.zero_shot[i] and scores[i] >= self.thresholds[i]]
        findings = [self.labels[i]["id"] for i in decided if i not in apart]
        return top, findings, [self.labels[i]["id"] for i in apart]

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
            result = Result(quality=quality, fs=fs, bundle=self.bundle_id)
            if quality["ok"]:
                try:
                    inputs.append(self.preprocess(x_mv, fs, names))
                except SignalError as exc:
                    result.quality = {**quality, "ok": False, "error": str(exc)}
                else:
                    result.measurements = measure(x_mv, fs, names)
            results.append(result)
        todo = [r for r in results if r.quality["ok"]]
        if todo:
            emb = self.embed(np.stack(inputs))
            scores = self.score(emb)
            for r, e, s in zip(todo, emb, scores, strict=True):
                r.embedding, r.scores = e, s
                r.top, r.findings, r.zero_shot_findings = self._ranked(s, r.measurements)
        latency = (time.perf_counter() - t0) * 1e3 / max(len(results), 1)
        for r in results:
            r.latency_ms = latency
        return results

    def classify_embedding(
        self, embedding: np.ndarray, quality: dict, measurements: dict | None = None
    ) -> Result:
        """Score an embedding computed elsewhere (e.g. the mean over a record's windows), with the
        measurements that go with it (e.g. ``edge.dsp.measure.combine_measurements`` of those windows)."""
        e = np.asarray(embedding, dtype=np.float32)
        e = e / max(float(np.linalg.norm(e)), 1e-12)
        s = self.score(e[None])[0]
        top, findings, zero_shot_findings = self._ranked(s, measurements)
        return Result(
            quality=quality,
            top=top,
            findings=findings,
            zero_shot_findings=zero_shot_findings,
            scores=s,
            embedding=e,
            bundle=self.bundle_id,
            measurements=measurements,
        )

